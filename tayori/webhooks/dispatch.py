"""Sending webhook events: claim due events, post them side by side on a small thread pool (the
threads only do HTTP; the database is written by the caller's thread), log every attempt, and
schedule what comes next.

Retries. After a failed attempt (no answer, or not 2xx within TIMEOUT) an event waits 1 min,
5 min, 30 min, 2 h, 6 h, 12 h, then 24 h between attempts; its last attempt falls exactly 72
hours after it was created (or replayed), and if that fails too it gives up.

Endpoints rest while they fail. From an endpoint's first failure, it is tried only at the same
steps (1 min, 6 min, 36 min… after that failure) and then with one event — a probe — so a dead
endpoint's backlog neither burns its retries nor fills the pool. Any 2xx ends the streak and its
backlog flows again, PER_ENDPOINT at a time.

Auto-disable. An endpoint whose attempts have all failed for 72 hours (counted from the first
failure of the streak) is disabled at its last probe: its waiting events give up, the operators
who manage webhooks get an email, and the audit log records it. It is enabled again by hand;
events it missed can be replayed.

Claims are conditional updates keyed by a token, so two schedulers never send one event at the
same time; a claim lapses after LEASE, so the events of a process killed mid-request are sent
again (receivers dedupe by the event id). ``tick`` is the scheduler's task: it never waits for a
receiver longer than TICK_BUDGET, recording answers at the next tick. ``deliver`` does the same
work synchronously (the test button, tests). Delivered and given-up events, with their
attempts, are deleted after KEEP (30 days)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from tayori.accounts import audit
from tayori.accounts.models import Membership
from tayori.delivery.models import SenderDomain
from tayori.delivery.sending import Content, ContentRefused, enqueue_message
from tayori.webhooks import endpoints, signing, subscriptions, transport
from tayori.webhooks.models import Attempt, Endpoint, WebhookEvent

log = logging.getLogger(__name__)

DELAYS = (dt.timedelta(minutes=1), dt.timedelta(minutes=5), dt.timedelta(minutes=30),
          dt.timedelta(hours=2), dt.timedelta(hours=6), dt.timedelta(hours=12),
          dt.timedelta(hours=24))
DISABLE_AFTER = dt.timedelta(hours=72)
LEASE = dt.timedelta(minutes=2)  # far beyond one request's timeouts
CONCURRENCY = 8  # requests in flight per process
PER_ENDPOINT = 4  # of which to one endpoint (1 while it fails)
TICK_BUDGET = 0.5  # seconds a scheduler tick may spend here
TIMEOUT = transport.TIMEOUT
KEEP = dt.timedelta(days=30)  # delivered and given-up events, with their attempts
PRUNE_EVERY = 60.0  # seconds between two prunings in one process
PRUNE_AT_MOST = 1000  # events deleted by one pruning

WAITING = [WebhookEvent.Status.PENDING, WebhookEvent.Status.FAILED, WebhookEvent.Status.SENDING]
_E = WebhookEvent._meta.db_table

# A few due events of each endpoint, oldest first: one index probe per endpoint (the
# webhook_event_due index), so a huge backlog of one endpoint neither costs a scan
# nor keeps the others' events waiting behind it. Wrapped in a subquery because SQLite allows
# no ORDER BY/LIMIT in a member of a UNION.
_DUE = (f"SELECT * FROM (SELECT id, endpoint_id, next_attempt_at FROM {_E} "
        "WHERE endpoint_id = %s AND status IN ('pending', 'failed', 'sending') "
        "AND next_attempt_at <= %s ORDER BY next_attempt_at, id LIMIT %s) AS due{n}")
_UNION_AT_MOST = 200  # endpoints per statement


def next_try(failures: int, now: dt.datetime, deadline: dt.datetime) -> dt.datetime | None:
    """When an event is tried again after its ``failures``-th failed attempt: the schedule's
    step, but never after ``deadline``; None when the deadline has passed."""
    if now >= deadline:
        return None
    return min(now + DELAYS[min(failures, len(DELAYS)) - 1], deadline)


def next_probe(since: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """When a failing endpoint is tried next: the first step after ``now`` of the schedule
    counted from the first failure ``since``; None once it has failed for DISABLE_AFTER."""
    deadline = since + DISABLE_AFTER
    if now >= deadline:
        return None
    at, step = since, 0
    while at <= now:
        at += DELAYS[min(step, len(DELAYS) - 1)]
        step += 1
    return min(at, deadline)


# --- claiming --------------------------------------------------------------------------------

def claim(token: str, limit: int, *, now: dt.datetime, only: list[int] | None = None,
          busy: Counter | None = None) -> list[WebhookEvent]:
    """Take up to ``limit`` due events for ``token``. ``only``: just these events, due or not
    and whatever their endpoint's state (the test button). ``busy``: requests this process has
    in flight per endpoint."""
    if only is not None:
        # Not "sending": an event in flight is never taken twice, however it is asked for.
        rows = WebhookEvent.objects.filter(pk__in=only, status__in=[
            WebhookEvent.Status.PENDING, WebhookEvent.Status.FAILED])
        chosen = list(rows.values_list("pk", flat=True))
    else:
        chosen = _choose(limit, now, busy or Counter())
        rows = WebhookEvent.objects.filter(pk__in=chosen, status__in=WAITING,
                                           next_attempt_at__lte=now)
    if not chosen:
        return []
    rows.update(status=WebhookEvent.Status.SENDING, claimed_by=token,
                next_attempt_at=now + LEASE, attempts=F("attempts") + 1)
    return list(WebhookEvent.objects.filter(pk__in=chosen, claimed_by=token,
                                            status=WebhookEvent.Status.SENDING)
                .select_related("endpoint", "workspace"))


def _choose(limit: int, now: dt.datetime, busy: Counter) -> list[int]:
    ready = list(Endpoint.objects.filter(active=True).exclude(resting_until__gt=now)
                 .values_list("pk", "consecutive_failures"))
    allowed = {pk: (1 if failures else PER_ENDPOINT) - busy[pk] for pk, failures in ready}
    allowed = {pk: n for pk, n in allowed.items() if n > 0}
    if not allowed:
        return []
    stamp = connection.ops.adapt_datetimefield_value(now)
    found = []
    pks = sorted(allowed)
    for start in range(0, len(pks), _UNION_AT_MOST):
        part = pks[start:start + _UNION_AT_MOST]
        sql = " UNION ALL ".join(_DUE.format(n=n) for n in range(len(part)))
        params = [value for pk in part for value in (pk, stamp, allowed[pk])]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found += cursor.fetchall()
    found.sort(key=lambda row: (_instant(row[2]), row[0]))
    return [pk for pk, _endpoint, _at in found[:limit]]


def _instant(value) -> dt.datetime:
    """Raw cursors on SQLite may return times as text, and naive; the ORM would convert."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if timezone.is_naive(value) else value


