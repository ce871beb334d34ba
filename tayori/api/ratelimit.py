"""Requests per minute per API key: a fixed one-minute window counted in Django's cache.

A fixed window lets a client send up to twice the limit across a minute boundary; in exchange it
costs one atomic ``incr`` per request and gives an exact ``Retry-After`` (the seconds left in the
window). The counter lives in the ``default`` cache: with several web processes that cache must be
shared (Redis, Memcached or the database cache) for the limit to hold across them.
"""

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Window:
    """Where a key stands in the current minute after counting this request."""

    limit: int
    used: int
    reset_in: int  # seconds until the window starts over

    @property
    def allowed(self) -> bool:
        return self.limit <= 0 or self.used <= self.limit

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    def headers(self) -> dict[str, str]:
        if self.limit <= 0:
            return {}
        return {"X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset_in)}


def hit(bucket: str, limit: int | None = None) -> Window:
    """Count one request against ``bucket`` (a key's identity); a limit of 0 means unlimited."""
    limit = settings.API_RATE_LIMIT_PER_MINUTE if limit is None else limit
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    reset_in = max(math.ceil((window + 1) * WINDOW_SECONDS - now), 1)
    if limit <= 0:
        return Window(limit, 0, reset_in)
    name = f"tayori:api:rate:{bucket}:{window}"
    # add() is a no-op when the counter exists, so concurrent first requests don't reset it.
    cache.add(name, 0, timeout=WINDOW_SECONDS * 2)
    try:
        used = cache.incr(name)
    except ValueError:  # expired between add() and incr()
        cache.set(name, 1, timeout=WINDOW_SECONDS * 2)
        used = 1
    return Window(limit, used, reset_in)
