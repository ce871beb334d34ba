"""The scheduler: once a second, start sources whose time has come, hold and release sources for
quiet hours, return due retries and abandoned leases to the queue, pause sources that are
failing, mark finished ones done, and tell each source's contacts what happened.

Any number of schedulers may run: every step is a conditional update, so two of them never start
a source twice (queue.start locks the source row)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

from django.db import close_old_connections, connection
from django.db.models import Count
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from tayori.delivery import queue, sending
from tayori.delivery.models import Delivery, DeliverySettings, Relay, Source

log = logging.getLogger(__name__)

# Auto-pause: over the last WINDOW, at least MIN_SAMPLE results of which more than FAILURE_RATE
# failed (a wall of 5xx), or every relay of the workspace resting (down, or refusing our login).
WINDOW = dt.timedelta(minutes=5)
MIN_SAMPLE = 20
FAILURE_RATE = 0.2


# Time-driven work of apps above the engine (step mails), registered from their AppConfig.ready:
# name -> callable(now=…) returning what it did.
TASKS: dict[str, object] = {}

# More reasons to pause a bulk source, from apps above the engine (bounce and complaint rates):
# callable(running sources queryset, now=…) -> [(source id, reason operators will read)].
PAUSE_CHECKS: list = []


def tick(*, now: dt.datetime | None = None, pool: ThreadPoolExecutor | None = None) -> dict:
    """One pass over everything time-driven. Returns what it did, for logs and tests."""
    now = now or timezone.now()
    extra = {name: task(now=now) for name, task in TASKS.items()}
    started = start_due(now=now, pool=pool)
    quiet, released = quiet_hours(now=now)
    requeued = queue.maintain(now=now)
    paused = auto_pause(now=now)
    done = queue.finish_done(now=now)
    for source in Source.objects.filter(pk__in=done):
        notify(source, "done")
    return {"started": started, "quiet": quiet, "released": released, "requeued": requeued,
            "paused": paused, "done": done, **extra}


def start_due(*, now: dt.datetime, pool: ThreadPoolExecutor | None = None) -> list[int]:
    """Start every scheduled source whose time has come. Fan-outs run side by side, so several
    sources scheduled for the same minute all start on time."""
    due = list(Source.objects.filter(status=Source.Status.SCHEDULED, scheduled_at__lte=now))
    if not due:
        return []
    if pool is None or len(due) == 1 or connection.vendor != "postgresql":
        for source in due:
            _start(source, now)
    else:
        list(pool.map(lambda s: _start(s, now, own_connection=True), due))
    return [s.pk for s in due]


def _start(source: Source, now, own_connection: bool = False) -> None:
    try:
        queue.start(source, now=now)
        source.refresh_from_db()
        if source.status == Source.Status.RUNNING:
            notify(source, "started")
    finally:
        if own_connection:
            connection.close()


def in_quiet_hours(start: dt.time | None, end: dt.time | None, local: dt.time) -> bool:
    """Whether a local time falls in a window that may cross midnight (21:00–08:00)."""
    if start is None or end is None or start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours(*, now: dt.datetime) -> tuple[list[int], list[int]]:
    """Hold bulk sources entering their quiet window; release those leaving it. A source's own
    window wins over the workspace default. Transactional mail is never held."""
    held, released = [], []
    sources = (Source.objects.filter(kind=Source.Kind.BULK,
                                     status__in=[Source.Status.RUNNING, Source.Status.QUIET])
               .select_related("workspace"))
    defaults = {s.workspace_id: (s.quiet_start, s.quiet_end)
                for s in DeliverySettings.objects.filter(
                    workspace__in={src.workspace_id for src in sources})}
    for source in sources:
        start, end = (source.quiet_start, source.quiet_end)
        if start is None or end is None:
            start, end = defaults.get(source.workspace_id, (None, None))
        local = now.astimezone(ZoneInfo(source.workspace.time_zone)).time()
        quiet = in_quiet_hours(start, end, local)
        if quiet and source.status == Source.Status.RUNNING:
            if queue.hold(source, Source.Status.QUIET, _("Quiet hours")):
                held.append(source.pk)
        elif not quiet and source.status == Source.Status.QUIET:
            if queue.resume(source):
                released.append(source.pk)
    return held, released


def auto_pause(*, now: dt.datetime) -> list[int]:
    """Pause bulk sources that are failing, with the reason operators will read."""
    paused = []
    running = Source.objects.filter(kind=Source.Kind.BULK, status=Source.Status.RUNNING)
    since = now - WINDOW
    # Failures are few and cheap to count (the source+status index); the sent rows of the window
    # are counted only for sources with enough failures to matter, not for every send each tick.
    failures = (Delivery.objects.filter(source__in=running, status="failed",
                                        finished_at__gte=since)
                .values("source_id").annotate(failed=Count("id")))
    for row in failures:
        if row["failed"] < MIN_SAMPLE * FAILURE_RATE:
            continue
        row["total"] = row["failed"] + Delivery.objects.filter(
            source_id=row["source_id"], status="sent", sent_at__gte=since).count()
        if row["total"] >= MIN_SAMPLE and row["failed"] / row["total"] > FAILURE_RATE:
            last = (Delivery.objects.filter(source_id=row["source_id"], status="failed")
                    .order_by("-finished_at").values_list("smtp_reply", flat=True).first())
            reason = _("%(failed)d of the last %(total)d messages failed; last reply: "
                       "%(reply)s") % {**row, "reply": last}
            paused += _pause(row["source_id"], reason)
    for check in PAUSE_CHECKS:
        for source_id, reason in check(running, now=now):
            if source_id not in paused:
                paused += _pause(source_id, reason)
    relay_workspaces = DeliverySettings.objects.filter(
        mode=DeliverySettings.Mode.RELAYS).values_list("workspace_id", flat=True)
    for workspace_id in set(running.filter(workspace_id__in=relay_workspaces)
                            .values_list("workspace_id", flat=True)):
        relays = list(Relay.objects.filter(workspace_id=workspace_id, active=True))
        if all(r.down_until and r.down_until > now for r in relays):
            errors = "; ".join(f"{r.name}: {r.last_error}" for r in relays) or _("none is set up")
            reason = _("No relay can be reached (%(errors)s)") % {"errors": errors}
            for pk in running.filter(workspace_id=workspace_id).values_list("pk", flat=True):
                paused += _pause(pk, reason)
    return paused


def _pause(source_id: int, reason: str) -> list[int]:
    source = Source.objects.get(pk=source_id)
    if queue.pause(source, reason[:300]):
        log.warning("source %s paused: %s", source_id, reason)
        notify(source, "paused")
        return [source_id]
    return []


MESSAGES = {
    "started": (lambda s: _("Sending started: %(name)s") % {"name": s.name},
                lambda s, p: _("Sending to %(total)d recipients started (%(skipped)d skipped).")
                % {"total": p["queued"] + p["held"], "skipped": p["skipped"]}),
    "done": (lambda s: _("Sending finished: %(name)s") % {"name": s.name},
             lambda s, p: _("Sent %(sent)d, failed %(failed)d, skipped %(skipped)d in "
                            "%(minutes)d minutes.")
             % {**p, "minutes": ((s.finished_at or timezone.now()) - (s.started_at or s.created_at))
                .total_seconds() // 60}),
    "paused": (lambda s: _("Sending paused: %(name)s") % {"name": s.name},
               lambda s, p: _("Paused automatically: %(reason)s") % {"reason": s.pause_reason}),
}


def notify(source: Source, event: str) -> int:
    """Tell a bulk source's contacts (its `contacts` field) by transactional mail."""
    contacts = [c.strip() for c in source.contacts.split(",") if c.strip()]
    if not contacts or source.kind != Source.Kind.BULK:
        return 0
    subject, body = MESSAGES[event]
    counts = queue.progress(source)
    with translation.override(source.workspace.language):
        content = sending.Content(subject=subject(source), text=body(source, counts),
                                  from_address=source.from_address, from_name="Tayori",
                                  tracking=False)
        sent = 0
        for contact in contacts:
            try:
                sending.enqueue_message(source.workspace, content, to=contact,
                                        name=f"{source.name}: {event}")
                sent += 1
            except sending.ContentRefused as error:
                log.warning("notice to %s for source %s not sent: %s", contact, source.pk, error)
    return sent


def run_scheduler(stop: threading.Event | None = None, interval: float = 1.0) -> None:
    """Tick until stopped (the `tayori scheduler` process, or a thread of `tayori serve`)."""
    stop = stop or threading.Event()
    with ThreadPoolExecutor(max_workers=8) as pool:
        while not stop.is_set():
            began = time.monotonic()
            try:
                tick(pool=pool)
            except Exception:
                log.exception("scheduler tick failed")
            close_old_connections()
            stop.wait(max(0.0, interval - (time.monotonic() - began)))