# --- sending ---------------------------------------------------------------------------------

_pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): a forked process makes its own
_pool_lock = threading.Lock()
_inflight: dict[Future, tuple[WebhookEvent, int]] = {}  # the scheduler's requests under way
_pruned_at = 0.0  # time.monotonic() of this process's last pruning


def _executor() -> ThreadPoolExecutor:
    global _pool, _inflight
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="webhooks"))
            _inflight = {}
        return _pool[1]


def _answer(future: Future) -> transport.Answer:
    try:
        return future.result()
    except Exception as error:  # a bug, not the receiver: logged, and the event retried
        log.exception("webhook post failed unexpectedly")
        return transport.Answer(error=f"internal error: {type(error).__name__}")


def _start(events: list[WebhookEvent], now: dt.datetime) -> dict[Future, tuple]:
    """Log an attempt for each event, then hand its request to the pool."""
    attempts = Attempt.objects.bulk_create([
        Attempt(workspace_id=e.workspace_id, endpoint_id=e.endpoint_id, event=e,
                number=e.attempts, started_at=now) for e in events])
    keys: dict[int, list[str]] = {}
    started = {}
    pool = _executor()
    for event, attempt in zip(events, attempts, strict=True):
        if event.endpoint_id not in keys:
            keys[event.endpoint_id] = endpoints.secrets_of(event.endpoint, now)
        body = event.body.encode()
        headers = {"Tayori-Event-Id": event.uid, "Tayori-Event-Type": event.type,
                   "Tayori-Attempt": str(event.attempts),
                   signing.HEADER: signing.header(keys[event.endpoint_id], body)}
        future = pool.submit(transport.post, event.endpoint.url, body, headers, timeout=TIMEOUT)
        started[future] = (event, attempt.pk)
    return started


