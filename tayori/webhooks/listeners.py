"""Where webhook events come from: the delivery engine's results (delivery.signals), people's
opens, clicks and conversions as tracking stores them, and opt-outs (tracking.optout).
Registered in WebhooksConfig.ready; each returns at once when no workspace subscribed to the
types it would emit, so the engine's and the tracking writer's hot paths pay one dictionary
lookup."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.utils import timezone

from tayori.tracking.models import Kind
from tayori.tracking.responses import links_of_source
from tayori.webhooks import subscriptions
from tayori.webhooks.events import publish_deliveries

# Outcomes of a send the engine records; "requeue" (a relay resting, a rate reached) is the
# engine's own business and no news for the customer.
OUTCOMES = {"sent": "message.sent", "deferred": "message.deferred", "failed": "message.failed"}
RESPONSES = {Kind.OPEN: "message.opened", Kind.CLICK: "message.clicked",
             Kind.CONVERSION: "message.converted"}


def delivery_changed(kind: str, rows: list, at: dt.datetime | None = None) -> None:
    """``queued``: Delivery rows just created for transactional messages (skipped ones are
    reported as message.failed with the reason); ``recorded``: queue.Outcome objects."""
    if not subscriptions.anyone():
        return
    by_type = defaultdict(list)
    if kind == "queued":
        for delivery in rows:
            skipped = delivery.status == "skipped"
            by_type["message.failed" if skipped else "message.queued"].append({
                "delivery_id": delivery.pk, "at": delivery.queued_at, "status": delivery.status,
                "reason": delivery.skip_reason})
    elif kind == "recorded":
        wanted = {k: t for k, t in OUTCOMES.items() if subscriptions.workspaces(t)}
        for outcome in rows if wanted else ():
            if outcome.kind in wanted:
                by_type[wanted[outcome.kind]].append({
                    "delivery_id": outcome.id, "status": outcome.kind,
                    "smtp_reply": outcome.reply, "message_id": outcome.message_id})
    for event_type, items in by_type.items():
        publish_deliveries(event_type, items, at=at)


def responded(events: list) -> None:
    """People's stored tracking events (tracking.ingest.EVENT_LISTENERS)."""
    if not subscriptions.anyone():
        return
    wanted = {kind: t for kind, t in RESPONSES.items() if subscriptions.workspaces(t)}
    by_type = defaultdict(list)
    links: dict[int, dict[int, str]] = {}
    for event in events:
        event_type = wanted.get(event.kind)
        if event_type is None or event.machine or event.delivery_id is None:
            continue
        row = {"delivery_id": event.delivery_id, "at": event.at}
        if event.kind in (Kind.CLICK, Kind.CONVERSION):
            if event.source_id not in links:
                links[event.source_id] = links_of_source(event.source_id)
            row.update(link_index=event.link_index, value=event.value,
                       url=links[event.source_id].get(event.link_index, ""))
        by_type[event_type].append(row)
    for event_type, rows in by_type.items():
        publish_deliveries(event_type, rows)


def unsubscribed(delivery, method: str) -> None:
    """An opt-out that changed something (tracking.optout.LISTENERS, after it commits)."""
    publish_deliveries("member.unsubscribed", [
        {"delivery_id": delivery.pk, "at": timezone.now(), "method": method}])
