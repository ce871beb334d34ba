"""Provider feeds: bounces and complaints that a sending service (Amazon SES through SNS,
SendGrid's Event Webhook) reports over HTTP instead of by mail. Each provider module checks
its provider's signature and turns its events into ``Event``; ``record`` keeps them through
inbound.consequences, like every other path in.

An event counts only for a delivery its signed VERP token names (the envelope sender or the
Message-ID Tayori wrote), of the feed's own workspace, and only once per provider event id."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.db import transaction

from tayori.delivery import tokens
from tayori.delivery.models import Delivery
from tayori.inbound.consequences import Evidence, record_bounce, record_complaint
from tayori.inbound.models import Bounce, Complaint

log = logging.getLogger(__name__)

BOUNCE, COMPLAINT = "bounce", "complaint"


class FeedError(Exception):
    """A request a feed will not act on; ``status`` is the HTTP answer. A provider retries
    only a 5xx, so everything it could not fix by sending again is a 4xx."""

    status = 400


class Malformed(FeedError):
    """Not the provider's format (400)."""


class Refused(FeedError):
    """A signature, topic, certificate URL or timestamp that does not hold (403)."""

    status = 403


class Unavailable(FeedError):
    """Could not check now (the signing certificate could not be fetched): try again (503)."""

    status = 503


@dataclass(slots=True)
class Event:
    """One recipient's bounce or complaint as a provider reported it."""

    kind: str  # BOUNCE or COMPLAINT
    delivery_id: int | None  # from a signed token only; None: not a mail Tayori sent
    address: str  # the recipient the provider names
    reference: str  # the provider's id of the event: a repeat is recognized by it
    reason: str = ""
    hard: bool = False
    status: str = ""
    diagnostic: str = ""
    remote_mta: str = ""
    feedback_type: str = ""
    reporter: str = ""
    raw: bytes = b""


@dataclass(slots=True)
class Tally:
    """What became of a request's events (the feed's answer, for logs and tests)."""

    bounces: list[int] = field(default_factory=list)
    complaints: list[int] = field(default_factory=list)
    repeated: int = 0
    ignored: int = 0

    def as_dict(self) -> dict:
        return {"bounces": len(self.bounces), "complaints": len(self.complaints),
                "repeated": self.repeated, "ignored": self.ignored}


def delivery_of_sender(address: str) -> int | None:
    """The delivery a VERP envelope sender (``bounce+<token>@<bounce domain>``) names."""
    return tokens.delivery_of_bounce(address.strip().strip("<>").rpartition("@")[0])


def delivery_of_message_id(message_id: str) -> int | None:
    """The delivery a Message-ID Tayori wrote (``<token@domain>``) names."""
    local = message_id.strip().strip("<>").rpartition("@")[0]
    return tokens.delivery_of_bounce(f"bounce+{local}") if local else None


def record(events: list[Event], *, workspace_id: int, via: str,
           now: dt.datetime | None = None) -> Tally:
    """Keep each event for its delivery, once."""
    tally = Tally()
    for event in events:
        row = _record(event, workspace_id=workspace_id, via=via, now=now)
        if row is None:
            tally.ignored += 1
        elif row is _REPEATED:
            tally.repeated += 1
        elif isinstance(row, Bounce):
            tally.bounces.append(row.pk)
        else:
            tally.complaints.append(row.pk)
    return tally


_REPEATED = object()


def _record(event: Event, *, workspace_id: int, via: str, now: dt.datetime | None):
    if event.delivery_id is None:
        log.info("%s %s event for %s names no delivery of Tayori", via, event.kind,
                 event.address or "?")
        return None
    model = Bounce if event.kind == BOUNCE else Complaint
    with transaction.atomic():
        # Locking the delivery makes a provider's repeated notification, arriving twice at
        # once, wait for the first and then find its row.
        delivery = (Delivery.objects.select_for_update()
                    .filter(pk=event.delivery_id, workspace_id=workspace_id).first())
        if delivery is None:  # gone, or another workspace's: a feed acts for its own only
            log.warning("%s %s event names delivery %s, not one of workspace %s", via,
                        event.kind, event.delivery_id, workspace_id)
            return None
        reference = event.reference[:100]
        # One delivery bounces once and is complained about once, whichever way it was told
        # (returned mail and a feed, or a notice naming it twice): as tayori mx counts it.
        if model.objects.filter(delivery=delivery).exists():
            return _REPEATED
        # The token proves the delivery; its address is the one Tayori sent to and suppresses.
        if event.kind == BOUNCE:
            row = record_bounce(delivery, Evidence(
                address=delivery.address, reason=event.reason, hard=event.hard,
                status=event.status, diagnostic=event.diagnostic,
                remote_mta=event.remote_mta),
                workspace_id=workspace_id, via=via, raw=event.raw, now=now)
        else:
            row = record_complaint(delivery, workspace_id=workspace_id,
                                   address=delivery.address,
                                   feedback_type=event.feedback_type or "abuse",
                                   reporter=event.reporter, via=via, raw=event.raw, now=now)
        if reference:
            model.objects.filter(pk=row.pk).update(reference=reference)
            row.reference = reference
    return row