def _record(event: WebhookEvent, attempt_id: int, answer: transport.Answer,
            now: dt.datetime) -> None:
    error = answer.error or ("" if answer.ok else f"HTTP {answer.status}")
    with transaction.atomic():
        Attempt.objects.filter(pk=attempt_id).update(
            finished_at=now, duration_ms=answer.duration_ms, status_code=answer.status,
            ok=answer.ok, error=error[:300], response=answer.excerpt)
        mine = WebhookEvent.objects.filter(pk=event.pk, claimed_by=event.claimed_by,
                                           status=WebhookEvent.Status.SENDING)
        if answer.ok:
            mine.update(status=WebhookEvent.Status.DELIVERED, delivered_at=now, claimed_by="",
                        last_status_code=answer.status, last_error="")
            Endpoint.objects.filter(pk=event.endpoint_id).update(
                consecutive_failures=0, failing_since=None, resting_until=None,
                last_success_at=now)
            return
        retry_at = next_try(event.attempts, now, event.retry_until)
        mine.update(status=WebhookEvent.Status.FAILED if retry_at else WebhookEvent.Status.GAVE_UP,
                    next_attempt_at=retry_at or now, claimed_by="",
                    last_status_code=answer.status, last_error=error[:300])
        endpoint = Endpoint.objects.filter(pk=event.endpoint_id).values(
            "failing_since", "active").first()
        if endpoint is None or not endpoint["active"]:
            return
        since = endpoint["failing_since"] or now
        probe_at = next_probe(since, now)
        Endpoint.objects.filter(pk=event.endpoint_id).update(
            consecutive_failures=F("consecutive_failures") + 1, failing_since=since,
            resting_until=probe_at)
    if probe_at is None:
        _disable(event.endpoint, error, now)


def deliver(*, now: dt.datetime | None = None, only: list[int] | None = None,
            rounds: int = 100) -> int:
    """Send what is due (or just ``only``) and wait for the answers; returns attempts made."""
    now = now or timezone.now()
    made = 0
    for _round in range(rounds):
        events = claim(uuid.uuid4().hex, CONCURRENCY, now=now, only=only)
        if not events:
            break
        started = _start(events, now)
        for future, (event, attempt_id) in started.items():
            _record(event, attempt_id, _answer(future), now)
        made += len(events)
        if only is not None:
            break
    return made


def tick(*, now: dt.datetime | None = None) -> int:
    """The scheduler's task: record the answers that came back, claim what the pool has room
    for, and return within TICK_BUDGET whatever the receivers do. Returns attempts recorded."""
    global _pruned_at
    if time.monotonic() - _pruned_at > PRUNE_EVERY:
        _pruned_at = time.monotonic()
        prune(now=now or timezone.now())
    if not _inflight and not subscriptions.anyone():
        return 0
    _executor()
    deadline = time.monotonic() + TICK_BUDGET
    recorded = 0
    while True:
        for future in [f for f in _inflight if f.done()]:
            event, attempt_id = _inflight.pop(future)
            _record(event, attempt_id, _answer(future), timezone.now())
            recorded += 1
        room = CONCURRENCY - len(_inflight)
        if room > 0:
            busy = Counter(event.endpoint_id for event, _a in _inflight.values())
            events = claim(uuid.uuid4().hex, room, now=now or timezone.now(), busy=busy)
            _inflight.update(_start(events, timezone.now()) if events else {})
        remaining = deadline - time.monotonic()
        if not _inflight or remaining <= 0:
            return recorded
        done, _pending = wait(list(_inflight), timeout=remaining, return_when=FIRST_COMPLETED)
        if not done:
            return recorded
        now = None  # later claims in this tick are at the real time


