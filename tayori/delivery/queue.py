"""The queue side of Delivery rows: fan a bulk source out to its audience in one statement, claim
batches under a lease, record results in bulk, and return due or abandoned rows to the queue.

Every function here is set-based: the engine moves millions of rows, so nothing loops over
members or deliveries in Python except to build one statement's parameters."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef
from django.utils import timezone

from tayori.delivery import signals
from tayori.delivery.models import Delivery, Priority, Source
from tayori.members.models import Member, Suppression
from tayori.members.segments.language import SegmentError
from tayori.members.segments.sql import segment_members, segment_queryset

_T = Delivery._meta.db_table
_S = Source._meta.db_table

# Why a member of the audience gets no mail. Inactive members are skipped with their status
# as the reason (unsubscribed, bounced, complained, blocked).
NO_ADDRESS, SUPPRESSED, DUPLICATE = "no_address", "suppressed", "duplicate"

# Which members a stream skips for their status. Transactional mail (an incident notice) still
# reaches unsubscribed members, as sending.enqueue_message does; an address that bounced,
# complained or was blocked is skipped whatever the stream, and so is a sign-up not yet
# confirmed (only its confirmation mail, sent one by one, reaches it).
_INACTIVE = {
    "broadcast": "m.status <> 'active'",
    "transactional": "m.status IN ('bounced', 'complained', 'blocked', 'pending')",
}

_FAN_OUT = f"""
INSERT INTO {_T} (workspace_id, source_id, member_id, address, channel, priority, status,
                  skip_reason, attempts, next_attempt_at, claimed_by, message_id, smtp_reply,
                  queued_at, finished_at)
SELECT workspace_id, %s, id, email, 'email', %s,
       CASE WHEN reason = '' THEN 'queued' ELSE 'skipped' END, reason, 0, %s, '', '', '', %s,
       CASE WHEN reason = '' THEN NULL ELSE %s END
FROM (
  SELECT m.workspace_id, m.id, m.email,
         CASE WHEN m.email = '' THEN '{NO_ADDRESS}'
              WHEN {{inactive}} THEN m.status
              WHEN EXISTS (SELECT 1 FROM {Suppression._meta.db_table} s
                           WHERE s.workspace_id = m.workspace_id AND s.kind = 'email'
                             AND s.value = m.email
                             AND (s.expires_at IS NULL OR s.expires_at > %s))
                THEN '{SUPPRESSED}'
              ELSE '' END AS reason
  FROM {Member._meta.db_table} m
  WHERE m.workspace_id = %s AND m.id IN ({{audience}})
) AS audience
ORDER BY id
"""

# Addresses differing only in the case of the local part reach one mailbox in practice: the
# first row (lowest id) is kept.
_DEDUPE = f"""
UPDATE {_T} SET status = 'skipped', skip_reason = '{DUPLICATE}', finished_at = %s
WHERE source_id = %s AND status = 'queued' AND id NOT IN (
  SELECT MIN(id) FROM {_T} WHERE source_id = %s AND status = 'queued' GROUP BY LOWER(address))
