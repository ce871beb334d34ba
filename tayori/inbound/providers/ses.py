"""Amazon SES bounce and complaint notifications, as SNS delivers them (the JSON in an SNS
Notification's Message): both SES's notification form (``notificationType``) and its event
publishing form (``eventType``) — the same ``bounce``, ``complaint`` and ``mail`` objects.
Other types (Delivery, Send, Open, ...) are ignored, and so is a complaint SES only repeats
from the account's suppression list or a "not-spam" report.

A bounced recipient is classified by its diagnostic code and status (reasons.classify); when
those carry no SMTP code, SES's own verdict decides: bounceType Permanent is hard, and the
bounceSubType names the reason when the words did not (NoEmail: userunknown; MailboxFull:
mailboxfull; Suppressed — SES's global list of addresses that bounced as invalid —
userunknown; OnAccountSuppressionList — the SES account refuses the address — rejected).

The delivery is found from ``mail.source`` (Tayori's VERP envelope sender), else from the
Message-ID Tayori wrote (``mail.headers`` or ``mail.commonHeaders.messageId``); both carry the
delivery's signed token. A repeated notification is known by its feedbackId and recipient."""

from __future__ import annotations

import hashlib
import json
import re

from tayori.inbound.providers import (
    BOUNCE,
    COMPLAINT,
    Event,
    Malformed,
    delivery_of_message_id,
    delivery_of_sender,
)
from tayori.inbound.reasons import classify, status_in

# (bounceType, bounceSubType) -> reason, for a bounce whose words name none.
SUBTYPE_REASONS: dict[tuple[str, str], str] = {
    ("Permanent", "NoEmail"): "userunknown",
    ("Permanent", "Suppressed"): "userunknown",
    ("Permanent", "OnAccountSuppressionList"): "rejected",
    ("Transient", "MailboxFull"): "mailboxfull",
    ("Transient", "MessageTooLarge"): "mesgtoobig",
    ("Transient", "ContentRejected"): "contenterror",
    ("Transient", "AttachmentRejected"): "contenterror",
}
# Feedback types that are not complaints.
NOT_COMPLAINTS = frozenset({"not-spam"})

_DIAGNOSTIC_TYPE = re.compile(r"^\s*[a-z][\w-]*\s*;\s*", re.I)  # "smtp; 550 ..."
_REPLY_CODE = re.compile(r"^\s*[245]\d\d\b")


def events(text: str, *, message_id: str = "") -> list[Event]:
    """The bounces and complaints in one SES notification. ``message_id`` (the SNS
    MessageId, the same in SNS's retries) stands in for a missing feedbackId."""
    try:
        notification = json.loads(text)
    except (TypeError, ValueError):
        return []  # a topic's test message, not SES's
    if not isinstance(notification, dict):
        return []
    kind = notification.get("notificationType") or notification.get("eventType")
    if kind not in ("Bounce", "Complaint"):
        return []
    mail = _object(notification, "mail")
    delivery_id = _delivery_id(mail)
    raw = text.encode()
    if kind == "Bounce":
        return _bounces(_object(notification, "bounce"), delivery_id, raw, message_id)
    return _complaints(_object(notification, "complaint"), delivery_id, raw, message_id)


def _object(parent: dict, name: str) -> dict:
    value = parent.get(name)
    if not isinstance(value, dict):
        raise Malformed(f"SES notification without {name}")
    return value


def _recipients(parent: dict, name: str) -> list[dict]:
    value = parent.get(name)
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise Malformed(f"SES notification without {name}")
    return value


def _text(parent: dict, name: str) -> str:
    value = parent.get(name)
    return value.strip() if isinstance(value, str) else ""


def _delivery_id(mail: dict) -> int | None:
    if (found := delivery_of_sender(_text(mail, "source"))) is not None:
        return found
    headers = mail.get("headers")
    quoted = [h.get("value") for h in headers if isinstance(h, dict)
              and str(h.get("name", "")).lower() == "message-id"] if isinstance(
        headers, list) else []
    common = mail.get("commonHeaders")
    if isinstance(common, dict):
        quoted.append(common.get("messageId"))
    for value in quoted:
        if isinstance(value, str) and (found := delivery_of_message_id(value)) is not None:
            return found
    return None


def _reference(feedback_id: str, address: str) -> str:
    """feedbackId and recipient: one notification may name several recipients."""
    digest = hashlib.sha256(address.strip().lower().encode()).hexdigest()[:16]
    return f"{feedback_id[:80]}:{digest}" if feedback_id else ""


def _bounces(bounce: dict, delivery_id: int | None, raw: bytes,
             message_id: str) -> list[Event]:
    bounce_type, subtype = _text(bounce, "bounceType"), _text(bounce, "bounceSubType")
    feedback_id = _text(bounce, "feedbackId") or message_id
    remote_mta = _text(bounce, "remoteMtaIp")
    found = []
    for recipient in _recipients(bounce, "bouncedRecipients"):
        address = _text(recipient, "emailAddress")
        diagnostic = _DIAGNOSTIC_TYPE.sub("", _text(recipient, "diagnosticCode"))
        status = status_in(_text(recipient, "status")) or status_in(diagnostic)
        verdict = classify(status=status, diagnostic=diagnostic, recipient=address,
                           remote_mta=remote_mta, action=_text(recipient, "action"))
        reason = verdict.reason
        if reason == "undefined":
            reason = SUBTYPE_REASONS.get((bounce_type, subtype), reason)
        # An SMTP code is the receiving server's own word; without one, SES's bounceType is
        # the best evidence there is.
        coded = bool(status or _REPLY_CODE.match(diagnostic))
        hard = verdict.hard if coded else bounce_type == "Permanent"
        found.append(Event(kind=BOUNCE, delivery_id=delivery_id, address=address,
                           reference=_reference(feedback_id, address), reason=reason,
                           hard=hard, status=status, diagnostic=diagnostic or subtype,
                           remote_mta=remote_mta, raw=raw))
    return found


def _complaints(complaint: dict, delivery_id: int | None, raw: bytes,
                message_id: str) -> list[Event]:
    feedback_type = _text(complaint, "complaintFeedbackType") or "abuse"
    if (feedback_type in NOT_COMPLAINTS
            or _text(complaint, "complaintSubType") == "OnAccountSuppressionList"):
        return []
    feedback_id = _text(complaint, "feedbackId") or message_id
    reporter = _text(complaint, "userAgent") or "Amazon SES"
    found = []
    for recipient in _recipients(complaint, "complainedRecipients"):
        address = _text(recipient, "emailAddress")
        found.append(Event(kind=COMPLAINT, delivery_id=delivery_id, address=address,
                           reference=_reference(feedback_id, address),
                           feedback_type=feedback_type, reporter=reporter, raw=raw))
    return found
