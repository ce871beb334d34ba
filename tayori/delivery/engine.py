"""The delivery worker: lanes of claim → render → sign → send → record, on one asyncio loop.

A worker process runs one urgent lane, which claims only urgent rows with its own connections and
polls often, and several bulk lanes, each with its own relay connection. `tayori worker` with
several processes runs the urgent lane in a process of its own: mostly idle, it gets a core the
moment urgent mail arrives, however busy the bulk processes keep the machine. Database calls run on
one thread (Django connections are per thread); rendering and signing run on the loop; SMTP I/O
overlaps across lanes. Claims are leases: a worker killed at any moment loses nothing, its rows
return to the queue when the lease runs out (queue.maintain).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import NamedTuple

from django.db import close_old_connections, connections
from django.utils import timezone

from tayori.delivery import limits, queue
from tayori.delivery.channels import Outbox, Outgoing, Relays
from tayori.delivery.composing import Composer
from tayori.delivery.models import DeliverySettings, Priority, Relay, Stream
from tayori.members.models import Member

log = logging.getLogger(__name__)
# Render and sign this many messages between chances for other lanes (above all the urgent one)
# to run: a batch of 500 DKIM signatures would otherwise hold the loop for half a second.
SLICE = 25
COMPOSERS_KEPT = 500


class Database:
    """One thread with its own Django connection. The urgent lane has its own, so its claims
    never queue behind a bulk lane's large claim or record."""

    def __init__(self, name: str, *, relaxed_commits: bool = False):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name,
                                           initializer=_relax if relaxed_commits else None)

    async def __call__(self, call, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, partial(call, *args, **kwargs))

    async def close(self) -> None:
        await self(connections.close_all)
        self.executor.shutdown(wait=False)


def _relax() -> None:
    """Bulk claims and results commit without waiting for the WAL flush (PostgreSQL), so the
    urgent lane's commits do not queue behind theirs at the disk. A database crash may then
    forget the last results of bulk mail, which is sent again: the same at-least-once promise
    a killed worker gives."""
    from django.db import connection

    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")


class Lane:
    """One claim/send loop with its own channels (one per workspace and set of relays)."""

    def __init__(self, worker: Worker, name: str, *, batch: int, min_priority: int,
                 idle: float, db: Database):
        self.worker, self.name, self.db = worker, name, db
        self.batch, self.min_priority, self.idle = batch, min_priority, idle
        self.urgent = min_priority >= Priority.URGENT
        # Channels by route: (workspace, its relays' ids, or None for the sandbox outbox).
        self.channels: dict[tuple, Outbox | Relays] = {}
        self.routes: dict[tuple[int, str], tuple] = {}  # (workspace, stream) -> route

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                busy = await self.step()
            except Exception:  # a lane must outlive one bad batch; the rows' leases expire
                log.exception("lane %s: batch failed", self.name)
                # A connection that broke (database restarted) is dropped, so the next batch
                # opens a fresh one.
                await self.db(close_old_connections)
                busy = False
            if not busy:
                for channel in self.channels.values():  # free relay connections for others
                    await channel.close()
                try:
                    await asyncio.wait_for(stop.wait(), self.idle)
                except TimeoutError:
                    pass
        for channel in self.channels.values():
            await channel.close()

    async def step(self) -> bool:
        db = self.db
        claimed = await db(queue.claim, self.worker.name, self.batch,
                           min_priority=self.min_priority)
        if not claimed:
            return False
        if self.urgent:
            # Bulk lanes stop at their next slice until this batch is handed over.
            self.worker.urgent_clear.clear()
            try:
                return await self._deliver(claimed)
            finally:
                self.worker.urgent_clear.set()
        return await self._deliver(claimed)

    async def _deliver(self, claimed: list[queue.Claimed]) -> bool:
        db = self.db
        members = await db(member_rows, [c.member_id for c in claimed if c.member_id])
        for source_id in {c.source_id for c in claimed}:
            composer = await self.worker.composer(source_id, db)
            if composer.conditions is not None and composer.conditions.needs_loading:
                await db(composer.conditions.load, [c.member_id for c in claimed
                                                    if c.source_id == source_id and c.member_id])
        by_channel: dict[tuple[int, str], list[Outgoing]] = defaultdict(list)
        outcomes = []
        for index, row in enumerate(claimed):
            if index and not index % SLICE and not self.urgent:
                await asyncio.sleep(0)
                await self.worker.urgent_clear.wait()
            composer = await self.worker.composer(row.source_id, db)
            wait, limit = self.worker.limits.wait_for(row.address, row.source_id,
                                                      composer.max_per_hour)
            if wait:  # over a rate: back to the queue unspent, due when a token is there
                outcomes.append(queue.Outcome(row.id, "requeue", f"waiting: {limit}",
                                              retry_at=limits.later(wait)))
                continue
            rendered = composer.compose(row, members.get(row.member_id))
            if isinstance(rendered, queue.Outcome):  # the template failed for this recipient
                outcomes.append(rendered)
            else:
                by_channel[composer.workspace_id, composer.stream].append(rendered)
        for (workspace_id, stream), batch in by_channel.items():
            channel = await self.channel(workspace_id, stream)
            outcomes += await channel.send(batch)
        await db(queue.record, self.worker.name, outcomes)
        self.worker.sent += sum(1 for o in outcomes if o.kind == "sent")
        # A batch that all went back to the queue (relays down) is no progress: rest a while.
        return any(o.kind != "requeue" for o in outcomes)

    async def channel(self, workspace_id: int, stream: str = Stream.BROADCAST) -> Outbox | Relays:
        """The channel for a workspace's stream. Streams that use the same relays share one
        channel; before a channel sends, this lane's other channels that hold a connection to
        one of its relays give it up — a relay's connection slots are shared by all lanes, and
        a lane must never wait for a slot it holds itself."""
        route = self.routes.get((workspace_id, stream))
        if route is None:
            mode, relays = await self.db(_sending_setup, workspace_id, stream)
            relayed = mode == DeliverySettings.Mode.RELAYS
            route = (workspace_id, frozenset(r.pk for r in relays) if relayed else None)
            self.routes[workspace_id, stream] = route
            if route not in self.channels:
                self.channels[route] = (
                    Relays(relays, helo=self.worker.helo, db=self.db, limits=self.worker.limits)
                    if relayed else Outbox(self.db))
        for other, channel in self.channels.items():
            if other != route and other[1] and route[1] and other[1] & route[1]:
                await channel.close()
        return self.channels[route]


