"""Signed tokens that identify a delivery in addresses and links, fixed once for every issue
that reads them back (bounces, tracking, unsubscribe):

- VERP Return-Path:  ``bounce+<token>@<bounce domain>``           purpose ``b``
- click:             ``https://<tracking host>/t/c/<token>``      purpose ``c``, carries the link index
- open pixel:        ``https://<tracking host>/t/o/<token>.gif``  purpose ``o``
- unsubscribe:       ``https://<tracking host>/t/u/<token>`` and ``mailto:unsubscribe+<token>@<bounce domain>``
- web version:       ``https://<tracking host>/t/w/<token>``
- notice history:    ``https://<tracking host>/t/n/<token>``      purpose ``n``, the recipient's
                     incident notices (tayori.incidents.history; refused by age there)
- conversion:        ``https://<tracking host>/t/v/<token>.gif``  purpose ``v``, handed to the
                     landing page in the click's redirect (``?tayori_c=<token>``)
- sign-up:           ``https://<tracking host>/t/j/<token>``      purpose ``j``, an empty mail's
                     id (tayori.inbound.signup; refused by age there)

A token is lower-case hex (some MTAs lower-case local parts; hex is also the cheapest encoding
to make, several per message) of the delivery id and, for clicks, the link index as unsigned
varints, followed by a 10-byte keyed BLAKE2b MAC of the payload (a MAC by design, one C call,
several times cheaper than HMAC-SHA256), keyed per purpose from SECRET_KEY. Delivery ids are not secret; the MAC makes them
unforgeable, so one member cannot unsubscribe or click for another. Links do not expire: a mail
read a year later must still unsubscribe (RFC 8058) — the click endpoint may refuse by age.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from django.conf import settings

MAC_BYTES = 10
BOUNCE, CLICK, OPEN, UNSUBSCRIBE, WEB, CONVERSION = "b", "c", "o", "u", "w", "v"
NOTICES, JOIN = "n", "j"


@lru_cache(maxsize=16)
def _key(purpose: str, secret: str) -> bytes:
    return hashlib.sha256(f"tayori.delivery.tokens:{purpose}:{secret}".encode()).digest()


def _mac(purpose: str, payload: bytes) -> bytes:
    return hashlib.blake2b(payload, key=_key(purpose, settings.SECRET_KEY),
                           digest_size=MAC_BYTES).digest()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _unvarints(data: bytes) -> list[int]:
    values, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append(value)
            value, shift = 0, 0
    if shift:
        raise ValueError("truncated")
    return values


def make(purpose: str, *numbers: int) -> str:
    """A token for a delivery id (and, for clicks, the link index)."""
    payload = b"".join([_varint(n) for n in numbers])
    return (payload + _mac(purpose, payload)).hex()


def read(purpose: str, token: str) -> tuple[int, ...] | None:
    """The numbers a token carries, or None if it was not made by this Tayori for `purpose`."""
    try:
        raw = bytes.fromhex(token)
    except (ValueError, TypeError):
        return None
    payload, tag = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if len(tag) != MAC_BYTES or not payload:
        return None
    if not hmac.compare_digest(_mac(purpose, payload), tag):
        return None
    try:
        return tuple(_unvarints(payload))
    except ValueError:
        return None


def bounce_address(delivery_id: int, domain: str) -> str:
    return f"bounce+{make(BOUNCE, delivery_id)}@{domain}"


def delivery_of_bounce(local_part: str) -> int | None:
    """The delivery a VERP local part (``bounce+token``) stands for."""
    prefix, _, token = local_part.partition("+")
    numbers = read(BOUNCE, token) if prefix.lower() == "bounce" else None
    return numbers[0] if numbers and len(numbers) == 1 else None


def base_url(host: str) -> str:
    """Where tracking links point: ``https://<host>``, or the host as written when it names its
    scheme (``http://127.0.0.1:8000`` on a machine without TLS)."""
    return host.rstrip("/") if "://" in host else f"https://{host}"


def link(host: str, purpose: str, *numbers: int) -> str:
    path = {CLICK: "c", OPEN: "o", UNSUBSCRIBE: "u", WEB: "w", CONVERSION: "v",
            NOTICES: "n", JOIN: "j"}[purpose]
    suffix = ".gif" if purpose in (OPEN, CONVERSION) else ""
    return f"{base_url(host)}/t/{path}/{make(purpose, *numbers)}{suffix}"
