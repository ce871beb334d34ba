"""A delivery's bounces and complaints as events of its history (tracking.history)."""

from tayori.inbound.models import Bounce, Complaint


def events_of(delivery) -> list[dict]:
    story = [{"type": "bounced", "at": b.received_at, "reason": b.reason, "hard": b.hard,
              "reply": " ".join(p for p in (b.status, b.diagnostic) if p)}
             for b in Bounce.objects.filter(delivery=delivery).order_by("received_at")[:20]]
    story += [{"type": "complained", "at": c.received_at, "reason": c.feedback_type}
              for c in Complaint.objects.filter(delivery=delivery).order_by("received_at")[:20]]
    return story