"""


def add_rows(source: Source, members, *, now: dt.datetime) -> int:
    """Append rows for more members to a running source (a step mail's, as members fall due):
    the same statement and skip reasons as a fan-out. Returns rows added."""
    audience_sql, audience_params = members.order_by().values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(_FAN_OUT.format(audience=audience_sql, inactive=_INACTIVE[source.stream]), [
            source.pk, source.priority, now, now, now, now, source.workspace_id,
            *audience_params])
        added = cursor.rowcount
    Source.objects.filter(pk=source.pk).update(total=F("total") + added)
    return added


@transaction.atomic
def fan_out(source: Source, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Create one row per audience member: queued, or skipped with its reason. Returns the
    counts per reason and stores the totals on the source. Runs once per source."""
    now = now or timezone.now()
    members = (segment_queryset(source.workspace, source.audience, now=now)
               if source.audience is not None else segment_members(source.segment, now=now))
    audience = members.order_by().values("id")
    audience_sql, audience_params = audience.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(_FAN_OUT.format(audience=audience_sql, inactive=_INACTIVE[source.stream]), [
            source.pk, source.priority, now, now, now, now, source.workspace_id,
            *audience_params])
        if source.once_per_address:
            cursor.execute(_DEDUPE, [now, source.pk, source.pk])
    counts = Counter()
    for row in (Delivery.objects.filter(source=source).order_by()
                .values("status", "skip_reason").annotate(n=Count("id"))):
        counts[row["skip_reason"] or row["status"]] += row["n"]
    source.total = sum(counts.values())
    source.skipped = {reason: n for reason, n in counts.items() if reason != "queued"}
    source.save(update_fields=["total", "skipped"])
    return dict(counts)


@dataclass(slots=True)
class Claimed:
    """A leased row, with what the engine needs to render and send it."""

    id: int
    source_id: int
    member_id: int | None
    address: str
    data: dict | None
    attempts: int
    queued_at: dt.datetime
    priority: int


_CLAIM = f"""
UPDATE {_T} SET status = 'claimed', claimed_by = %s, claimed_until = %s, next_attempt_at = %s
WHERE id IN (
  SELECT d.id FROM {_T} d JOIN {_S} s ON s.id = d.source_id
  WHERE d.status = 'queued' AND s.status = 'running' AND d.priority >= %s
  ORDER BY d.priority DESC, d.id
  LIMIT %s {{lock}})
RETURNING id, source_id, member_id, address, data, attempts, queued_at, priority
"""


def claim(worker: str, limit: int, *, min_priority: int = Priority.BULK,
          now: dt.datetime | None = None, lease: dt.timedelta | None = None) -> list[Claimed]:
    """Lease up to `limit` queued rows of running sources to `worker`, highest priority first,
    in one statement. PostgreSQL skips rows other workers are claiming at the same moment;
    SQLite runs the single UPDATE under its write lock."""
    now = now or timezone.now()
    until = now + (lease or dt.timedelta(seconds=settings.DELIVERY_LEASE_SECONDS))
    lock = "FOR UPDATE OF d SKIP LOCKED" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM.format(lock=lock), [worker, until, until, min_priority, limit])
        rows = cursor.fetchall()
    decode = Delivery._meta.get_field("data").from_db_value
    claimed = [Claimed(pk, source_id, member_id, address, decode(data, None, connection),
                       attempts, _aware(queued_at), priority)
               for pk, source_id, member_id, address, data, attempts, queued_at, priority in rows]
    claimed.sort(key=lambda row: (-row.priority, row.id))  # RETURNING keeps no order
    return claimed


def _aware(value):
    """Raw cursors on SQLite return naive UTC datetimes (or text); the ORM would convert."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value is not None and timezone.is_naive(value):
        value = value.replace(tzinfo=dt.UTC)
    return value


@dataclass(slots=True)
class Outcome:
    """What happened to one claimed row. `kind` is sent, deferred, failed or requeue (the relay
    was unreachable: back to the queue without spending an attempt, at `retry_at` if given)."""

    id: int
    kind: str
    reply: str = ""
    message_id: str = ""
    retry_at: dt.datetime | None = None


_RECORD_PG = f"""
UPDATE {_T} AS d SET status = v.status, smtp_reply = v.reply,
       message_id = CASE WHEN v.message_id = '' THEN d.message_id ELSE v.message_id END,
       next_attempt_at = COALESCE(v.retry_at, d.next_attempt_at),
       sent_at = COALESCE(v.sent_at, d.sent_at), finished_at = COALESCE(v.finished_at, d.finished_at),
       attempts = d.attempts + v.spent, claimed_by = '', claimed_until = NULL
FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],
            %s::timestamptz[], %s::timestamptz[], %s::int[])
     AS v(id, status, reply, message_id, retry_at, sent_at, finished_at, spent)
