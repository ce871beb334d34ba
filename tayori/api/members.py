"""Members: list, create, read, change, delete, look up by contact, and bulk upsert.

Every write goes through ``tayori.members.services`` so the API accepts and refuses exactly what
the UI and CSV import do. Keys without ``members.view_pii`` see email, phone and PII attributes
masked, and may not look members up by them.
"""

import datetime as dt
import json
from collections import Counter
from typing import Any, Literal

from django.db import transaction
from django.utils.translation import gettext as _
from ninja import Field, Path, Query, Router, Schema
from ninja.responses import Status

from tayori.accounts import audit
from tayori.api.auth import can, require_pii, requires
from tayori.api.common import MAX_ID, InSchema, aware, errors, get_scoped
from tayori.api.errors import (
    CORE_FIELDS,
    ApiError,
    conflict,
    field_errors,
    invalid,
    not_found,
)
from tayori.api.pagination import PageParams, page_of, paginate
from tayori.members.masking import masked_member_fields
from tayori.members.models import Attribute, Member, MemberList, Segment
from tayori.members.services import create_member, delete_member, update_member, upsert_many
from tayori.members.values import FieldError, normalize_email, normalize_phone

router = Router(tags=["Members"])

BULK_MAX = 10_000
MemberStatus = Literal[tuple(Member.Status.values)]
BulkMode = Literal["upsert", "add", "update", "unsubscribe", "suppress"]

_EXAMPLE = {"email": "taro@example.jp", "phone": "090-1234-5678",
            "attributes": {"name": "山田太郎", "plan": "gold"}}


class MemberOut(Schema):
    id: int
    email: str = Field(description="Normalized address; masked (`ta***@example.jp`) for keys "
                                   "without members.view_pii. Empty when none.")
    phone: str = Field(description="E.164 (`+819012345678`); masked for keys without "
                                   "members.view_pii. Empty when none.")
    status: MemberStatus
    attributes: dict[str, Any] = Field(description="Values by attribute key, in stored form "
                                                   "(dates `YYYY-MM-DD`, datetimes ISO 8601 UTC).")
    masked: bool = Field(description="True when personal data in this item is masked.")
    created_at: dt.datetime
    updated_at: dt.datetime


class MemberIn(InSchema):
    """A member as sent by a client. Either an email address or a phone number is required."""

    email: str | None = Field(None, max_length=320, description="Validated and normalized; "
                              "international domains accepted.")
    phone: str | None = Field(None, max_length=40, description="Japanese numbers as written "
                              "(`090-1234-5678`, full-width digits) or E.164.")
    status: MemberStatus | None = Field(None, description="Defaults to `active` for new members.")
    attributes: dict[str, Any] = Field(default_factory=dict, description=(
        "Values by attribute key; checked against the workspace's attribute definitions."))

    model_config = {"json_schema_extra": {"examples": [_EXAMPLE]}}


class MemberPatch(InSchema):
    """Only the fields sent change. An attribute set to null is cleared."""

    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=40)
    status: MemberStatus | None = None
    attributes: dict[str, Any] | None = None

    model_config = {"json_schema_extra": {"examples": [{"status": "unsubscribed",
                                                        "attributes": {"plan": "free"}}]}}


class MemberFilters(Schema):
    status: MemberStatus | None = Field(None, description="Only members with this status.")
    list_id: int | None = Field(None, ge=1, le=MAX_ID, description="Only members of this list.")
    segment_id: int | None = Field(None, ge=1, le=MAX_ID,
                                   description="Only members this segment selects now.")
    updated_since: dt.datetime | None = Field(
        None, description="Only members changed at or after this time (ISO 8601; without an "
                          "offset it is read in the workspace's time zone).")


class LookupParams(Schema):
    email: str | None = Field(None, max_length=320, description="Find the member with this address.")
    phone: str | None = Field(None, max_length=40, description="Find the member with this number.")


class ConsentEvidence(InSchema):
    """Recorded as a consent row for every member the call creates (特定電子メール法)."""

    method: str = Field("api", min_length=1, max_length=100, description="How consent was given.")
    source: str = Field("", max_length=200, description="Where, e.g. the sign-up form's URL.")
    wording_version: str = Field("", max_length=50,
                                 description="Version of the consent text the member agreed to.")


