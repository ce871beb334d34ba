"""Consent records of a member: the opt-in evidence 特定電子メール法 asks a sender to keep, and
its withdrawal. Records are never deleted: withdrawing one keeps when and how it was given."""

import datetime as dt
from typing import Literal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Path, Query, Router, Schema
from ninja.responses import Status
from pydantic import IPvAnyAddress

from tayori.accounts import audit
from tayori.api.auth import can, requires
from tayori.api.common import MAX_ID, InSchema, aware, errors, get_scoped
from tayori.api.errors import conflict, invalid, not_found
from tayori.api.pagination import PageParams, page_of, paginate
from tayori.members.masking import mask_value
from tayori.members.models import ConsentRecord, Member

router = Router(tags=["Consent records"])

Channel = Literal[tuple(ConsentRecord.Channel.values)]


class ConsentOut(Schema):
    id: int
    member_id: int
    channel: Channel
    given_at: dt.datetime
    method: str = Field(description="How consent was given: web form, paper, import…")
    source: str
    wording_version: str
    ip: str | None = Field(description="Masked (`***`) for keys without members.view_pii.")
    user_agent: str = Field(description="Masked (`***`) for keys without members.view_pii.")
    withdrawn_at: dt.datetime | None
    withdrawn_method: str
    active: bool = Field(description="Given and not withdrawn.")


class ConsentIn(InSchema):
    channel: Channel = "email"
    given_at: dt.datetime | None = Field(None, description="When consent was given; now if "
                                                           "omitted. Not in the future.")
    method: str = Field(..., min_length=1, max_length=100)
    source: str = Field("", max_length=200)
    wording_version: str = Field("", max_length=50)
    ip: IPvAnyAddress | None = Field(None, description="Address the consent came from.")
    user_agent: str = Field("", max_length=400)

    model_config = {"json_schema_extra": {"examples": [{
        "channel": "email", "given_at": "2024-04-01T10:00:00+09:00", "method": "web form",
        "source": "https://example.jp/signup", "wording_version": "2024-04",
        "ip": "203.0.113.7", "user_agent": "Mozilla/5.0"}]}}


class WithdrawIn(InSchema):
    method: str = Field("api", min_length=1, max_length=100,
                        description="How the member withdrew: unsubscribe link, phone call…")


def _render(request, rows: list[ConsentRecord]) -> list[dict]:
    pii = can(request, "members.view_pii")
    return [{"id": c.pk, "member_id": c.member_id, "channel": c.channel, "given_at": c.given_at,
             "method": c.method, "source": c.source, "wording_version": c.wording_version,
             "ip": c.ip if pii else mask_value(c.ip),
             "user_agent": c.user_agent if pii else (mask_value(c.user_agent) or ""),
             "withdrawn_at": c.withdrawn_at, "withdrawn_method": c.withdrawn_method,
             "active": c.withdrawn_at is None} for c in rows]


def _member(request, member_id: int) -> Member:
    return get_scoped(Member, request, member_id, _("Member"))


@router.get("/{member_id}/consents", response={200: page_of(ConsentOut), **errors(404, 422)},
            summary="A member's consent records", **requires("members.view"))
def list_consents(request, page: Query[PageParams], member_id: int = Path(..., ge=1, le=MAX_ID)):
    member = _member(request, member_id)
    rows = ConsentRecord.objects.filter(workspace=request.workspace, member=member)
    return paginate(rows, page, lambda page_rows: _render(request, page_rows))


@router.post("/{member_id}/consents", response={201: ConsentOut, **errors(404, 422)},
             summary="Record a consent", **requires("members.edit"))
def create(request, payload: ConsentIn, member_id: int = Path(..., ge=1, le=MAX_ID)):
    member = _member(request, member_id)
    given_at = aware(payload.given_at, "given_at") or timezone.now()
    if given_at > timezone.now() + dt.timedelta(minutes=5):  # clocks differ a little
        raise invalid("given_at", _("Consent cannot be given in the future."))
    consent = ConsentRecord.objects.create(
        workspace=request.workspace, member=member, channel=payload.channel, given_at=given_at,
        method=payload.method.strip(), source=payload.source.strip(),
        wording_version=payload.wording_version.strip(),
        ip=str(payload.ip) if payload.ip else None, user_agent=payload.user_agent)
    audit.record("consent.recorded", request=request, target=f"member:{member.pk}",
                 consent_id=consent.pk, channel=consent.channel, method=consent.method, via="api")
    return Status(201, _render(request, [consent])[0])


@router.post("/{member_id}/consents/{consent_id}/withdraw",
             response={200: ConsentOut, **errors(404, 409, 422)},
             summary="Withdraw a consent", **requires("members.edit"))
def withdraw(request, payload: WithdrawIn, member_id: int = Path(..., ge=1, le=MAX_ID),
             consent_id: int = Path(..., ge=1, le=MAX_ID)):
    """Marks the consent withdrawn now (409 if it already was). The member's status is not
    changed: set it to `unsubscribed` to stop all sending."""
    member = _member(request, member_id)
    with transaction.atomic():
        consent = (ConsentRecord.objects.select_for_update()
                   .filter(pk=consent_id, member=member, workspace=request.workspace).first())
        if consent is None:
            raise not_found(_("Consent record"))
        if consent.withdrawn_at is not None:
            raise conflict(_("This consent was already withdrawn."))
        consent.withdrawn_at = timezone.now()
        consent.withdrawn_method = payload.method.strip()
        consent.save(update_fields=["withdrawn_at", "withdrawn_method"])
    audit.record("consent.withdrawn", request=request, target=f"member:{member.pk}",
                 consent_id=consent.pk, channel=consent.channel,
                 method=consent.withdrawn_method, via="api")
    return _render(request, [consent])[0]
