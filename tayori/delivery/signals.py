"""Delivery status changes, told to apps above the engine (webhooks) that registered a listener
from their AppConfig.ready — delivery never imports them.

``emit(kind, rows, at)`` calls each listener with the same arguments once the change is
committed (at once outside a transaction):

- ``queued``: the Delivery rows ``sending.enqueue_message`` created (queued or skipped);
- ``recorded``: the ``queue.Outcome`` objects ``queue.record`` stored (sent, deferred, failed,
  requeue), with ``at`` the time they were recorded.

A listener decides itself, cheaply, whether it cares; one that fails is logged and never undoes
or delays the engine's own work."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from django.db import transaction

log = logging.getLogger(__name__)

LISTENERS: list[Callable[[str, list, dt.datetime | None], None]] = []


def emit(kind: str, rows: list, at: dt.datetime | None = None) -> None:
    if not LISTENERS or not rows:
        return
    transaction.on_commit(lambda: _tell(kind, rows, at))


def _tell(kind: str, rows: list, at: dt.datetime | None) -> None:
    for listener in LISTENERS:
        try:
            listener(kind, rows, at)
        except Exception:
            log.exception("a delivery listener failed on %d %s rows", len(rows), kind)
