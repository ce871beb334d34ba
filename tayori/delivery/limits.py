"""Sending rates: token buckets per recipient domain (Japanese carriers get their own defaults),
per source (its "at most per hour") and per relay. A message over a limit is not waited for: it
goes back to the queue unspent, due when its bucket will have a token, so a throttled domain
never holds up a lane's other mail.

Buckets live in each worker process; every process takes its share (1 / worker processes) of
each rate, so the workers of one machine together keep to it. A relay's "connections at most"
is shared the same way, as a semaphore each lane holds while it keeps a connection open; a lane
gives its connection up after a batch when another is waiting.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter

from django.conf import settings

# Per second, for all workers together. Carriers throttle or filter senders that arrive too
# fast; these defaults are cautious and can be changed in settings (DELIVERY_DOMAIN_LIMITS).
CARRIER_LIMITS = {
    "docomo.ne.jp": 20.0,
    "ezweb.ne.jp": 20.0,
    "au.com": 20.0,
    "softbank.ne.jp": 20.0,
    "i.softbank.jp": 20.0,
    "ymobile.ne.jp": 20.0,
}


class TokenBucket:
    """`rate` tokens a second, holding at most `burst` (at least one second's worth)."""

    def __init__(self, rate: float, burst: float | None = None):
        self.rate = rate
        self.capacity = max(burst or rate, 1.0)
        self.tokens = self.capacity
        self.at = time.monotonic()

    def take(self) -> float:
        """Take a token: 0 if there was one, else the seconds until there will be."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Limits:
    """The buckets of one worker process."""

    def __init__(self, share: float = 1.0, domains: dict[str, float] | None = None):
        self.share = share
        limits = domains if domains is not None else getattr(
            settings, "DELIVERY_DOMAIN_LIMITS", CARRIER_LIMITS)
        self.domains = {domain: TokenBucket(rate * share) for domain, rate in limits.items()}
        self.sources: dict[int, TokenBucket] = {}
        self.relays: dict[int, TokenBucket] = {}
        self.connections: dict[int, asyncio.Semaphore] = {}
        self.waiting: Counter[int] = Counter()  # lanes waiting for a relay's connection

    def slots(self, relay) -> asyncio.Semaphore:
        """This process's share of a relay's connections (at least one)."""
        if relay.pk not in self.connections:
            self.connections[relay.pk] = asyncio.Semaphore(
                max(1, int(relay.max_connections * self.share)))
        return self.connections[relay.pk]

    def _hourly(self, table: dict, key: int, per_hour: int | None) -> TokenBucket | None:
        if not per_hour:
            return None
        bucket = table.get(key)
        if bucket is None:
            rate = per_hour * self.share / 3600
            # A burst of a minute's worth lets a slow hourly cap still send in batches.
            bucket = table[key] = TokenBucket(rate, burst=max(rate * 60, 1))
        return bucket

    def wait_for(self, address: str, source_id: int,
                 source_per_hour: int | None) -> tuple[float, str]:
        """(0, "") if a message may go now, else the seconds until it may and which limit holds
        it (nothing is taken then from the other buckets)."""
        domain = address.rpartition("@")[2].lower()
        bucket = self.domains.get(domain)
        if bucket is not None and (wait := bucket.take()):
            return wait, f"rate limit for {domain}"
        source = self._hourly(self.sources, source_id, source_per_hour)
        if source is not None and (wait := source.take()):
            return wait, "the send's hourly limit"
        return 0.0, ""

    def relay_wait(self, relay_id: int, per_hour: int | None) -> float:
        bucket = self._hourly(self.relays, relay_id, per_hour)
        return bucket.take() if bucket is not None else 0.0


def later(seconds: float) -> dt.datetime:
    from django.utils import timezone

    return timezone.now() + dt.timedelta(seconds=max(seconds, 1.0))
