"""Sending by API: bulk sends to a segment with start, pause, resume and cancel, and the
delivery log (transactional messages are in ``messages``).

Every write goes through ``tayori.delivery.sending``, so the API refuses what the UI refuses.
Keys without ``members.view_pii`` see addresses masked and may not filter by them.
"""

import datetime as dt
from typing import Literal

from django.utils.translation import gettext as _
from ninja import Field, Path, Query, Router, Schema
from ninja.responses import Status

from tayori.accounts import audit
from tayori.api.auth import can, require_pii, requires
from tayori.api.common import MAX_ID, InSchema, aware, errors, get_scoped
from tayori.api.errors import ApiError, conflict
from tayori.api.pagination import PageParams, page_of, paginate
from tayori.delivery import queue, sending
from tayori.delivery.models import Delivery, Source
from tayori.members.masking import mask_email
from tayori.members.models import Segment

sends_router = Router(tags=["Sends"])
deliveries_router = Router(tags=["Deliveries"])


class ContentIn(InSchema):
    subject: str = Field(..., max_length=500, description="Jinja2 template; merge fields like "
                                                         "`{{ data.order_id }}`.")
    html: str = Field("", max_length=500_000)
    text: str = Field("", max_length=500_000)
    from_address: str = Field(..., max_length=254)
    from_name: str = Field("", max_length=200)
    reply_to: str = Field("", max_length=254)
    tracking: bool = True


class DeliveryOut(Schema):
    id: int
    source_id: int
    address: str = Field(description="Masked for keys without members.view_pii.")
    member_id: int | None
    status: str = Field(description="queued, held, claimed, sent, deferred, failed, skipped, "
                                    "cancelled")
    skip_reason: str = Field(description="Why a skipped message was not sent (suppressed, "
                                         "bounced, unsubscribed, duplicate, no_address…).")
    attempts: int
    smtp_reply: str
    message_id: str
    queued_at: dt.datetime
    sent_at: dt.datetime | None
    finished_at: dt.datetime | None
    next_attempt_at: dt.datetime | None = Field(description="When a deferred message is retried.")


def render_deliveries(request, rows: list[Delivery]) -> list[dict]:
    pii = can(request, "members.view_pii")
    return [{"id": d.pk, "source_id": d.source_id,
             "address": d.address if pii else mask_email(d.address), "member_id": d.member_id,
             "status": d.status, "skip_reason": d.skip_reason, "attempts": d.attempts,
             "smtp_reply": d.smtp_reply, "message_id": d.message_id, "queued_at": d.queued_at,
             "sent_at": d.sent_at, "finished_at": d.finished_at,
             "next_attempt_at": d.next_attempt_at if d.status == "deferred" else None}
            for d in rows]


def refused(error: sending.ContentRefused) -> ApiError:
    listed = [{"field": e.field, "message": e.message} for e in error.errors]
    return ApiError(422, "validation_error", listed[0]["message"], field=listed[0]["field"],
                    errors=listed)


def _content(payload: ContentIn) -> sending.Content:
    return sending.Content(subject=payload.subject, html=payload.html, text=payload.text,
                           from_address=payload.from_address, from_name=payload.from_name,
                           reply_to=payload.reply_to, tracking=payload.tracking)


class SendIn(ContentIn):
    name: str = Field(..., min_length=1, max_length=200)
    segment_id: int = Field(..., ge=1, le=MAX_ID)
    scheduled_at: dt.datetime | None = Field(None, description="Start time; none = draft.")
    once_per_address: bool = True
    max_per_hour: int | None = Field(None, ge=1, le=10_000_000)
    contacts: str = Field("", max_length=500, description="Addresses told of start and end.")


class SendOut(Schema):
    id: int
    name: str
    kind: str
    status: str
    pause_reason: str
    segment_id: int | None
    scheduled_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    total: int = Field(description="Recipients at fan-out, skipped ones included.")
    skipped: dict[str, int] = Field(description="Skipped recipients per reason.")
    progress: dict[str, int] = Field(description="Rows per status now.")


def _send_out(source: Source) -> dict:
    return {"id": source.pk, "name": source.name, "kind": source.kind, "status": source.status,
            "pause_reason": source.pause_reason, "segment_id": source.segment_id,
            "scheduled_at": source.scheduled_at, "started_at": source.started_at,
            "finished_at": source.finished_at, "total": source.total,
            "skipped": source.skipped, "progress": queue.progress(source)}