def prune(*, now: dt.datetime) -> int:
    """Delete finished events older than KEEP and their attempts, PRUNE_AT_MOST at a time,
    oldest first; returns the events deleted."""
    cutoff = now - KEEP
    oldest = WebhookEvent.objects.order_by("id").values_list("created_at", flat=True).first()
    if oldest is None or oldest >= cutoff:  # the usual answer, from one index lookup
        return 0
    old = list(WebhookEvent.objects.filter(
        created_at__lt=cutoff,
        status__in=[WebhookEvent.Status.DELIVERED, WebhookEvent.Status.GAVE_UP])
        .order_by("id").values_list("pk", flat=True)[:PRUNE_AT_MOST])
    Attempt.objects.filter(event_id__in=old).delete()
    WebhookEvent.objects.filter(pk__in=old).delete()
    return len(old)


# --- auto-disable ----------------------------------------------------------------------------

def _disable(endpoint: Endpoint, error: str, now: dt.datetime) -> None:
    with translation.override(endpoint.workspace.language or "ja"):
        reason = _("Every attempt failed for %(hours)d hours; last error: %(error)s") % {
            "hours": DISABLE_AFTER.total_seconds() // 3600, "error": error}
        if not endpoints.disable(endpoint, reason, now=now):
            return
        log.warning("webhook endpoint %s disabled: %s", endpoint.pk, reason)
        audit.record("webhook.endpoint_disabled", workspace=endpoint.workspace,
                     target=f"webhook:{endpoint.pk}", url=endpoint.url, reason=reason,
                     automatic=True)
        notify_disabled(endpoint, reason)


def notify_disabled(endpoint: Endpoint, reason: str) -> int:
    """Mail the operators who manage webhooks that the endpoint was disabled; returns the
    messages queued. The sender is the workspace's first sender domain."""
    workspace = endpoint.workspace
    domain = (SenderDomain.objects.filter(workspace=workspace).order_by("id")
              .values_list("domain", flat=True).first())
    recipients = sorted({m.operator.email for m in Membership.objects.filter(
        workspace=workspace, operator__is_active=True).select_related("operator", "role")
        if m.has("webhooks.manage")})
    if domain is None or not recipients:
        log.warning("no notice of disabled webhook endpoint %s: %s", endpoint.pk,
                    "no sender domain" if domain is None else "nobody manages webhooks")
        return 0
    # The URL and the error travel as data, never inside the template text.
    data = {"subject": _("Webhook endpoint disabled: %(url)s") % {"url": endpoint.url},
            "text": _("Tayori stopped posting events to %(url)s in the workspace "
                      "“%(workspace)s”.\n\nReason: %(reason)s\n\nEvents waiting for it were "
                      "given up. Fix the receiver, enable the endpoint again under Mail → "
                      "Webhooks, and replay the failed events from there.\n")
            % {"url": endpoint.url, "workspace": workspace.name, "reason": reason}}
    content = Content(subject="{{ data.subject }}", text="{{ data.text }}",
                      from_address=f"tayori@{domain}", from_name="Tayori", tracking=False)
    queued = 0
    for address in recipients:
        try:
            enqueue_message(workspace, content, to=address, data=data,
                            name=(_("Webhook disabled: %(url)s") % {"url": endpoint.url})[:200])
            queued += 1
        except ContentRefused as refused:
            log.warning("notice of disabled webhook %s to %s refused: %s", endpoint.pk,
                        address, refused)
    return queued
