"""Incident notices by API, for monitoring systems: the notice types with their field specs
(so a client knows the keys), sending a notice of a type with field values, and reading
notices back with their delivery progress.

Every write goes through ``tayori.incidents.notices``, so the API refuses what the console
refuses, field by field. A notice of a type that asks for a second operator is created waiting
(``awaiting_confirmation``): an operator confirms it on its page in the console.
"""

import datetime as dt
from typing import Any, Literal

from django.db import transaction
from django.utils.translation import gettext as _
from ninja import Field, Path, Query, Router, Schema
from ninja.responses import Status

from tayori.api.auth import requires
from tayori.api.common import MAX_ID, InSchema, errors, get_scoped
from tayori.api.errors import ApiError, not_found
from tayori.api.pagination import PageParams, page_of, paginate
from tayori.delivery import queue
from tayori.incidents import fields, notices
from tayori.incidents.models import Incident, Notice, NoticeType

router = Router(tags=["Incident notices"])
types_router = Router(tags=["Incident notices"])


class FieldSpecOut(Schema):
    key: str = Field(description="The key to use in `fields` when sending a notice.")
    label: str
    kind: Literal["services", "choice", "datetime", "text", "textarea"] = Field(
        description="services: a list of service codes; choice: one of `choices`; datetime: "
                    "ISO 8601 (naive = the workspace's time zone); text, textarea: text.")
    required: bool
    choices: list[str]
    help: str


class ServiceOut(Schema):
    code: str
    name: str
    group: str


class NoticeTypeOut(Schema):
    id: int
    name: str
    description: str
    fields: list[FieldSpecOut]
    services: list[ServiceOut] = Field(description="Codes a `services` field accepts.")
    target: Literal["services", "everyone"]
    requires_second_confirmation: bool = Field(
        description="Notices of this type wait for an operator to confirm them in the console.")
    follows_id: int | None = Field(description="The type a notice of this one follows up "
                                               "(a recovery follows an outage).")


@types_router.get("", response={200: page_of(NoticeTypeOut), **errors(422)},
                  summary="List notice types with their fields", **requires("deliveries.view"))
def list_types(request, page: Query[PageParams]):
    """The types operators may send, with what their `fields` take."""
    services = [{"code": s.code, "name": s.name, "group": s.group}
                for s in notices.catalogue(request.workspace).values()]
    rows = NoticeType.objects.filter(workspace=request.workspace, active=True)
    return paginate(rows, page, lambda page_rows: [{
        "id": t.pk, "name": t.name, "description": t.description,
        "fields": [s.as_dict() for s in fields.specs_of(t)], "services": services,
        "target": t.target, "requires_second_confirmation": t.requires_second_confirmation,
        "follows_id": t.follows_id} for t in page_rows])


class NoticeIn(InSchema):
    type: int | str = Field(..., description="The notice type's id or name (e.g. 障害発生).")
    fields: dict[str, Any] = Field(default_factory=dict, description=(
        "Values by field key (see GET /api/v1/notice-types). With `incident_id`, fields not "
        "given are taken from the incident's latest notice."))
    incident_id: int | None = Field(None, ge=1, le=MAX_ID, description=(
        "Join this incident (a recovery after an outage notice); none opens a new one."))
    dry_run: bool = Field(False, description="Answer 200 with what would be sent, and send "
                                             "nothing.")

    model_config = {"json_schema_extra": {"examples": [{
        "type": "障害発生", "fields": {"services": ["payment_api", "transfer"],
                                     "started_at": "2026-11-30T03:12:00+09:00",
                                     "impact": "全面停止"}},
        {"type": "障害復旧", "incident_id": 12,
         "fields": {"recovered_at": "2026-11-30T04:40:00+09:00"}}]}}


class NoticeOut(Schema):
    id: int
    type_id: int
    type: str
    incident_id: int
    status: Literal["draft", "awaiting_confirmation", "sent", "cancelled"] = Field(
        description="sent, or awaiting_confirmation when the type needs a second operator.")
    via: str
    fields: dict[str, Any] = Field(description="The values kept: services as codes, times "
                                               "in UTC.")
    subject: str
    text: str
    recipients: int = Field(description="Members who will receive it (skipped ones apart).")
    skipped: dict[str, int] = Field(description="Members of the audience skipped, by reason "
                                                "(bounced, suppressed, no_address…).")
    source_id: int | None = Field(description="The send (see /api/v1/sends and "
                                              "/api/v1/deliveries?source_id=).")
    progress: dict[str, int] | None = Field(description="Rows per delivery status, once sent.")
    created_at: dt.datetime
    sent_at: dt.datetime | None


