"""Signing webhook posts and checking their signatures.

Every post carries ``Tayori-Signature: t=<unix seconds>,v1=<hex>``, where the hex is
HMAC-SHA256, keyed with the endpoint's whole secret (``whsec_…`` as UTF-8), of
``f"{t}.".encode() + body`` — the timestamp, a dot, and the raw body bytes as received. Right
after a secret is rotated, the header carries a second ``v1=`` made with the previous secret.
Receivers should accept a post when any ``v1`` matches (compared in constant time) and the
timestamp is within five minutes of their clock, which stops a captured post from being
replayed later.

``verify`` is the receiver's side, usable as is by Python clients (it needs only the standard
library); the README shows the same check in a dozen lines.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

HEADER = "Tayori-Signature"
PREFIX = "whsec_"
TOLERANCE = 300  # seconds a signature stays acceptable


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def header(keys: list[str], body: bytes, timestamp: int | None = None) -> str:
    """The header value signing ``body`` with each secret in ``keys`` (current first)."""
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"v1={signature(s, t, body)}" for s in keys)])


def verify(secret: str, header_value: str, body: bytes, tolerance: int = TOLERANCE,
           now: float | None = None) -> bool:
    """Whether ``header_value`` signs ``body`` with ``secret`` and is at most ``tolerance``
    seconds old (or early)."""
    timestamp, candidates = None, []
    for part in (header_value or "").split(","):
        key, _sep, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
