"""SendGrid's Event Webhook: a JSON array of events, signed (the Signed Event Webhook) with
ECDSA P-256 over SHA-256 of the timestamp header's bytes followed by the body's, the signature
in ``X-Twilio-Email-Event-Webhook-Signature`` (base64 DER) and the time in
``X-Twilio-Email-Event-Webhook-Timestamp`` (Unix seconds). The workspace keeps SendGrid's
verification key (base64 DER SubjectPublicKeyInfo); a post older than MAX_AGE is a replay.

Events kept: ``bounce`` (type ``bounce``, permanent, or ``blocked``, refused for now) and
``spamreport`` (a complaint). A ``dropped`` event is not a bounce: SendGrid did not try to
deliver, usually because the address is on its own suppression list after an earlier bounce
(already reported then) or an unsubscribe; counting it again would count one bounce at every
send. Deferrals, deliveries and engagement events are for other parts of Tayori, or none.

The delivery is the one the signed token in ``smtp-id`` (the Message-ID Tayori wrote) names.
Custom arguments such as ``tayori_delivery`` are not used: they are whatever the sender set."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone

from tayori.inbound.providers import (
    BOUNCE,
    COMPLAINT,
    Event,
    Malformed,
    Refused,
    delivery_of_message_id,
)
from tayori.inbound.reasons import classify

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_AGE = dt.timedelta(minutes=10)
MAX_AHEAD = dt.timedelta(minutes=5)

_PEM_LINE = re.compile(r"-----(BEGIN|END) PUBLIC KEY-----")
_STATUS = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")


def public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER; PEM armour is tolerated)."""
    try:
        der = base64.b64decode("".join(_PEM_LINE.sub("", text).split()), validate=True)
        key = serialization.load_der_public_key(der)
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        raise Refused("the workspace's SendGrid verification key is not a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve,
                                                                         ec.SECP256R1):
        raise Refused("the workspace's SendGrid verification key is not ECDSA P-256")
    return key


def verify(body: bytes, *, signature: str, timestamp: str, key_text: str,
           now: dt.datetime | None = None) -> None:
    """Return when ``body`` was signed by the workspace's SendGrid account lately; raise
    Refused otherwise."""
    if not key_text.strip():
        raise Refused("no SendGrid verification key set for this workspace")
    if not signature or not timestamp:
        raise Refused("unsigned request")
    try:
        at = dt.datetime.fromtimestamp(int(timestamp), tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise Refused("timestamp is not Unix seconds") from None
    now = now or timezone.now()
    if at < now - MAX_AGE or at > now + MAX_AHEAD:
        raise Refused("timestamp too old or in the future")
    try:
        der = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise Refused("signature is not base64") from None
    try:
        public_key(key_text).verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise Refused("signature does not match") from None


def events(body: bytes) -> list[Event]:
    """The bounces and complaints in a verified post."""
    try:
        posted = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("not JSON") from None
    if not isinstance(posted, list):
        raise Malformed("not a JSON array of events")
    found = []
    for item in posted:
        if not isinstance(item, dict):
            raise Malformed("an event is not an object")
        kind = item.get("event")
        if kind == "bounce":
            found.append(_bounce(item))
        elif kind == "spamreport":
            found.append(_event(COMPLAINT, item, feedback_type="abuse", reporter="SendGrid"))
    return found


def _text(item: dict, name: str) -> str:
    value = item.get(name)
    return value if isinstance(value, str) else "" if value is None else str(value)


def _event(kind: str, item: dict, **fields) -> Event:
    smtp_id = _text(item, "smtp-id")
    return Event(kind=kind, delivery_id=delivery_of_message_id(smtp_id) if smtp_id else None,
                 address=_text(item, "email"), reference=_text(item, "sg_event_id"),
                 raw=json.dumps(item, ensure_ascii=False).encode(), **fields)


def _bounce(item: dict) -> Event:
    reason_text = _text(item, "reason")
    status = _text(item, "status")
    if not _STATUS.fullmatch(status):
        found = _STATUS.search(reason_text)
        status = found.group(0) if found else ""
    blocked = _text(item, "type") == "blocked"
    verdict = classify(status=status, diagnostic=reason_text, recipient=_text(item, "email"),
                       action="failed")
    # "bounce" is SendGrid's permanent refusal, "blocked" a temporary one; the status code,
    # when there is one, is better evidence than either.
    hard = verdict.hard if status else not blocked
    return _event(BOUNCE, item, reason=verdict.reason, hard=hard, status=status,
                  diagnostic=reason_text)