class BulkIn(InSchema):
    mode: BulkMode = Field("upsert", description=(
        "`upsert` creates or updates (matched by email, else phone); `add` only creates; "
        "`update` only changes existing members; `unsubscribe` marks matched members "
        "unsubscribed and closes their consent; `suppress` adds the contacts to the "
        "suppression list."))
    items: list[MemberIn] = Field(..., min_length=1, max_length=BULK_MAX)
    consent: ConsentEvidence | None = None

    model_config = {"json_schema_extra": {"examples": [{
        "mode": "upsert",
        "items": [_EXAMPLE, {"email": "hanako@example.jp", "attributes": {"plan": "free"}}],
        "consent": {"method": "web form", "source": "https://example.jp/signup",
                    "wording_version": "2024-04"},
    }]}}


class ItemError(Schema):
    field: str | None
    message: str


class BulkItemOut(Schema):
    index: int = Field(description="Position of the item in the request.")
    status: Literal["created", "updated", "unchanged", "unsubscribed", "suppressed", "error"]
    id: int | None = Field(description="The member's id (null on error, or when a suppressed "
                                       "contact belongs to no member).")
    errors: list[ItemError]


class BulkOut(Schema):
    summary: dict[str, int] = Field(description="How many items ended in each status.")
    results: list[BulkItemOut]


def render_members(request, members: list[Member]) -> list[dict]:
    """Members as this key may see them (one attribute query for the whole page)."""
    attributes = list(Attribute.objects.filter(workspace=request.workspace))
    view_pii = can(request, "members.view_pii")
    return [{"id": m.pk, "status": m.status, "created_at": m.created_at,
             "updated_at": m.updated_at, "masked": not view_pii,
             **masked_member_fields(m, attributes, view_pii)} for m in members]


def render_member(request, member: Member) -> dict:
    return render_members(request, [member])[0]


def _flatten(payload: dict) -> tuple[dict, list[FieldError]]:
    """API body -> the flat field dict the services read (core fields + attribute keys)."""
    data = {k: payload[k] for k in CORE_FIELDS if k in payload}
    problems = []
    for key, value in (payload.get("attributes") or {}).items():
        if key in CORE_FIELDS:
            problems.append(FieldError(key, _("“%(key)s” is a member field, not an attribute; "
                                              "send it at the top level.") % {"key": key}))
        else:
            data[key] = value
    return data, problems


def _flat_or_422(payload: dict) -> dict:
    data, problems = _flatten(payload)
    if problems:
        listed = [{"field": f"attributes.{e.field}", "message": e.message} for e in problems]
        raise ApiError(422, "validation_error", listed[0]["message"], field=listed[0]["field"],
                       errors=listed)
    return data


def _refuse_taken_contact(request, data: dict, member: Member | None = None) -> None:
    """409 when another member already has the email or phone being set. Malformed values are
    left to the services, which report them with every other problem."""
    others = Member.objects.filter(workspace=request.workspace)
    if member is not None:
        others = others.exclude(pk=member.pk)
    for field, normalize in (("email", normalize_email), ("phone", normalize_phone)):
        try:
            value = normalize(data.get(field) or "")
        except FieldError:
            continue
        if value:
            clash = others.filter(**{field: value}).values_list("pk", flat=True).first()
            if clash is not None:
                raise conflict(_("Another member already has this %(field)s.") % {"field": field},
                               field=field, member_id=clash)


def changed_fields(before: dict, after: dict) -> list[str]:
    """Names of the fields that changed. Names only: values may be personal data and the audit
    log is read by roles that may not see it."""
    return [key for key in sorted(set(before) | set(after))
            if json.dumps(before.get(key), sort_keys=True) != json.dumps(after.get(key), sort_keys=True)]


@router.get("", response={200: page_of(MemberOut), **errors(404, 422)},
            summary="List members", **requires("members.view"))
def list_members(request, filters: Query[MemberFilters], page: Query[PageParams]):
    """Members of the workspace in id order, one page at a time."""
    members = Member.objects.filter(workspace=request.workspace)
    if filters.status:
        members = members.filter(status=filters.status)
    if filters.list_id is not None:
        member_list = get_scoped(MemberList, request, filters.list_id, _("List"))
        members = members.filter(listmembership__member_list=member_list)
    if filters.segment_id is not None:
        from tayori.api.segments import selected_members

        segment = get_scoped(Segment, request, filters.segment_id, _("Segment"))
        members = members.filter(pk__in=selected_members(request.workspace, segment).values("pk"))
    if filters.updated_since is not None:
        members = members.filter(updated_at__gte=aware(filters.updated_since, "updated_since"))
    return paginate(members, page, lambda rows: render_members(request, rows))


@router.post("", response={201: MemberOut, **errors(409, 422)}, summary="Create a member",
             **requires("members.edit"))
