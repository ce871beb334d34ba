"""The figures of the analytics pages. They read hourly rollups, breakdowns and response rows
(never the event table) and delivery rows per source; times are shown in the zone given.

A recipient "opened" when the response row has a first open: a person's click counts as an open
too, since mail read with images off still gets clicked. Rates count people, never machines."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDay, TruncHour, TruncMonth
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from tayori.delivery.models import Delivery, Source
from tayori.members.csvio import defuse_formula
from tayori.members.masking import mask_email
from tayori.tracking.fast import links_of
from tayori.tracking.models import Breakdown, Kind, Link, Response, Rollup

PENDING = ("queued", "held", "claimed", "deferred")
# Mail is sent within this long of being queued (save a send paused for longer): bounding
# queued_at lets workspace-wide counts by sent_at use the (workspace, queued_at) index.
QUEUED_BEFORE = dt.timedelta(days=31)
HOURLY_DAYS = 14  # a send's chart is hourly over at most this span, daily beyond it
OTHERS = "…"  # the row that sums a breakdown's long tail


@dataclass(frozen=True)
class Rate:
    """A share shown as a percentage with one decimal, or a dash when there is nothing to
    divide by."""

    part: int
    whole: int

    @property
    def percent(self) -> float | None:
        return round(100 * self.part / self.whole, 1) if self.whole else None

    def __str__(self) -> str:
        return "—" if self.percent is None else f"{self.percent:.1f}%"


def _rate(part: str, whole: str) -> property:
    return property(lambda self: Rate(getattr(self, part), getattr(self, whole)))


@dataclass
class Figures:
    """One send's (or one period's) counts. ``delivered`` were accepted by a relay, ``failed``
    were refused; opens and clicks are people's, machines' are apart."""

    source: Source | None = None
    delivered: int = 0
    failed: int = 0
    skipped: int = 0
    pending: int = 0
    cancelled: int = 0
    opens: int = 0
    unique_opens: int = 0
    machine_opens: int = 0
    clicks: int = 0
    unique_clicks: int = 0
    machine_clicks: int = 0
    conversions: int = 0
    converters: int = 0
    value: int = 0
    optouts: int = 0

    @property
    def sent(self) -> int:
        return self.delivered + self.failed

    open_rate = _rate("unique_opens", "delivered")
    ctr = _rate("unique_clicks", "delivered")
    cto = _rate("unique_clicks", "unique_opens")  # click-to-open
    optout_rate = _rate("optouts", "delivered")

    def add_rollups(self, sums: dict) -> None:
        """Take the summed rollups of each kind: {kind: (total, unique, machine, value)}."""
        opens, self.unique_opens, self.machine_opens, _v = sums.get(Kind.OPEN, (0, 0, 0, 0))
        clicks, self.unique_clicks, self.machine_clicks, _v = sums.get(Kind.CLICK, (0, 0, 0, 0))
        self.opens, self.clicks = opens - self.machine_opens, clicks - self.machine_clicks
        self.conversions, self.converters, _m, self.value = sums.get(Kind.CONVERSION, (0, 0, 0, 0))
        self.optouts = sums.get(Kind.UNSUBSCRIBE, (0, 0, 0, 0))[1]


_SUMS = {"total": Sum("total"), "unique": Sum("unique"), "machine": Sum("machine"),
         "value": Sum("value")}


def _rollup_sums(rollups, *group) -> dict:
    """{(*group values, kind): (total, unique, machine, value)} of some rollup rows."""
    rows = rollups.order_by().values(*group, "kind").annotate(**_SUMS)
    return {(*(r[g] for g in group), r["kind"]): tuple(r[k] or 0 for k in _SUMS) for r in rows}


def figures(sources: Iterable[Source]) -> list[Figures]:
    """The figures of each source, in the order given: a few grouped queries in all."""
    sources = list(sources)
    ids = [s.pk for s in sources]
    by_status: dict = defaultdict(dict)
    for source_id, status, n in (Delivery.objects.filter(source_id__in=ids).order_by()
                                 .values_list("source_id", "status").annotate(Count("id"))):
        by_status[source_id][status] = n
    opened = dict(Response.objects.filter(source_id__in=ids, opened_at__isnull=False)
                  .order_by().values_list("source_id").annotate(Count("pk")))
    sums: dict = defaultdict(dict)
    for (source_id, kind), row in _rollup_sums(Rollup.objects.filter(source_id__in=ids),
                                               "source_id").items():
        sums[source_id][kind] = row
    found = []
    for source in sources:
        counts = by_status[source.pk]
        row = Figures(source=source, delivered=counts.get("sent", 0),
                      failed=counts.get("failed", 0), skipped=counts.get("skipped", 0),
                      cancelled=counts.get("cancelled", 0),
                      pending=sum(counts.get(s, 0) for s in PENDING))
        row.add_rollups(sums[source.pk])
        row.unique_opens = opened.get(source.pk, 0)  # clickers with images off included
        found.append(row)
    return found


def started_sources(workspace, kind: str | None = None):
    sources = Source.objects.filter(workspace=workspace, started_at__isnull=False)
    if kind:
        sources = sources.filter(kind=kind)
    return sources.order_by("-started_at", "-id")


# --- the workspace over time ------------------------------------------------------------------

def _recent(workspace, start: dt.datetime, end: dt.datetime | None = None):
    rows = Delivery.objects.filter(workspace=workspace, queued_at__gte=start - QUEUED_BEFORE)
    return rows.filter(queued_at__lt=end) if end else rows


def period_figures(workspace, start: dt.datetime, end: dt.datetime) -> Figures:
    """What happened in [start, end): mail sent then, and people's first opens, clicks,
    conversions and opt-outs then (of any send)."""
    deliveries = _recent(workspace, start, end).filter(
        Q(status="sent", sent_at__gte=start, sent_at__lt=end)
        | Q(status="failed", finished_at__gte=start, finished_at__lt=end)).aggregate(
        delivered=Count("id", filter=Q(status="sent", sent_at__gte=start, sent_at__lt=end)),
        failed=Count("id", filter=Q(status="failed", finished_at__gte=start,
                                    finished_at__lt=end)))
    row = Figures(**deliveries)
    sums = _rollup_sums(Rollup.objects.filter(workspace=workspace, hour__gte=start, hour__lt=end))
    row.add_rollups({kind: values for (kind,), values in sums.items()})
    return row


@dataclass
class Change:
    key: str
    label: str
    current: object
    previous: object
    change: float | None  # percent, or percentage points for rates

    @property
    def is_rate(self) -> bool:
        return isinstance(self.current, Rate)

    @property
    def is_yen(self) -> bool:
        return self.key == "value"


COMPARED = [("sent", _("Sent")), ("delivered", _("Delivered")),
            ("unique_opens", _("Recipients who opened")), ("open_rate", _("Open rate")),
            ("unique_clicks", _("Recipients who clicked")), ("ctr", _("Click rate (CTR)")),
            ("conversions", _("Conversions")), ("value", _("Conversion value")),
            ("optouts", _("Opt-outs"))]


def compare_periods(current: Figures, previous: Figures) -> list[Change]:
    rows = []
    for key, label in COMPARED:
        now, before = getattr(current, key), getattr(previous, key)
        if isinstance(now, Rate):
            change = (None if now.percent is None or before.percent is None
                      else round(now.percent - before.percent, 1))
        else:
            change = round(100 * (now - before) / before, 1) if before else None
        rows.append(Change(key, str(label), now, before, change))
    return rows


@dataclass
class Series:
    labels: list[str]
    values: dict[str, list[int]] = field(default_factory=dict)


# unit -> (truncation, how far back, label format)
UNITS = {"hour": (TruncHour, dt.timedelta(hours=48), "%m/%d %H:00"),
         "day": (TruncDay, dt.timedelta(days=30), "%m/%d"),
         "month": (TruncMonth, None, "%Y-%m")}


def _month_start(moment: dt.datetime, back: int = 0) -> dt.datetime:
    index = moment.year * 12 + moment.month - 1 - back
    return moment.replace(year=index // 12, month=index % 12 + 1, day=1, hour=0, minute=0,
                          second=0, microsecond=0)


def _buckets(unit: str, now: dt.datetime) -> list[dt.datetime]:
    """The local, naive bucket starts of a volume chart ending with the one holding ``now``."""
    if unit == "month":
        return [_month_start(now, back).replace(tzinfo=None) for back in range(11, -1, -1)]
    if unit == "hour":
        last, step = now.replace(minute=0, second=0, microsecond=0), dt.timedelta(hours=1)
    else:
        last, step = now.replace(hour=0, minute=0, second=0, microsecond=0), dt.timedelta(days=1)
    count = UNITS[unit][1] // step
    return [(last - step * i).replace(tzinfo=None) for i in range(count - 1, -1, -1)]


def volume(workspace, unit: str, now: dt.datetime, zone) -> Series:
    """Mail delivered per hour (last 48), day (last 30) or month (last 12), in ``zone``."""
    trunc, _span, label = UNITS[unit]
    buckets = _buckets(unit, now.astimezone(zone))
    start = buckets[0].replace(tzinfo=zone)
    counts = {moment.astimezone(zone).replace(tzinfo=None): n for moment, n in (
        _recent(workspace, start).filter(status="sent", sent_at__gte=start)
        .order_by().annotate(bucket=trunc("sent_at", tzinfo=zone)).values_list("bucket")
        .annotate(n=Count("id")))}
    return Series([b.strftime(label) for b in buckets],
                  {"delivered": [counts.get(b, 0) for b in buckets]})


WEEKDAYS = [_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun")]


def heatmap(workspace, start: dt.datetime, end: dt.datetime, zone) -> dict[str, list[list[int]]]:
    """People's opens and clicks in [start, end) by weekday (Monday first) and hour, in
    ``zone``: {kind: 7 rows of 24}."""
    grids = {kind: [[0] * 24 for _day in range(7)] for kind in (Kind.OPEN, Kind.CLICK)}
    rows = (Rollup.objects.filter(workspace=workspace, kind__in=list(grids), hour__gte=start,
                                  hour__lt=end)
            .order_by().values_list("hour", "kind").annotate(n=Sum(F("total") - F("machine"))))
    for hour, kind, n in rows:
        local = hour.astimezone(zone)
        grids[kind][local.weekday()][local.hour] += n or 0
    return grids


# --- one send ---------------------------------------------------------------------------------

@dataclass
class LinkRow:
    link: Link
    clicks: int
    unique: int
    ctr: Rate
    conversions: int = 0  # credited to this link as the recipient's last click


def links(source: Source, delivered: int) -> list[LinkRow]:
    """Each tracked link of a source with people's clicks on it and the conversions it led to."""
    counts = {(kind, int(value)): (total, unique) for kind, value, total, unique in
              Breakdown.objects.filter(source=source, dimension="link").values_list(
                  "kind", "value", "total", "unique") if value.isdigit()}
    links_of(source.pk)  # the links stored even before anyone clicked
    rows = []
    for link in Link.objects.filter(source=source).order_by("index"):
        total, unique = counts.get((Kind.CLICK, link.index), (0, 0))
        converted = counts.get((Kind.CONVERSION, link.index), (0, 0))[0]
        rows.append(LinkRow(link, total, unique, Rate(unique, delivered), converted))
    return rows