class MemberRow(NamedTuple):
    """What rendering and block conditions read of a member: a tuple, not a model instance."""

    pk: int
    email: str
    phone: str
    status: str
    created_at: dt.datetime
    attributes: dict


def member_rows(member_ids: list[int]) -> dict[int, MemberRow]:
    rows = Member.objects.filter(pk__in=member_ids).values_list(
        "pk", "email", "phone", "status", "created_at", "attributes")
    return {row[0]: MemberRow(*row[:5], row[5] or {}) for row in rows}


def _sending_setup(workspace_id: int, stream: str):
    """The workspace's sending mode and the relays that carry ``stream``. Should none carry it
    (every relay set to the other stream), all relays do: mail late is worse than mail sent
    through the other stream's relay, and the settings page warns of it."""
    settings = DeliverySettings.objects.filter(workspace_id=workspace_id).first()
    mode = settings.mode if settings else DeliverySettings.Mode.SANDBOX
    active = Relay.objects.filter(workspace_id=workspace_id, active=True)
    return mode, list(active.filter(stream__in=(Stream.ALL, stream)) or active)


class Worker:
    """One process's lanes and their shared caches (compiled sources, signers)."""

    def __init__(self, *, name: str | None = None, bulk_lanes: int = 4, batch: int = 500,
                 urgent_batch: int = 50, idle: float = 0.5, urgent_idle: float = 0.02,
                 share: float = 1.0, urgent_lane: bool = True):
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.limits = limits.Limits(share)
        self.helo = socket.getfqdn() or "localhost"
        self.sent = 0
        self.databases = [Database("urgent-db"), Database("bulk-db", relaxed_commits=True)]
        urgent_db, bulk_db = self.databases
        self.lanes = [Lane(self, f"{self.name}/urgent", batch=urgent_batch,
                           min_priority=Priority.URGENT, idle=urgent_idle, db=urgent_db)
                      ] if urgent_lane else []
        self.lanes += [Lane(self, f"{self.name}/bulk{i}", batch=batch,
                            min_priority=Priority.BULK, idle=idle, db=bulk_db)
                       for i in range(bulk_lanes)]
        self._composers: dict[int, Composer] = {}
        self.urgent_clear = asyncio.Event()  # cleared while the urgent lane has mail in hand
        self.urgent_clear.set()

    async def composer(self, source_id: int, db: Database) -> Composer:
        composer = self._composers.get(source_id)
        if composer is None or composer.stale:
            composer = await db(Composer.for_source, source_id)
            self._composers[source_id] = composer
            if len(self._composers) > COMPOSERS_KEPT:  # each transactional message is a source
                del self._composers[next(iter(self._composers))]
        return composer

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await asyncio.gather(*(lane.run(stop) for lane in self.lanes))
        finally:
            await self.close()

    async def drain(self) -> int:
        """Send until nothing is claimable (tests, the CLI's `--once`); returns messages sent."""
        try:
            while any([await lane.step() for lane in self.lanes]):
                pass
        finally:
            await self.close()
        return self.sent

    async def close(self) -> None:
        """Close every lane's connections and this worker's database connections."""
        for lane in self.lanes:
            for channel in lane.channels.values():
                await channel.close()
            lane.channels.clear()
            lane.routes.clear()
        for database in self.databases:
            await database.close()


def run_worker(**options) -> None:
    """Entry point of one worker process: uvloop when installed, until SIGTERM/SIGINT."""
    import signal

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; kept for odd platforms
        uvloop = None

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        worker = Worker(**options)
        log.info("worker %s started at %s", worker.name, timezone.now())
        await worker.run(stop)

    if uvloop is not None:
        uvloop.run(main())
    else:
        asyncio.run(main())
