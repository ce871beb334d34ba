"""The events webhooks carry, their JSON schema, and publishing them to subscribed endpoints.

Every post is one event, a UTF-8 JSON object:

    {"id": "evt_3f9a…",                      # unique per event; the same for every endpoint
     "type": "message.clicked",
     "created_at": "2025-03-01T10:15:02.120+09:00",   # when it happened, workspace's zone
     "workspace": 3,
     "data": {...}}

``data`` of every ``message.*`` and ``member.*`` event names the delivery it is about (one
recipient of one message) with the same six keys:

    delivery_id, source_id, source_kind ("bulk", "transactional", "step" or "notice"),
    member_id (null for an address that is not a member), address

and then the type's own keys, always present (null or "" when there is nothing to say):

    message.queued       status "queued" ("held" when sent later), smtp_reply "", reason ""
    message.sent         status "sent", smtp_reply (the relay's 250 line), reason "", message_id
    message.deferred     status "deferred", smtp_reply (a 4xx; Tayori retries), reason ""
    message.failed       status "failed" (smtp_reply says why) or "skipped" (reason says why:
                         suppressed, bounced, complained, blocked; transactional messages only)
    message.bounced      status "bounced", smtp_reply, reason
    message.complained   status "complained", smtp_reply, reason
    message.opened       (nothing more)
    message.clicked      link_index, url
    message.converted    value (yen, or null), link_index, url (of the click it is credited to)
    member.unsubscribed  method ("one-click", "unsubscribe page")

``ping`` (the test button) has ``data: {"endpoint_id": …, "message": …}``. New keys may be
added to ``data``; existing keys keep their meaning and type. Events are posted side by side
and retried, so they may arrive out of order or twice: order by ``created_at``, dedupe by
``id``.

Where they come from: the delivery engine's results (listeners.delivery_changed), tracking's
stored opens, clicks and conversions of people — machines' are left out — and opt-outs.
``message.queued`` and skipped ``message.failed`` are emitted for transactional messages; bulk
sends and step mails start with ``message.sent``. Bounce and complaint processing calls
``publish_deliveries("message.bounced", [{"delivery_id": …, "smtp_reply": …, "reason": …}])``.

Publishing costs nothing when no endpoint of the workspace subscribes to the type
(subscriptions); otherwise the delivery facts are read in one query and the event rows written
in one bulk insert."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections import defaultdict
from zoneinfo import ZoneInfo

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tayori.delivery.models import Delivery
from tayori.members.masking import mask_email
from tayori.webhooks import subscriptions
from tayori.webhooks.models import Endpoint, WebhookEvent

TYPES = {
    "message.queued": _("Message queued"),
    "message.sent": _("Message sent"),
    "message.deferred": _("Message deferred (will be retried)"),
    "message.failed": _("Message failed or skipped"),
    "message.bounced": _("Message bounced"),
    "message.complained": _("Recipient complained"),
    "message.opened": _("Message opened"),
    "message.clicked": _("Link clicked"),
    "message.converted": _("Conversion"),
    "member.unsubscribed": _("Member unsubscribed"),
}
PING = "ping"

# The keys each type adds to the delivery's six, with the values they have when an emitter
# says nothing: every event of a type carries all of them, so receivers can rely on the shape.


def _status(status: str) -> dict:
    return {"status": status, "smtp_reply": "", "reason": ""}


OWN_KEYS = {
    "message.queued": _status("queued"),
    "message.sent": {**_status("sent"), "message_id": ""},
    "message.deferred": _status("deferred"),
    "message.failed": _status("failed"),
    "message.bounced": _status("bounced"),
    "message.complained": _status("complained"),
    "message.opened": {},
    "message.clicked": {"link_index": None, "url": ""},
    "message.converted": {"value": None, "link_index": None, "url": ""},
    "member.unsubscribed": {"method": ""},
}
RETRY_FOR = dt.timedelta(hours=72)


def new_id() -> str:
    return "evt_" + secrets.token_hex(12)


def body_of(uid: str, event_type: str, at: dt.datetime, workspace_id: int, zone: str,
            data: dict) -> str:
    return json.dumps({
        "id": uid, "type": event_type,
        "created_at": at.astimezone(ZoneInfo(zone)).isoformat(timespec="milliseconds"),
        "workspace": workspace_id, "data": data,
    }, ensure_ascii=False, separators=(",", ":"))


def masked(payload: dict) -> dict:
    """A payload as shown to an operator or key without members.view_pii: address masked."""
    data = payload.get("data")
    if isinstance(data, dict) and data.get("address"):
        return {**payload, "data": {**data, "address": mask_email(str(data["address"]))}}
    return payload


def publish(workspace_id: int, event_type: str, items: list[dict], *,
            at: dt.datetime | None = None) -> int:
    """Queue one event per item (its ``data``) for the workspace's active endpoints subscribed
    to ``event_type``. Returns the rows written (events × endpoints)."""
    if workspace_id not in subscriptions.workspaces(event_type):
        return 0
    return _store([(workspace_id, event_type, data, at) for data in items])


def publish_deliveries(event_type: str, rows: list[dict], *,
                       at: dt.datetime | None = None) -> int:
    """Events about deliveries: each row gives ``delivery_id``, optionally ``at`` (when it
    happened), and the type's own keys; the delivery's facts are read here, in one query, and
    only for workspaces that subscribed."""
    subscribed = subscriptions.workspaces(event_type)
    if not subscribed or not rows:
        return 0
    facts = {pk: rest for pk, *rest in Delivery.objects.filter(
        pk__in={row["delivery_id"] for row in rows}, workspace_id__in=subscribed).values_list(
        "pk", "workspace_id", "source_id", "source__kind", "member_id", "address")}
    own = OWN_KEYS.get(event_type, {})
    occurrences = []
    for row in rows:
        fact = facts.get(row["delivery_id"])
        if fact is None:
            continue
        workspace_id, source_id, source_kind, member_id, address = fact
        data = {"delivery_id": row["delivery_id"], "source_id": source_id,
                "source_kind": source_kind, "member_id": member_id, "address": address}
        data.update({key: row.get(key, default) for key, default in own.items()})
        occurrences.append((workspace_id, event_type, data, row.get("at") or at))
    return _store(occurrences)


def _store(occurrences: list[tuple]) -> int:
    """Write the event rows of (workspace id, type, data, at) occurrences in one bulk insert,
    for the endpoints that really are active and subscribed (the snapshot may be stale)."""
    if not occurrences:
        return 0
    endpoints = defaultdict(list)
    for pk, workspace_id, types, zone in Endpoint.objects.filter(
            workspace_id__in={o[0] for o in occurrences}, active=True).values_list(
            "pk", "workspace_id", "events", "workspace__time_zone"):
        endpoints[workspace_id].append((pk, set(types or ()), zone))
    now = timezone.now()
    rows = []
    for workspace_id, event_type, data, at in occurrences:
        targets = [(pk, zone) for pk, types, zone in endpoints[workspace_id]
                   if event_type in types]
        if not targets:
            continue
        uid = new_id()
        body = body_of(uid, event_type, at or now, workspace_id, targets[0][1], data)
        rows += [WebhookEvent(workspace_id=workspace_id, endpoint_id=pk, uid=uid,
                              type=event_type, body=body, created_at=now, next_attempt_at=now,
                              retry_until=now + RETRY_FOR) for pk, _zone in targets]
    WebhookEvent.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def ping(endpoint: Endpoint, *, now: dt.datetime | None = None) -> WebhookEvent:
    """A test event for one endpoint, whatever it subscribes to; tried once (a replay tries
    it again)."""
    now = now or timezone.now()
    uid = new_id()
    data = {"endpoint_id": endpoint.pk, "message": "Test event from Tayori"}
    return WebhookEvent.objects.create(
        workspace_id=endpoint.workspace_id, endpoint=endpoint, uid=uid, type=PING,
        body=body_of(uid, PING, now, endpoint.workspace_id, endpoint.workspace.time_zone, data),
        created_at=now, next_attempt_at=now, retry_until=now)