# Values the ingest writes in English (clients.client_of), shown in the operator's language.
LABELS = {"desktop": pgettext_lazy("device", "Desktop"), "phone": pgettext_lazy("device", "Phone"),
          "tablet": pgettext_lazy("device", "Tablet"), "other": pgettext_lazy("client", "Other"),
          OTHERS: _("Others")}


@dataclass
class Share:
    value: str
    opens: int  # recipients whose first open was from this value
    clicks: int

    @property
    def label(self) -> str:
        return str(LABELS.get(self.value, self.value))


def breakdown(source: Source, dimension: str, top: int = 12) -> list[Share]:
    """Recipients' first opens and clicks by ``dimension`` (domain, device, client), the most
    opened first; past ``top`` rows the rest are summed in one."""
    cells: dict = defaultdict(lambda: [0, 0])
    for value, kind, unique in Breakdown.objects.filter(
            source=source, dimension=dimension, kind__in=[Kind.OPEN, Kind.CLICK]).values_list(
            "value", "kind", "unique"):
        cells[value][0 if kind == Kind.OPEN else 1] += unique
    rows = sorted((Share(v, *c) for v, c in cells.items()), key=lambda s: (-s.opens, -s.clicks,
                                                                         s.value))
    if len(rows) > top:
        rest = rows[top - 1:]
        rows = [*rows[:top - 1], Share(OTHERS, sum(r.opens for r in rest),
                                       sum(r.clicks for r in rest))]
    return rows


