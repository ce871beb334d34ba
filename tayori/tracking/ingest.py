"""Event ingestion off the request path. Endpoints hand a ``Hit`` to ``add`` and answer at once;
a thread per process writes what gathered every second (or sooner when many wait) in one
transaction: the events, each delivery's response row, the hourly rollups and the breakdowns,
so dashboards read a few rows instead of scanning events. A crash loses at most the last
second's hits, which a tracking pixel can afford.

Listeners hear of what people did after each write commits: ``LISTENERS`` (response
notifications) of their clicks, ``EVENT_LISTENERS`` (webhooks) of all their events; machines'
events are told to neither."""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import threading
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from tayori.delivery.models import Delivery
from tayori.tracking import clients, machines
from tayori.tracking.models import (
    Breakdown,
    Event,
    Kind,
    Machine,
    Response,
    Rollup,
    TrackingSettings,
)

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
FLUSH_AT = 2000  # hits waiting that wake the writer early
MAX_PENDING = 200_000  # beyond this (database down), new hits are dropped, not queued forever

# Callables taking the list of stored human click Events, run after each write commits.
LISTENERS: list = []
# Callables taking the list of every stored human Event (any kind), likewise.
EVENT_LISTENERS: list = []


@dataclass(slots=True)
class Hit:
    kind: str
    delivery_id: int
    at: dt.datetime
    ip: str | None = None
    user_agent: str = ""
    head: bool = False
    link_index: int | None = None
    value: int | None = None


_pending: list[Hit] = []
_lock = threading.Lock()
_wake = threading.Event()
_writer: tuple[int, threading.Thread] | None = None  # (pid, thread): a forked worker starts its own


def add(hit: Hit) -> None:
    with _lock:
        if len(_pending) >= MAX_PENDING:
            return
        _pending.append(hit)
        waiting = len(_pending)
    if waiting >= FLUSH_AT:
        _wake.set()
    if getattr(settings, "TRACKING_WRITER", True):
        _ensure_writer()


def pending() -> int:
    return len(_pending)


def _ensure_writer() -> None:
    global _writer
    if _writer is not None and _writer[0] == os.getpid() and _writer[1].is_alive():
        return
    with _lock:
        if _writer is None or _writer[0] != os.getpid() or not _writer[1].is_alive():
            thread = threading.Thread(target=_run, name="tayori-tracking", daemon=True)
            _writer = (os.getpid(), thread)
            thread.start()


def _run() -> None:
    while True:
        _wake.wait(FLUSH_SECONDS)
        _wake.clear()
        try:
            flush(hold=machines.BURST_SECONDS)
        except Exception:  # keep writing: the next second may find the database back
            log.exception("tracking events could not be stored")
        finally:
            close_old_connections()


atexit.register(lambda: _pending and flush())


def flush(*, hold: float = 0, now: dt.datetime | None = None) -> int:
    """Store the waiting hits; returns how many events were stored. With ``hold``, clicks
    younger than that many seconds wait for the next turn, so that a scanner's burst over
    several links (machines.BURST_SECONDS) is judged whole, not split between two writes."""
    with _lock:
        if hold:
            since = (now or timezone.now()) - dt.timedelta(seconds=hold)
            hits = [h for h in _pending if h.kind != Kind.CLICK or h.at <= since]
            _pending[:] = [h for h in _pending if h.kind == Kind.CLICK and h.at > since]
        else:
            hits = _pending[:]
            del _pending[:]
    if not hits:
        return 0
    try:
        return store(hits)
    except Exception:
        with _lock:  # put them back for the next try, oldest first
            _pending[:0] = hits[:MAX_PENDING - len(_pending)]
        raise


