"""Webhooks: a workspace's endpoints (URL, subscribed events, state), their events and the log
of attempts, secret rotation and replaying an event.

Every write goes through ``tayori.webhooks.endpoints``, so the API refuses what the UI refuses.
The signing secret is returned only when an endpoint is created and when it is rotated.
"""

import datetime as dt
import json
from typing import Literal

from django.utils.translation import gettext as _
from ninja import Field, Path, Query, Router, Schema
from ninja.responses import Status

from tayori.accounts import audit
from tayori.api.auth import can, requires
from tayori.api.common import MAX_ID, InSchema, errors, get_scoped
from tayori.api.errors import ApiError, conflict, invalid
from tayori.api.pagination import PageParams, page_of, paginate
from tayori.members.values import FieldError
from tayori.webhooks import endpoints
from tayori.webhooks.events import TYPES, masked
from tayori.webhooks.models import Attempt, Endpoint, WebhookEvent

router = Router(tags=["Webhooks"])

EventType = Literal[tuple(TYPES)]
EventStatus = Literal[tuple(WebhookEvent.Status.values)]
PERMISSION = "webhooks.manage"


class EndpointOut(Schema):
    id: int
    url: str
    description: str
    events: list[str]
    active: bool
    disabled_at: dt.datetime | None
    disabled_reason: str = Field(description="Why it was disabled (by hand, or after three days "
                                             "of failed attempts).")
    consecutive_failures: int = Field(description="Attempts failed in a row; 0 once one is "
                                                  "answered with 2xx.")
    failing_since: dt.datetime | None
    last_success_at: dt.datetime | None
    created_at: dt.datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="Signs every post (`Tayori-Signature`); shown only now and "
                                    "after a rotation.")


class EndpointIn(InSchema):
    url: str = Field(..., min_length=1, max_length=2000, description="http:// or https://")
    description: str = Field("", max_length=200)
    events: list[EventType] = Field(..., min_length=1, max_length=len(TYPES))

    model_config = {"json_schema_extra": {"examples": [{
        "url": "https://example.jp/hooks/tayori", "description": "注文システム",
        "events": ["message.sent", "message.failed", "message.bounced"]}]}}


class EndpointPatch(InSchema):
    url: str | None = Field(None, min_length=1, max_length=2000)
    description: str | None = Field(None, max_length=200)
    events: list[EventType] | None = Field(None, min_length=1, max_length=len(TYPES))
    active: bool | None = Field(None, description="false disables the endpoint (its waiting "
                                                  "events give up); true enables it again.")


class SecretOut(Schema):
    secret: str
    previous_valid_until: dt.datetime | None = Field(
        description="Until then posts carry a second signature made with the previous secret.")


class WebhookEventOut(Schema):
    id: int
    event_id: str = Field(description="The payload's `id` (`Tayori-Event-Id`).")
    type: str
    status: EventStatus
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None = Field(description="When a failed event is retried.")
    delivered_at: dt.datetime | None
    last_status_code: int | None
    last_error: str
    payload: dict = Field(description="The JSON body as posted; `data.address` masked for keys "
                                      "without members.view_pii.")


class AttemptOut(Schema):
    id: int
    event_id: int
    number: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration_ms: int | None
    status_code: int | None
    ok: bool
    error: str
    response: str = Field(description="The start of the receiver's answer.")


class EventFilters(PageParams):
    status: EventStatus | None = None
    type: str | None = Field(None, max_length=40)


def _endpoint_out(endpoint: Endpoint) -> dict:
    return {name: getattr(endpoint, name) for name in EndpointOut.model_fields}


def _event_out(event: WebhookEvent, pii: bool) -> dict:
    try:
        payload = json.loads(event.body)
    except ValueError:
        payload = {}
    return {"id": event.pk, "event_id": event.uid, "type": event.type, "status": event.status,
            "attempts": event.attempts, "created_at": event.created_at,
            "next_attempt_at": (event.next_attempt_at
                                if event.status == WebhookEvent.Status.FAILED else None),
            "delivered_at": event.delivered_at, "last_status_code": event.last_status_code,
            "last_error": event.last_error, "payload": payload if pii else masked(payload)}


def _refused(error: FieldError):
    return invalid(error.field, error.message)


def _target(endpoint: Endpoint) -> str:
    return f"webhook:{endpoint.pk}"


@router.get("", response={200: page_of(EndpointOut), **errors(422)},
            summary="List webhook endpoints", **requires(PERMISSION))
def list_endpoints(request, page: Query[PageParams]):
    rows = Endpoint.objects.filter(workspace=request.workspace)
    return paginate(rows, page, lambda page_rows: [_endpoint_out(e) for e in page_rows])


def _may_route(request) -> None:
    if not can(request, "members.view_pii"):
        raise ApiError(403, "pii_not_allowed", _(
            "Webhook events carry members' addresses: choosing where they go needs the "
            "“members.view_pii” permission."), field="url")


@router.post("", response={201: EndpointCreated, **errors(422)},
             summary="Add a webhook endpoint", **requires(PERMISSION))
def create_endpoint(request, payload: EndpointIn):
    """The answer carries the signing secret; it is not shown again (rotate it to get a new
    one). Events carry members' addresses, so the key needs `members.view_pii` too."""
    _may_route(request)
    try:
        endpoint, secret = endpoints.create(request.workspace, url=payload.url,
                                            events=payload.events,
                                            description=payload.description)
    except FieldError as error:
        raise _refused(error) from None
    audit.record("webhook.endpoint_created", request=request, target=_target(endpoint),
                 url=endpoint.url, events=endpoint.events, via="api")
    return Status(201, {**_endpoint_out(endpoint), "secret": secret})