SERIES = {Kind.OPEN: "opens", Kind.CLICK: "clicks", Kind.CONVERSION: "conversions"}


def timeline(source: Source, zone) -> Series:
    """People's opens, clicks and conversions of a send per hour in ``zone`` (per day when
    they span more than HOURLY_DAYS), from its start (or first response) to its last."""
    sums = _rollup_sums(Rollup.objects.filter(source=source, kind__in=list(SERIES)), "hour")
    if not sums:
        return Series([], {name: [] for name in SERIES.values()})
    hours = sorted({hour for hour, _kind in sums})
    if source.started_at and source.started_at < hours[0]:
        hours.insert(0, source.started_at.replace(minute=0, second=0, microsecond=0))
    daily = hours[-1] - hours[0] > dt.timedelta(days=HOURLY_DAYS)
    step = dt.timedelta(days=1) if daily else dt.timedelta(hours=1)

    def bucket(hour: dt.datetime) -> dt.datetime:
        local = hour.astimezone(zone).replace(tzinfo=None)
        return local.replace(hour=0) if daily else local

    first, last = bucket(hours[0]), bucket(hours[-1])
    buckets = [first + step * i for i in range(int((last - first) / step) + 1)]
    values = {name: dict.fromkeys(buckets, 0) for name in SERIES.values()}
    for (hour, kind), (total, _unique, machine, _value) in sums.items():
        values[SERIES[kind]][bucket(hour)] += total - machine
    label = "%m/%d" if daily else "%m/%d %H:00"
    return Series([b.strftime(label) for b in buckets],
                  {name: list(counts.values()) for name, counts in values.items()})


