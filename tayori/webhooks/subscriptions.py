"""Who listens to what, known without a query on the hot path: each process keeps a snapshot of
the active endpoints' (workspace, event types), reloaded at most every few seconds, so that
emitting an event nobody subscribed to costs a dictionary lookup.

The snapshot only says "nobody" for sure: a positive answer is checked against the endpoints
themselves before anything is written (events.publish). Saving or deleting an endpoint drops
this process's snapshot at once; other processes see the change within ``TTL`` seconds, so an
endpoint created in the web process receives events from workers a few seconds later."""

from __future__ import annotations

import threading
import time

TTL = 5.0
ANY = "*"  # every workspace with an active endpoint, whatever it subscribes to

_snapshot: tuple[float, dict[str, frozenset[int]]] | None = None
_lock = threading.Lock()


def _load() -> dict[str, frozenset[int]]:
    from tayori.webhooks.models import Endpoint

    by_type: dict[str, set[int]] = {}
    for workspace_id, types in Endpoint.objects.filter(active=True).values_list(
            "workspace_id", "events"):
        for name in [ANY, *(types or ())]:
            by_type.setdefault(name, set()).add(workspace_id)
    return {name: frozenset(ids) for name, ids in by_type.items()}


def _current() -> dict[str, frozenset[int]]:
    global _snapshot
    snapshot = _snapshot
    if snapshot is None or time.monotonic() - snapshot[0] > TTL:
        with _lock:
            snapshot = _snapshot
            if snapshot is None or time.monotonic() - snapshot[0] > TTL:
                snapshot = _snapshot = (time.monotonic(), _load())
    return snapshot[1]


def workspaces(event_type: str) -> frozenset[int]:
    """Workspaces with an active endpoint subscribed to ``event_type`` (maybe a little stale)."""
    return _current().get(event_type, frozenset())


def anyone() -> bool:
    """Whether any workspace has an active endpoint at all."""
    return bool(_current().get(ANY))


def changed(**_kwargs) -> None:
    """Forget the snapshot (an endpoint was saved, deleted, enabled or disabled)."""
    global _snapshot
    _snapshot = None