def store(hits: list[Hit]) -> int:
    deliveries = {pk: (workspace, source, member, sent_at, address)
                  for pk, workspace, source, member, sent_at, address in
                  Delivery.objects.filter(pk__in={h.delivery_id for h in hits}).values_list(
                      "pk", "workspace_id", "source_id", "member_id", "sent_at", "address")}
    hits = sorted((h for h in hits if h.delivery_id in deliveries), key=lambda h: h.at)
    if not hits:
        return 0
    options = {s.workspace_id: s for s in TrackingSettings.objects.filter(
        workspace_id__in={d[0] for d in deliveries.values()})}
    defaults = TrackingSettings()
    events = []
    for hit in hits:
        workspace, source, member, sent_at, _address = deliveries[hit.delivery_id]
        option = options.get(workspace, defaults)
        machine = (machines.classify(hit.kind, head=hit.head, ip=hit.ip,
                                     user_agent=hit.user_agent, at=hit.at, sent_at=sent_at,
                                     scanner_seconds=option.scanner_seconds)
                   if hit.kind in (Kind.OPEN, Kind.CLICK) else Machine.HUMAN)
        events.append(Event(workspace_id=workspace, source_id=source, delivery_id=hit.delivery_id,
                            member_id=member, kind=hit.kind, link_index=hit.link_index,
                            value=hit.value, at=hit.at, ip=machines.anonymize(hit.ip, option.ip_mode),
                            user_agent=hit.user_agent[:400], machine=machine))
    _flag_bursts(events)
    with transaction.atomic():
        responses = _responses(deliveries, {e.delivery_id for e in events})
        seen_links = _clicked_links([e.delivery_id for e in events if e.kind == Kind.CLICK])
        rollups: dict = defaultdict(lambda: [0, 0, 0, 0])
        breakdowns: dict = defaultdict(lambda: [0, 0])
        stored = []
        for event in events:  # in time order: a click counts for a conversion after it
            response = responses[event.delivery_id]
            if event.kind == Kind.CONVERSION:
                if not _attributed(event, response, options.get(event.workspace_id, defaults)):
                    continue
                event.link_index = response.last_link  # credited to the link last clicked
            stored.append(event)
            unopened = response.opened_at is None
            first = _apply(event, response)
            hour = event.at.replace(minute=0, second=0, microsecond=0)
            row = rollups[(event.workspace_id, event.source_id, hour, event.kind)]
            row[0] += 1
            if event.machine:
                row[2] += 1
                continue
            row[1] += first
            row[3] += event.value or 0
            implied = event.kind == Kind.CLICK and unopened
            address = deliveries[event.delivery_id][4]
            for dimension, value, unique in _dimensions(event, address, first, seen_links):
                cell = breakdowns[(event.workspace_id, event.source_id, event.kind,
                                   dimension, value)]
                cell[0] += 1
                cell[1] += unique
                if implied and dimension != "link":
                    breakdowns[(event.workspace_id, event.source_id, Kind.OPEN, dimension,
                                value)][1] += 1
            if implied:  # mail read with images off: the click is its first open
                rollups[(event.workspace_id, event.source_id, hour, Kind.OPEN)][1] += 1
        Event.objects.bulk_create(stored, batch_size=1000)
        _save_responses(responses.values())
        _increment(Rollup, ("workspace_id", "source_id", "hour", "kind"),
                   ("total", "unique", "machine", "value"), ("source_id", "hour", "kind"),
                   [(*key, *values) for key, values in sorted(rollups.items())])
        _increment(Breakdown, ("workspace_id", "source_id", "kind", "dimension", "value"),
                   ("total", "unique"), ("source_id", "kind", "dimension", "value"),
                   [(*key, *values) for key, values in sorted(breakdowns.items())])
        clicks = [e for e in stored if e.kind == Kind.CLICK and not e.machine]
        if clicks and LISTENERS:
            transaction.on_commit(lambda: _tell(clicks, LISTENERS))
        people = [e for e in stored if not e.machine]
        if people and EVENT_LISTENERS:
            transaction.on_commit(lambda: _tell(people, EVENT_LISTENERS))
    return len(stored)


_RESPONSE_FIELDS = ["opens", "clicks", "conversions", "value", "machine_opens",
                    "machine_clicks", "opened_at", "clicked_at", "last_clicked_at", "last_link",
                    "converted_at", "unsubscribed_at"]


def _save_responses(responses) -> None:
    # One UPDATE per row in one executemany: bulk_update's CASE over every row costs
    # milliseconds a row, and the writer shares its process with the endpoints.
    table = connection.ops.quote_name(Response._meta.db_table)
    columns = [Response._meta.get_field(name).column for name in _RESPONSE_FIELDS]
    sets = ", ".join(f"{connection.ops.quote_name(c)} = %s" for c in columns)
    key = connection.ops.quote_name(Response._meta.pk.column)
    adapt = connection.ops.adapt_datetimefield_value  # stored as the ORM stores them
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {sets} WHERE {key} = %s", [
            [adapt(v) if isinstance(v, dt.datetime) else v
             for v in (getattr(r, name) for name in _RESPONSE_FIELDS)] + [r.pk]
            for r in responses])