@router.get("/{endpoint_id}", response={200: EndpointOut, **errors(404)},
            summary="Get a webhook endpoint", **requires(PERMISSION))
def get_endpoint(request, endpoint_id: int = Path(..., ge=1, le=MAX_ID)):
    return _endpoint_out(get_scoped(Endpoint, request, endpoint_id, _("Endpoint")))


@router.patch("/{endpoint_id}", response={200: EndpointOut, **errors(404, 422)},
              summary="Change a webhook endpoint", **requires(PERMISSION))
def update_endpoint(request, payload: EndpointPatch,
                    endpoint_id: int = Path(..., ge=1, le=MAX_ID)):
    endpoint = get_scoped(Endpoint, request, endpoint_id, _("Endpoint"))
    given = payload.model_dump(exclude_unset=True)
    if "url" in given:
        _may_route(request)
    active = given.pop("active", None)
    if any(value is None for value in given.values()):
        field = next(name for name, value in given.items() if value is None)
        raise invalid(field, _("This field may not be null."))
    try:
        changed = endpoints.update(endpoint, **given)
    except FieldError as error:
        raise _refused(error) from None
    if changed:
        audit.record("webhook.endpoint_updated", request=request, target=_target(endpoint),
                     changed=changed, url=endpoint.url, events=endpoint.events, via="api")
    if active is True and endpoints.enable(endpoint):
        audit.record("webhook.endpoint_enabled", request=request, target=_target(endpoint),
                     via="api")
    elif active is False and endpoints.disable(endpoint, _("Disabled by API key %(name)s") % {
            "name": request.api_key.name}):
        audit.record("webhook.endpoint_disabled", request=request, target=_target(endpoint),
                     automatic=False, via="api")
    return _endpoint_out(endpoint)


@router.delete("/{endpoint_id}", response={204: None, **errors(404)},
               summary="Delete a webhook endpoint and its log", **requires(PERMISSION))
def delete_endpoint(request, endpoint_id: int = Path(..., ge=1, le=MAX_ID)):
    endpoint = get_scoped(Endpoint, request, endpoint_id, _("Endpoint"))
    audit.record("webhook.endpoint_deleted", request=request, target=_target(endpoint),
                 url=endpoint.url, via="api")
    endpoint.delete()
    return Status(204, None)


@router.post("/{endpoint_id}/rotate-secret", response={200: SecretOut, **errors(404)},
             summary="Make a new signing secret", **requires(PERMISSION))
def rotate_secret(request, endpoint_id: int = Path(..., ge=1, le=MAX_ID)):
    """For 24 hours after a rotation each post carries two `v1` signatures, one made with the
    new secret and one with the previous, so receivers can switch without losing events."""
    endpoint = get_scoped(Endpoint, request, endpoint_id, _("Endpoint"))
    secret = endpoints.rotate(endpoint)
    audit.record("webhook.secret_rotated", request=request, target=_target(endpoint), via="api")
    return {"secret": secret, "previous_valid_until": endpoint.previous_until}


@router.get("/{endpoint_id}/events", response={200: page_of(WebhookEventOut), **errors(404, 422)},
            summary="List an endpoint's events", **requires(PERMISSION))
def list_events(request, filters: Query[EventFilters],
                endpoint_id: int = Path(..., ge=1, le=MAX_ID)):
    endpoint = get_scoped(Endpoint, request, endpoint_id, _("Endpoint"))
    rows = WebhookEvent.objects.filter(endpoint=endpoint, workspace=request.workspace)
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.type:
        rows = rows.filter(type=filters.type)
    pii = can(request, "members.view_pii")
    return paginate(rows, filters, lambda page_rows: [_event_out(e, pii) for e in page_rows])


@router.get("/{endpoint_id}/attempts", response={200: page_of(AttemptOut), **errors(404, 422)},
            summary="List an endpoint's attempts", **requires(PERMISSION))
def list_attempts(request, page: Query[PageParams],
                  endpoint_id: int = Path(..., ge=1, le=MAX_ID)):
    endpoint = get_scoped(Endpoint, request, endpoint_id, _("Endpoint"))
    rows = Attempt.objects.filter(endpoint=endpoint, workspace=request.workspace)
    return paginate(rows, page, lambda page_rows: [
        {name: getattr(a, name) for name in AttemptOut.model_fields} for a in page_rows])


@router.post("/{endpoint_id}/events/{event_id}/replay",
             response={200: WebhookEventOut, **errors(404, 409)},
             summary="Send an event again", **requires(PERMISSION))
def replay_event(request, endpoint_id: int = Path(..., ge=1, le=MAX_ID),
                 event_id: int = Path(..., ge=1, le=MAX_ID)):
    """The same id and body, as soon as possible, with a fresh three-day retry window."""
    event = get_scoped(WebhookEvent, request, event_id, _("Event"), endpoint_id=endpoint_id)
    if not endpoints.replay(event):
        raise conflict(_("The event is being sent right now."), field="status")
    audit.record("webhook.event_replayed", request=request, target=f"webhook_event:{event.pk}",
                 event=event.uid, type=event.type, endpoint=event.endpoint_id, via="api")
    event.refresh_from_db()
    return _event_out(event, can(request, "members.view_pii"))