class DryRunOut(Schema):
    dry_run: Literal[True]
    type_id: int
    fields: dict[str, Any]
    subject: str
    text: str
    recipients: int
    skipped: dict[str, int]


def _out(notice: Notice) -> dict:
    source = notice.source
    return {"id": notice.pk, "type_id": notice.type_id, "type": notice.type.name,
            "incident_id": notice.incident_id, "status": notice.status, "via": notice.via,
            "fields": notice.values, "subject": notice.subject, "text": notice.text,
            "recipients": notice.recipients, "skipped": source.skipped if source else {},
            "source_id": notice.source_id,
            "progress": queue.progress(source) if source else None,
            "created_at": notice.created_at, "sent_at": notice.sent_at}


def _type_of(request, given: int | str) -> NoticeType:
    types = NoticeType.objects.filter(workspace=request.workspace, active=True)
    found = None
    if isinstance(given, int):
        found = types.filter(pk=given).first() if 1 <= given <= MAX_ID else None
    else:
        found = types.filter(name=given).first()
        if found is None and given.isdigit() and int(given) <= MAX_ID:
            found = types.filter(pk=int(given)).first()
    if found is None:
        raise not_found(_("Notice type"))
    return found


def _refused(notice_type: NoticeType, refused: notices.NoticeRefused) -> ApiError:
    own = {"type", "subject", "recipients", "status", "incident_id"}
    keys = {spec.key for spec in fields.specs_of(notice_type)}
    services = fields.services_field(notice_type)

    def where(field: str) -> str:
        if field == "recipients" and services is not None:
            return f"fields.{services.key}"
        return field if field in own and field not in keys else f"fields.{field}"

    listed = [{"field": where(e.field), "message": e.message} for e in refused.errors]
    return ApiError(422, "validation_error", listed[0]["message"], field=listed[0]["field"],
                    errors=listed)


@router.post("", response={201: NoticeOut, 200: DryRunOut, **errors(404, 422)},
             summary="Send an incident notice", **requires("notices.send"))
def create_notice(request, payload: NoticeIn):
    """Sends a notice of a type to the members its targeting rule picks for the chosen
    services, on the urgent lane: 201 with status `sent`, or `awaiting_confirmation` when the
    type needs a second operator. Unknown services, missing or malformed fields answer 422
    naming each as `fields.<key>`."""
    notice_type = _type_of(request, payload.type)
    incident, raw = None, dict(payload.fields)
    if payload.incident_id is not None:
        incident = get_scoped(Incident, request, payload.incident_id, _("Incident"))
        latest = incident.notices.exclude(status=Notice.Status.CANCELLED).order_by("-id").first()
        raw = {**notices.prefill(notice_type, latest), **raw}
    try:
        if payload.dry_run:
            planned = notices.plan(notice_type, raw, sample=False)
            return Status(200, {"dry_run": True, "type_id": notice_type.pk,
                                "fields": planned.values, "subject": planned.words.subject,
                                "text": planned.words.text,
                                "recipients": planned.reach.receiving,
                                "skipped": planned.reach.skipped})
        with transaction.atomic():  # a notice refused at sending leaves no draft behind
            notice = notices.draft(notice_type, raw, request=request, incident=incident,
                                   via=Notice.Via.API)
            notice = notices.confirm(notice, request=request)
    except notices.NoticeRefused as refused:
        raise _refused(notice_type, refused) from None
    return Status(201, _out(notice))


class NoticeFilter(PageParams):
    status: Literal["draft", "awaiting_confirmation", "sent", "cancelled"] | None = None
    type_id: int | None = Field(None, ge=1, le=MAX_ID)
    incident_id: int | None = Field(None, ge=1, le=MAX_ID)


@router.get("", response={200: page_of(NoticeOut), **errors(422)}, summary="List notices",
            **requires("deliveries.view"))
def list_notices(request, filters: Query[NoticeFilter]):
    rows = Notice.objects.filter(workspace=request.workspace).select_related("type", "source")
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.type_id:
        rows = rows.filter(type_id=filters.type_id)
    if filters.incident_id:
        rows = rows.filter(incident_id=filters.incident_id)
    return paginate(rows, filters, lambda page_rows: [_out(n) for n in page_rows])


@router.get("/{notice_id}", response={200: NoticeOut, **errors(404)},
            summary="Get a notice with its delivery progress", **requires("deliveries.view"))
def get_notice(request, notice_id: int = Path(..., ge=1, le=MAX_ID)):
    return _out(get_scoped(Notice, request, notice_id, _("Notice")))
