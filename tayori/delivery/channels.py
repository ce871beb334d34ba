"""Channels: where rendered mail goes. A channel takes a batch of outgoing messages and answers
one Outcome per message; the engine never knows whether they were stored or sent.

- Outbox: the sandbox. Messages are stored and shown in the UI; nothing leaves the machine.
- Relays: the workspace's SMTP relays, over pooled pipelined connections, with failover.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from dataclasses import dataclass

from django.utils import timezone

from tayori.delivery.models import OutboxMessage, Relay
from tayori.delivery.queue import Outcome
from tayori.delivery.smtp.client import Envelope, RelayUnavailable, SmtpConnection
from tayori.lib import crypto

# A deferred message is retried after 5, 10, 20… minutes, at most every 4 hours, and fails
# once it has waited this long (the default: three days).
MAX_AGE = dt.timedelta(days=3)
RELAY_REST = dt.timedelta(seconds=60)  # how long a relay that failed to connect is left alone


@dataclass(slots=True)
class Outgoing:
    """One rendered message, ready for a channel."""

    delivery_id: int
    workspace_id: int
    source_id: int
    mail_from: str  # envelope sender (VERP)
    recipient: str
    subject: str
    message_id: str
    data: bytes  # the whole message, CRLF line endings
    attempts: int
    queued_at: dt.datetime


def retry_outcome(message: Outgoing, reply: str, now: dt.datetime) -> Outcome:
    """A temporary failure: retry later with exponential backoff, or give up when too old."""
    if now - message.queued_at >= MAX_AGE:
        return Outcome(message.delivery_id, "failed", f"expired after retries: {reply}")
    wait = min(dt.timedelta(minutes=5) * 2 ** message.attempts, dt.timedelta(hours=4))
    return Outcome(message.delivery_id, "deferred", reply, retry_at=now + wait)


class Outbox:
    """The sandbox channel: stores each message as the UI shows it."""

    def __init__(self, db):
        self.db = db  # runs a database call on the lane's database thread

    async def send(self, batch: list[Outgoing]) -> list[Outcome]:
        await self.db(OutboxMessage.objects.bulk_create, [
            OutboxMessage(workspace_id=m.workspace_id, delivery_id=m.delivery_id,
                          source_id=m.source_id, mail_from=m.mail_from, recipient=m.recipient,
                          subject=m.subject[:500], raw=m.data) for m in batch])
        return [Outcome(m.delivery_id, "sent", "250 stored in the sandbox outbox", m.message_id)
                for m in batch]

    async def close(self) -> None:
        pass


class Relays:
    """A workspace's relays: one connection per lane task, reused across batches, replaced after
    `max_per_connection` messages; a relay that cannot be reached is rested and the next one
    (by weight) takes over. If none can be reached the batch goes back to the queue unspent."""

    def __init__(self, relays: list[Relay], *, helo: str, db, limits=None):
        self.relays, self.db, self.limits = relays, db, limits
        self.helo = helo
        self.connection: SmtpConnection | None = None
        self.relay: Relay | None = None
        self.slot = None  # this lane's hold on one of the relay's connections
        self.sent_on_connection = 0

    def _candidates(self) -> list[Relay]:
        now = timezone.now()
        usable = [r for r in self.relays if r.active and not (r.down_until and r.down_until > now)]
        # Weighted order: a random draw per relay, heavier relays first more often.
        return sorted(usable, key=lambda r: random.random() ** (1 / max(r.weight, 1)),
                      reverse=True)

    async def _connect(self) -> SmtpConnection:
        if self.connection is not None and self.sent_on_connection < self.relay.max_per_connection:
            return self.connection
        await self.close()
        last_error = "no relay is configured or all are resting"
        candidates = self._candidates()
        if self.limits is not None and candidates:
            # A relay whose connections are all taken by other lanes is passed over; when every
            # relay is full, this lane waits its turn on the first (a lane that sees others
            # waiting gives its connection up after each batch).
            free = [r for r in candidates if not self.limits.slots(r).locked()]
            candidates = free or candidates[:1]
        for relay in candidates:
            slot = self.limits.slots(relay) if self.limits is not None else None
            if slot is not None:
                self.limits.waiting[relay.pk] += 1
                try:
                    await slot.acquire()
                finally:
                    self.limits.waiting[relay.pk] -= 1
            try:
                self.connection = await SmtpConnection.open(
                    relay.host, relay.port, helo=self.helo,
                    tls="off" if relay.tls == Relay.Tls.IMPLICIT else relay.tls,
                    implicit_tls=relay.tls == Relay.Tls.IMPLICIT,
                    username=relay.username or None,
                    password=crypto.decrypt(relay.password) if relay.password else None)
            except RelayUnavailable as error:
                if slot is not None:
                    slot.release()
                last_error = f"{relay.name}: {error}"
                await self.db(_rest, relay, str(error))
                continue
            self.relay, self.sent_on_connection, self.slot = relay, 0, slot
            return self.connection
        raise RelayUnavailable(last_error)

    async def send(self, batch: list[Outgoing]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        pending = batch
        while pending:
            try:
                connection = await self._connect()
            except RelayUnavailable as error:
                # Back to the queue unspent, due when the relays have rested.
                retry_at = timezone.now() + RELAY_REST
                for m in pending:
                    outcomes[m.delivery_id] = Outcome(m.delivery_id, "requeue",
                                                      str(error)[:500], retry_at=retry_at)
                break
            room = self.relay.max_per_connection - self.sent_on_connection
            chunk, pending = pending[:room], pending[room:]
            if self.limits is not None and self.relay.max_per_hour:
                chunk, over = self._within_hourly_cap(chunk)
                for m, wait in over:
                    outcomes[m.delivery_id] = Outcome(
                        m.delivery_id, "requeue", f"waiting: hourly limit of {self.relay.name}",
                        retry_at=timezone.now() + dt.timedelta(seconds=max(wait, 1)))
                if not chunk:
                    continue
            try:
                results = await connection.send(
                    [Envelope(m.mail_from, [m.recipient], m.data) for m in chunk])
            except RelayUnavailable as error:
                # Messages the relay accepted before the drop are kept; the rest go back to the
                # queue without spending an attempt.
                results = list(getattr(error, "results", []) or [])
                await self.db(_rest, self.relay, str(error))
                await self.close()
                pending = chunk[len(results):] + pending
                chunk = chunk[:len(results)]
            self.sent_on_connection += len(chunk)
            now = timezone.now()
            for message, result in zip(chunk, results, strict=True):
                outcomes[message.delivery_id] = _outcome(message, result, now)
        if self.slot is not None and self.limits.waiting[self.relay.pk]:
            await self.close()  # another lane is waiting for this relay: its turn
        return [outcomes[m.delivery_id] for m in batch]

    def _within_hourly_cap(self, chunk: list[Outgoing]):
        allowed, over = [], []
        for message in chunk:
            wait = self.limits.relay_wait(self.relay.pk, self.relay.max_per_hour)
            if wait:
                over.append((message, wait))
            else:
                allowed.append(message)
        return allowed, over

    async def close(self) -> None:
        if self.connection is not None:
            try:
                await asyncio.wait_for(self.connection.close(), 5)
            except (TimeoutError, RelayUnavailable, OSError):
                pass
            self.connection = None
        if self.slot is not None:
            self.slot.release()
            self.slot = None


def _outcome(message: Outgoing, result, now) -> Outcome:
    reply = f"{result.reply.code} {result.reply.text}"
    if result.reply.ok:
        return Outcome(message.delivery_id, "sent", reply, message.message_id)
    if result.reply.temporary:
        return retry_outcome(message, reply, now)
    return Outcome(message.delivery_id, "failed", reply)


def _rest(relay: Relay, error: str) -> None:
    relay.down_until = timezone.now() + RELAY_REST
    relay.last_error = error[:500]
    Relay.objects.filter(pk=relay.pk).update(down_until=relay.down_until,
                                             last_error=relay.last_error)