def _flag_bursts(events: list[Event]) -> None:
    by_delivery = defaultdict(list)
    for event in events:
        if event.kind == Kind.CLICK and not event.machine:
            by_delivery[event.delivery_id].append(event)
    for clicks in by_delivery.values():
        for i in machines.bursts([(e.at, e.link_index) for e in clicks]):
            clicks[i].machine = Machine.SCANNER


def _responses(deliveries: dict, ids: set[int]) -> dict[int, Response]:
    Response.objects.bulk_create(
        [Response(delivery_id=pk, workspace_id=deliveries[pk][0], source_id=deliveries[pk][1],
                  member_id=deliveries[pk][2]) for pk in sorted(ids)],
        ignore_conflicts=True)
    rows = Response.objects.filter(delivery_id__in=ids).order_by("delivery_id")
    if connection.features.has_select_for_update:  # two writers never count a first twice
        rows = rows.select_for_update()
    return {r.delivery_id: r for r in rows}


def _clicked_links(delivery_ids: list[int]) -> set[tuple[int, int]]:
    if not delivery_ids:
        return set()
    return set(Event.objects.filter(delivery_id__in=set(delivery_ids), kind=Kind.CLICK,
                                    machine="").values_list("delivery_id", "link_index"))


def _attributed(event: Event, response: Response, option: TrackingSettings) -> bool:
    """A conversion counts only after a person's click within the window."""
    if event.kind != Kind.CONVERSION:
        return True
    last = response.last_clicked_at
    return last is not None and last <= event.at <= last + dt.timedelta(
        days=option.conversion_days)


def _apply(event: Event, response: Response) -> bool:
    """Count the event on its delivery's response; True when it is the person's first."""
    at = event.at
    if event.kind == Kind.OPEN:
        if event.machine:
            response.machine_opens += 1
            return False
        response.opens += 1
        first, response.opened_at = response.opened_at is None, response.opened_at or at
        return first
    if event.kind == Kind.CLICK:
        if event.machine:
            response.machine_clicks += 1
            return False
        response.clicks += 1
        # A click implies the mail was opened, even with images blocked.
        response.opened_at = response.opened_at or at
        if response.last_clicked_at is None or at >= response.last_clicked_at:
            response.last_clicked_at, response.last_link = at, event.link_index
        first, response.clicked_at = response.clicked_at is None, response.clicked_at or at
        return first
    if event.kind == Kind.CONVERSION:
        response.conversions += 1
        response.value += event.value or 0
        first, response.converted_at = response.converted_at is None, response.converted_at or at
        return first
    first = response.unsubscribed_at is None
    response.unsubscribed_at = response.unsubscribed_at or at
    return first


def _dimensions(event: Event, address: str, first: bool, seen_links: set):
    if event.kind == Kind.CLICK and event.link_index is not None:
        key = (event.delivery_id, event.link_index)
        yield "link", str(event.link_index), key not in seen_links
        seen_links.add(key)
    if event.kind == Kind.CONVERSION and event.link_index is not None:
        yield "link", str(event.link_index), first
    if event.kind in (Kind.OPEN, Kind.CLICK):
        client, device = clients.client_of(event.user_agent)
        yield "client", client, first
        yield "device", device, first
        yield "domain", clients.domain_group(address)[:100], first


def _increment(model, key_columns, count_columns, conflict, rows) -> None:
    """Add counts to rows keyed by ``conflict``, creating them: one INSERT … ON CONFLICT DO
    UPDATE that both SQLite and PostgreSQL speak. Rows come sorted, so two writers lock them
    in the same order and never deadlock."""
    if not rows:
        return
    table = model._meta.db_table
    columns = [*(model._meta.get_field(c.removesuffix("_id")).column for c in key_columns),
               *count_columns]
    conflict_columns = [model._meta.get_field(c.removesuffix("_id")).column for c in conflict]
    quote = connection.ops.quote_name
    updates = ", ".join(f"{quote(c)} = {quote(table)}.{quote(c)} + excluded.{quote(c)}"
                        for c in count_columns)
    sql = (f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in columns)}) "
           f"VALUES ({', '.join(['%s'] * len(columns))}) "
           f"ON CONFLICT ({', '.join(quote(c) for c in conflict_columns)}) DO UPDATE SET {updates}")
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _tell(events: list[Event], listeners: list) -> None:
    for listener in listeners:
        try:
            listener(events)
        except Exception:
            log.exception("a tracking listener failed")
