"""Bounce and complaint rates per send, which pause a bulk send that is hurting the sender's
reputation (the scheduler asks ``check`` each tick; see delivery.scheduler.PAUSE_CHECKS).

A rate is bounces (or complaints) of the send over its messages sent so far. Bounces that say
nothing about the address (a carrier's domain filter) do not count. Small samples prove
nothing, so a rate is judged only from MIN_SENT (bounces) or MIN_SENT_COMPLAINTS messages on:
0.1 % of complaints means something only after a thousand messages. A send an operator
resumed is judged on what it sent and what came back since, not on the bounces that paused it."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

from django.db.models import Count
from django.utils.translation import gettext as _

from tayori.delivery.models import Delivery
from tayori.inbound.models import Bounce, Complaint, InboundSettings

MIN_SENT = 100
MIN_SENT_COMPLAINTS = 1000
DEFAULT_BOUNCE_LIMIT = Decimal(5)
DEFAULT_COMPLAINT_LIMIT = Decimal("0.1")
# Counting a large send's sent rows is an index scan: a source is judged at most this often.
RECHECK_SECONDS = 30.0

_last_checked: dict[int, float] = {}


def rates(source_id: int, since: dt.datetime | None = None) -> dict:
    """A send's sent count, counted bounces and complaints, and their rates in percent; with
    ``since`` (the send was resumed then), only what was sent and came back from then on."""
    sent = Delivery.objects.filter(source_id=source_id, status="sent")
    bounces = Bounce.objects.filter(source_id=source_id, counts=True)
    complaints = Complaint.objects.filter(source_id=source_id)
    if since is not None:
        sent = sent.filter(sent_at__gte=since)
        bounces = bounces.filter(received_at__gte=since)
        complaints = complaints.filter(received_at__gte=since)
    sent, bounces, complaints = sent.count(), bounces.count(), complaints.count()
    return {"sent": sent, "bounces": bounces, "complaints": complaints,
            "bounce_rate": _percent(bounces, sent), "complaint_rate": _percent(complaints, sent)}


def _percent(part: int, whole: int) -> Decimal:
    return (Decimal(part) * 100 / whole).quantize(Decimal("0.001")) if whole else Decimal(0)


def check(running, *, now: dt.datetime) -> list[tuple[int, str]]:
    """The running sources to pause for their bounce or complaint rate, with the reason."""
    counted = {}
    for model, filters in ((Bounce, {"counts": True}), (Complaint, {})):
        for row in (model.objects.filter(source__in=running, **filters).order_by()
                    .values("source_id", "source__workspace_id", "source__resumed_at")
                    .annotate(n=Count("id"))):
            counted.setdefault(row["source_id"], (row["source__workspace_id"],
                                                  row["source__resumed_at"]))
    if not counted:
        return []
    limits = {s.workspace_id: (s.bounce_rate_limit, s.complaint_rate_limit)
              for s in InboundSettings.objects.filter(workspace_id__in=set(counted.values()))}
    paused, clock = [], time.monotonic()
    for source_id, (workspace_id, resumed_at) in counted.items():
        if clock - _last_checked.get(source_id, -RECHECK_SECONDS) < RECHECK_SECONDS:
            continue
        _last_checked[source_id] = clock
        bounce_limit, complaint_limit = limits.get(
            workspace_id, (DEFAULT_BOUNCE_LIMIT, DEFAULT_COMPLAINT_LIMIT))
        found = rates(source_id, resumed_at)
        if found["sent"] >= MIN_SENT and found["bounce_rate"] > bounce_limit:
            paused.append((source_id, _(
                "Bounce rate %(rate)s%% (%(bounces)d of %(sent)d sent) is above %(limit)s%%")
                % {"rate": found["bounce_rate"], "bounces": found["bounces"],
                   "sent": found["sent"], "limit": bounce_limit}))
        elif (found["sent"] >= MIN_SENT_COMPLAINTS
              and found["complaint_rate"] > complaint_limit):
            paused.append((source_id, _(
                "Complaint rate %(rate)s%% (%(complaints)d of %(sent)d sent) is above "
                "%(limit)s%%") % {"rate": found["complaint_rate"],
                                  "complaints": found["complaints"], "sent": found["sent"],
                                  "limit": complaint_limit}))
    return paused