WHERE d.id = v.id AND d.claimed_by = %s AND d.status = 'claimed'
"""

_RECORD_SQLITE = f"""
UPDATE {_T} SET status = %s, smtp_reply = %s,
       message_id = CASE WHEN %s = '' THEN message_id ELSE %s END,
       next_attempt_at = COALESCE(%s, next_attempt_at), sent_at = COALESCE(%s, sent_at),
       finished_at = COALESCE(%s, finished_at), attempts = attempts + %s, claimed_by = '',
       claimed_until = NULL
WHERE id = %s AND claimed_by = %s AND status = 'claimed'
"""

_STATUS = {"sent": "sent", "deferred": "deferred", "failed": "failed", "requeue": "queued"}


def _status(outcome: Outcome) -> str:
    # A row requeued for later waits as deferred (maintain returns it when due), so that
    # workers do not claim it again and again while the relays rest.
    if outcome.kind == "requeue" and outcome.retry_at is not None:
        return "deferred"
    return _STATUS[outcome.kind]


def record(worker: str, outcomes: list[Outcome], *, now: dt.datetime | None = None) -> int:
    """Store a batch of outcomes in one statement (PostgreSQL) or one executemany (SQLite).
    Rows whose lease was taken over by another worker are left to that worker."""
    if not outcomes:
        return 0
    now = now or timezone.now()
    rows = [(o.id, _status(o), o.reply[:500], o.message_id, o.retry_at,
             now if o.kind == "sent" else None, now if o.kind == "failed" else None,
             0 if o.kind == "requeue" else 1) for o in outcomes]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            columns = list(zip(*rows, strict=True))
            cursor.execute(_RECORD_PG, [list(c) for c in columns] + [worker])
        else:
            cursor.executemany(_RECORD_SQLITE, [
                (status, reply, mid, mid, retry_at, sent_at, finished_at, spent, pk, worker)
                for pk, status, reply, mid, retry_at, sent_at, finished_at, spent in rows])
        recorded = cursor.rowcount
    signals.emit("recorded", outcomes, now)
    return recorded


_PROMOTE = f"""
UPDATE {_T} SET status = 'queued', claimed_by = '', claimed_until = NULL
WHERE status IN ('deferred', 'claimed') AND next_attempt_at <= %s
  AND source_id IN (SELECT id FROM {_S} WHERE status = 'running')