@sends_router.post("", response={201: SendOut, **errors(422)},
                   summary="Create a bulk send to a segment", **requires("campaigns.create"))
def create_send(request, payload: SendIn):
    segment = Segment.objects.filter(workspace=request.workspace, pk=payload.segment_id).first()
    if segment is None:
        raise ApiError(422, "validation_error", _("No segment with this id."), field="segment_id")
    try:
        source = sending.create_bulk(
            request.workspace, _content(payload), name=payload.name, segment=segment,
            scheduled_at=aware(payload.scheduled_at, "scheduled_at"),
            once_per_address=payload.once_per_address, max_per_hour=payload.max_per_hour,
            contacts=payload.contacts)
    except sending.ContentRefused as error:
        raise refused(error) from None
    audit.record("send.created", request=request, target=f"source:{source.pk}",
                 name=source.name, segment=segment.pk, via="api")
    return Status(201, _send_out(source))


class SendFilter(PageParams):
    status: str | None = None
    kind: Literal["bulk", "transactional"] | None = None


@sends_router.get("", response={200: page_of(SendOut), **errors(422)}, summary="List sends",
                  **requires("deliveries.view"))
def list_sends(request, filters: Query[SendFilter]):
    sources = Source.objects.filter(workspace=request.workspace)
    if filters.status:
        sources = sources.filter(status=filters.status)
    if filters.kind:
        sources = sources.filter(kind=filters.kind)
    return paginate(sources, filters, lambda rows: [_send_out(s) for s in rows])


@sends_router.get("/{send_id}", response={200: SendOut, **errors(404)},
                  summary="Get a send with its progress", **requires("deliveries.view"))
def get_send(request, send_id: int = Path(..., ge=1, le=MAX_ID)):
    return _send_out(get_scoped(Source, request, send_id, _("Send")))


def _control(request, send_id: int, action: str, allowed: tuple, run) -> dict:
    source = get_scoped(Source, request, send_id, _("Send"))
    if source.status not in allowed:
        raise conflict(_("This send cannot %(action)s now: it is %(status)s.") % {
            "action": action, "status": source.status}, field="status")
    run(source)
    audit.record(f"send.{action}", request=request, target=f"source:{source.pk}", via="api")
    source.refresh_from_db()
    return _send_out(source)


@sends_router.post("/{send_id}/start", response={200: SendOut, **errors(404, 409)},
                   summary="Start a send now", **requires("campaigns.send"))
def start_send(request, send_id: int = Path(..., ge=1, le=MAX_ID)):
    return _control(request, send_id, "start", ("draft", "scheduled"), queue.start)


@sends_router.post("/{send_id}/pause", response={200: SendOut, **errors(404, 409)},
                   summary="Pause a send", **requires("campaigns.send"))
def pause_send(request, send_id: int = Path(..., ge=1, le=MAX_ID)):
    return _control(request, send_id, "pause", ("running", "quiet"),
                    lambda s: queue.pause(s, _("Paused by API")))


@sends_router.post("/{send_id}/resume", response={200: SendOut, **errors(404, 409)},
                   summary="Resume a paused send", **requires("campaigns.send"))
def resume_send(request, send_id: int = Path(..., ge=1, le=MAX_ID)):
    return _control(request, send_id, "resume", ("paused",), queue.resume)


@sends_router.post("/{send_id}/cancel", response={200: SendOut, **errors(404, 409)},
                   summary="Cancel a send for good", **requires("campaigns.send"))
def cancel_send(request, send_id: int = Path(..., ge=1, le=MAX_ID)):
    return _control(request, send_id, "cancel",
                    ("draft", "scheduled", "running", "quiet", "paused"), queue.cancel)


class DeliveryFilter(PageParams):
    source_id: int | None = Field(None, ge=1, le=MAX_ID)
    status: str | None = None
    address: str | None = Field(None, max_length=254)


@deliveries_router.get("", response={200: page_of(DeliveryOut), **errors(403, 422)},
                       summary="Search the delivery log", **requires("deliveries.view"))
def list_deliveries(request, filters: Query[DeliveryFilter]):
    rows = Delivery.objects.filter(workspace=request.workspace)
    if filters.source_id:
        rows = rows.filter(source_id=filters.source_id)
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.address:
        require_pii(request, _("address"))
        rows = rows.filter(address__in={filters.address, filters.address.lower()})
    return paginate(rows, filters, lambda page: render_deliveries(request, page))