def create(request, payload: MemberIn):
    """Create one member. Answers 409 when the email or phone already belongs to a member."""
    data = _flat_or_422(payload.model_dump(exclude_none=True))
    _refuse_taken_contact(request, data)
    member = create_member(request.workspace, data)
    audit.record("member.created", request=request, target=f"member:{member.pk}", via="api")
    return Status(201, render_member(request, member))


@router.get("/lookup", response={200: MemberOut, **errors(404, 422)},
            summary="Look a member up by email or phone", **requires("members.view"))
def lookup(request, params: Query[LookupParams]):
    """Exactly one of `email` or `phone`; the value is normalized the same way as on writes.
    Needs members.view_pii as well: keys that see personal data masked may not search by it."""
    given = [(f, v) for f, v in (("email", params.email), ("phone", params.phone)) if v]
    if len(given) != 1:
        raise invalid("email", _("Give exactly one of email or phone."))
    field, raw = given[0]
    require_pii(request, field)
    value = normalize_email(raw) if field == "email" else normalize_phone(raw)
    if not value:
        raise invalid(field, _("This field is required."))
    member = get_scoped_by(request, **{field: value})
    return render_member(request, member)


def get_scoped_by(request, **lookup) -> Member:
    member = Member.objects.filter(workspace=request.workspace, **lookup).first()
    if member is None:
        raise not_found(_("Member"))
    return member


@router.post("/bulk", response={200: BulkOut, **errors(422)},
             summary="Create or update up to 10,000 members", **requires("members.import"))
def bulk_upsert(request, payload: BulkIn):
    """Apply `mode` to every item and answer one result per item, in order. Bad items never stop
    good ones; re-sending the same items in `upsert` mode changes nothing. Items are matched to
    existing members by email, else by phone."""
    results: list[dict | None] = [None] * len(payload.items)
    accepted: list[tuple[int, dict]] = []
    for index, item in enumerate(payload.items):
        data, problems = _flatten(item.model_dump(exclude_none=True))
        if problems:
            results[index] = {"index": index, "status": "error", "id": None,
                              "errors": [{"field": f"attributes.{e.field}", "message": e.message}
                                         for e in problems]}
        else:
            accepted.append((index, data))
    consent = payload.consent.model_dump() if payload.consent else None
    outcome = upsert_many(request.workspace, [data for _i, data in accepted], mode=payload.mode,
                          consent=consent)
    for (index, _data), result in zip(accepted, outcome, strict=True):
        results[index] = {"index": index, "status": result.status,
                          "id": result.member_id if result.ok else None,
                          "errors": field_errors(result.errors)}
    summary = Counter(r["status"] for r in results)
    audit.record("members.bulk_upsert", request=request, target=f"{len(results)} items",
                 mode=payload.mode, **dict(summary))
    return {"summary": dict(summary), "results": results}


@router.get("/{member_id}", response={200: MemberOut, **errors(404)}, summary="Get a member",
            **requires("members.view"))
def get(request, member_id: int = Path(..., ge=1, le=MAX_ID)):
    return render_member(request, get_scoped(Member, request, member_id, _("Member")))


@router.patch("/{member_id}", response={200: MemberOut, **errors(404, 409, 422)},
              summary="Change a member", **requires("members.edit"))
def update(request, payload: MemberPatch, member_id: int = Path(..., ge=1, le=MAX_ID)):
    """Change only the fields sent; attributes not named keep their values."""
    member = get_scoped(Member, request, member_id, _("Member"))
    before = {"email": member.email, "phone": member.phone, "status": member.status,
              **(member.attributes or {})}
    sent = payload.model_dump(exclude_unset=True)
    if sent.get("status") is None:
        sent.pop("status", None)
    for field in ("email", "phone"):
        if field in sent and sent[field] is None:
            sent[field] = ""
    data = _flat_or_422({**sent, "attributes": sent.get("attributes") or {}})
    _refuse_taken_contact(request, data, member)
    with transaction.atomic():
        member = update_member(member, data)
    after = {"email": member.email, "phone": member.phone, "status": member.status,
             **(member.attributes or {})}
    changed = changed_fields(before, after)
    if changed:
        audit.record("member.updated", request=request, target=f"member:{member.pk}",
                     fields=changed, via="api")
    return render_member(request, member)


@router.delete("/{member_id}", response={204: None, **errors(404)}, summary="Delete a member",
               **requires("members.edit"))
def delete(request, member_id: int = Path(..., ge=1, le=MAX_ID)):
    """Delete the member with their list memberships and consent records. To stop sending but
    keep the evidence, set the status to `unsubscribed` instead."""
    member = get_scoped(Member, request, member_id, _("Member"))
    pk = member.pk
    delete_member(member)
    audit.record("member.deleted", request=request, target=f"member:{pk}", via="api")
    return Status(204, None)