"""


def maintain(*, now: dt.datetime | None = None) -> int:
    """Return to the queue deferred rows whose retry time has come and claimed rows whose
    worker died (its lease ran out). Safe to run from any process at any time."""
    with connection.cursor() as cursor:
        cursor.execute(_PROMOTE, [now or timezone.now()])
        return cursor.rowcount


# Source life cycle. Each transition moves the source's waiting rows in one statement, so the
# claim never has to look past rows of sources that are not sending.

WAITING = ("queued", "held", "deferred", "claimed")


@transaction.atomic
def start(source: Source, *, now: dt.datetime | None = None) -> None:
    """Fan a bulk source out (once) and let the engine claim its rows."""
    now = now or timezone.now()
    source = Source.objects.select_for_update().get(pk=source.pk)
    if source.status not in (Source.Status.DRAFT, Source.Status.SCHEDULED):
        return
    if (source.kind in (Source.Kind.BULK, Source.Kind.NOTICE)
            and (source.segment_id or source.audience is not None)):
        try:
            fan_out(source, now=now)
        except SegmentError as error:
            # A list or segment of the audience was deleted since: this send waits for the
            # operator instead of failing every scheduler tick (and the sources after it).
            Source.objects.filter(pk=source.pk).update(status=Source.Status.PAUSED,
                                                       pause_reason=str(error)[:300])
            return
    # started_at is the real moment sending could begin (after the fan-out), not the schedule.
    Source.objects.filter(pk=source.pk).update(status=Source.Status.RUNNING,
                                               started_at=timezone.now())
    if source.kind == Source.Kind.TRANSACTIONAL:  # a message sent later waited as held
        _release_held(source, now)


def _release_held(source: Source, now: dt.datetime) -> None:
    """Queue a scheduled message — unless, since it was asked for, its member bounced,
    complained or was blocked, or its address was suppressed."""
    held = Delivery.objects.filter(source=source, status="held")
    for status in ("bounced", "complained", "blocked"):
        held.filter(member__status=status).update(status="skipped", skip_reason=status,
                                                  finished_at=now)
    suppressed = Suppression.objects.filter(workspace_id=source.workspace_id, kind="email",
                                            value=OuterRef("address")).exclude(
                                                expires_at__lte=now)
    held.filter(Exists(suppressed)).update(status="skipped", skip_reason=SUPPRESSED,
                                           finished_at=now)
    held.update(status="queued", next_attempt_at=now)


def cancel_message(delivery: Delivery, *, now: dt.datetime | None = None) -> bool:
    """Call back one transactional message not yet handed to a relay; False when it is too
    late (claimed by a worker, sent, or finished)."""
    now = now or timezone.now()
    with transaction.atomic():
        cancelled = Delivery.objects.filter(
            pk=delivery.pk, status__in=["queued", "held", "deferred"]).update(
            status="cancelled", finished_at=now, claimed_by="")
        if cancelled:
            Source.objects.filter(pk=delivery.source_id).update(
                status=Source.Status.CANCELLED, finished_at=now)
    return bool(cancelled)


@transaction.atomic
def hold(source: Source, status: str, reason: str = "") -> bool:
    """Pause a sending source (or make it wait out quiet hours): its queued rows are held;
    rows already handed to a relay finish and are recorded as usual."""
    changed = Source.objects.filter(
        pk=source.pk, status__in=[Source.Status.RUNNING, Source.Status.QUIET]).update(
        status=status, pause_reason=reason)
    if changed:
        Delivery.objects.filter(source=source, status="queued").update(status="held")
    return bool(changed)


def pause(source: Source, reason: str = "") -> bool:
    return hold(source, Source.Status.PAUSED, reason)


@transaction.atomic
def resume(source: Source) -> bool:
    """Send the held rows. Rows that reached `sent` are never queued again."""
    changed = Source.objects.filter(pk=source.pk, status=Source.Status.PAUSED).update(
        status=Source.Status.RUNNING, pause_reason="", resumed_at=timezone.now())
    changed = changed or Source.objects.filter(pk=source.pk, status=Source.Status.QUIET).update(
        status=Source.Status.RUNNING, pause_reason="")
    if changed:
        Delivery.objects.filter(source=source, status="held").update(status="queued")
    return bool(changed)


@transaction.atomic
def cancel(source: Source, *, now: dt.datetime | None = None) -> int:
    """Stop a source for good: every row not yet handed over is cancelled."""
    now = now or timezone.now()
    Source.objects.filter(pk=source.pk).exclude(status=Source.Status.DONE).update(
        status=Source.Status.CANCELLED, finished_at=now)
    return Delivery.objects.filter(source=source, status__in=["queued", "held", "deferred"]).update(
        status="cancelled", finished_at=now, claimed_by="")


def finish_done(*, now: dt.datetime | None = None) -> list[int]:
    """Mark running sources with nothing left to send as done; returns their ids."""
    now = now or timezone.now()
    # A step mail's source stays running: the scheduler keeps adding rows as members fall due.
    running = Source.objects.filter(status=Source.Status.RUNNING).exclude(kind=Source.Kind.STEP)
    busy = Delivery.objects.filter(source__in=running, status__in=WAITING).values("source_id")
    done = list(running.exclude(pk__in=busy).values_list("pk", flat=True))
    if done:
        Source.objects.filter(pk__in=done, status=Source.Status.RUNNING).update(
            status=Source.Status.DONE, finished_at=now)
    return done


def progress(source: Source) -> dict[str, int]:
    """Rows of a source per status (skipped rows are counted per reason in source.skipped)."""
    counts = dict.fromkeys(Delivery.Status.values, 0)
    for row in (Delivery.objects.filter(source=source).order_by().values("status")
                .annotate(n=Count("id"))):
        counts[row["status"]] = row["n"]
    return counts