@dataclass
class Durations:
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    median_wait: dt.timedelta | None  # from queued to sent, over delivered mail
    p90_wait: dt.timedelta | None

    @property
    def took(self) -> dt.timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


def durations(source: Source, delivered: int) -> Durations:
    """How long a send took, and how long its delivered mail waited (nearest-rank median and
    90th percentile: two indexed, sorted reads instead of loading every row)."""
    waits = (Delivery.objects.filter(source=source, status="sent", sent_at__isnull=False)
             .annotate(wait=F("sent_at") - F("queued_at")).order_by("wait")
             .values_list("wait", flat=True))

    def rank(q: float):
        try:
            return waits[max(math.ceil(q * delivered) - 1, 0)] if delivered else None
        except IndexError:  # a row sent while the page was being read
            return None

    return Durations(source.started_at, source.finished_at, rank(0.5), rank(0.9))


# --- the response log -------------------------------------------------------------------------

RESPONSE_COLUMNS = [
    ("address", _("Address")), ("member_id", _("Member ID")), ("status", _("Status")),
    ("sent_at", _("Sent at")), ("response__opened_at", _("Opened at")),
    ("response__opens", _("Opens")), ("response__clicked_at", _("Clicked at")),
    ("response__clicks", _("Clicks")), ("response__converted_at", _("Converted at")),
    ("response__value", _("Conversion value (yen)")),
    ("response__unsubscribed_at", _("Unsubscribed at")),
    ("response__machine_opens", _("Machine opens")),
    ("response__machine_clicks", _("Machine clicks"))]


def response_rows(source: Source, zone, *, pii: bool) -> Iterator[list[str]]:
    """The header, then one row per recipient of a send, read in chunks; addresses masked
    unless ``pii``. Labels are translated now, not when a server thread reads the rows."""
    header = [str(label) for _key, label in RESPONSE_COLUMNS]
    statuses = {value: str(label) for value, label in Delivery.Status.choices}
    rows = (Delivery.objects.filter(source=source).order_by("id")
            .values_list(*(key for key, _label in RESPONSE_COLUMNS)))
    keys = [key for key, _label in RESPONSE_COLUMNS[3:]]

    def cells(address, member, status, *rest) -> list[str]:
        row = [defuse_formula(address if pii else mask_email(address)), str(member or ""),
               statuses.get(status, status)]
        for key, value in zip(keys, rest, strict=True):
            if isinstance(value, dt.datetime):
                value = value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
            elif value is None:  # no response row: no times, no counts
                value = "" if key.endswith("_at") else 0
            row.append(str(value))
        return row

    return itertools.chain([header], (cells(*row) for row in rows.iterator(chunk_size=2000)))
