"""A delivery's story in order: queued, sent or not and why, then what its recipient did (opens,
clicks with the link, conversions, opt-out). The message status API and support read this.

Machine opens and clicks (scanners, privacy proxies) are listed too, marked, because a support
agent asking "did they open it?" must see that a scanner did, not a person."""

from tayori.delivery.models import Delivery
from tayori.tracking.models import Event, Link

_FINISHED = {"failed": "failed", "skipped": "skipped", "cancelled": "cancelled"}
_TYPES = {"open": "opened", "click": "clicked", "conversion": "converted",
          "unsubscribe": "unsubscribed"}

# More of the story told by apps beside tracking (bounces and complaints, from inbound),
# registered from their AppConfig.ready: callable(delivery) -> [{type, at, …}].
CHAPTERS: list = []


def delivery_history(delivery: Delivery, *, limit: int = 200) -> list[dict]:
    """Events as dicts {type, at, detail…}, oldest first; at most ``limit`` tracking events."""
    story = [{"type": "queued", "at": delivery.queued_at}]
    if delivery.status == "held" and delivery.source.scheduled_at:
        story.append({"type": "scheduled", "at": delivery.source.scheduled_at})
    if delivery.status == "deferred":
        story.append({"type": "deferred", "at": delivery.next_attempt_at,
                      "reply": delivery.smtp_reply, "attempts": delivery.attempts,
                      "next_attempt_at": delivery.next_attempt_at})
    if delivery.sent_at:
        story.append({"type": "sent", "at": delivery.sent_at, "reply": delivery.smtp_reply,
                      "attempts": delivery.attempts})
    if delivery.status in _FINISHED and delivery.finished_at:
        story.append({"type": _FINISHED[delivery.status], "at": delivery.finished_at,
                      "reply": delivery.smtp_reply, "reason": delivery.skip_reason})
    events = list(Event.objects.filter(delivery=delivery).order_by("at", "pk")[:limit])
    urls = dict(Link.objects.filter(source_id=delivery.source_id).values_list("index", "url"))
    for event in events:
        item = {"type": _TYPES.get(event.kind, event.kind), "at": event.at}
        if event.machine:
            item["machine"] = event.machine
        if event.link_index is not None:
            item["link_index"] = event.link_index
            item["url"] = urls.get(event.link_index, "")
        if event.value is not None:
            item["value"] = event.value
        story.append(item)
    for chapter in CHAPTERS:
        story += chapter(delivery)
    story.sort(key=lambda item: item["at"])
    return story
