"""A delivery's bounces and complaints as events of its history (tracking.history). The
history is read by keys that may not see personal data: addresses quoted in a bounce's reply
are masked (the delivery's own address is told apart, masked or not, by its reader)."""

from tayori.inbound.models import Bounce, Complaint
from tayori.members.masking import mask_emails_in


def events_of(delivery) -> list[dict]:
    story = [{"type": "bounced", "at": b.received_at, "reason": b.reason, "hard": b.hard,
              "reply": mask_emails_in(" ".join(p for p in (b.status, b.diagnostic) if p))}
             for b in Bounce.objects.filter(delivery=delivery).order_by("received_at")[:20]]
    story += [{"type": "complained", "at": c.received_at, "reason": c.feedback_type}
              for c in Complaint.objects.filter(delivery=delivery).order_by("received_at")[:20]]
    return story
