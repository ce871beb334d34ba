"""Bounces and complaints: what came back for the workspace's mail, with the classifier's
reason and what the workspace's rules did about it (see tayori.inbound).

Addresses are masked for keys without ``members.view_pii``, and filtering by address needs
that permission."""

import datetime as dt
from typing import Literal

from django.utils.translation import gettext as _
from ninja import Field, Path, Query, Router, Schema

from tayori.api.auth import can, require_pii, requires
from tayori.api.common import MAX_ID, aware, errors, get_scoped
from tayori.api.pagination import PageParams, page_of, paginate
from tayori.inbound.models import Bounce, Complaint, Via
from tayori.inbound.reasons import REASONS
from tayori.members.masking import mask_email, mask_emails_in

bounces_router = Router(tags=["Bounces and complaints"])
complaints_router = Router(tags=["Bounces and complaints"])

Reason = Literal[REASONS]
Channel = Literal[tuple(Via.values)]


class BounceOut(Schema):
    id: int
    delivery_id: int | None
    source_id: int | None
    member_id: int | None
    address: str = Field(description="Masked for keys without members.view_pii.")
    reason: Reason
    hard: bool = Field(description="Permanent: the address will not work again.")
    counts: bool = Field(description="False for a carrier's domain filter and for a report "
                                     "matched only by address: neither counts against the "
                                     "address or the send's bounce rate.")
    via: Channel = Field(description="mx: a report mailed back; smtp: the refusal while "
                                     "sending; ses, sendgrid: a provider's feed.")
    status: str = Field(description="Enhanced status code, e.g. 5.1.1.")
    diagnostic: str = Field(description="Addresses in it are masked for keys without "
                                        "members.view_pii.")
    remote_mta: str
    action: str = Field(description="What the workspace's rules did, e.g. the suppression.")
    received_at: dt.datetime


class ComplaintOut(Schema):
    id: int
    delivery_id: int | None
    source_id: int | None
    member_id: int | None
    address: str = Field(description="Masked for keys without members.view_pii.")
    feedback_type: str
    reporter: str
    via: Channel
    received_at: dt.datetime


class InboundFilter(PageParams):
    address: str | None = Field(None, max_length=254, description="Needs members.view_pii.")
    delivery_id: int | None = Field(None, ge=1, le=MAX_ID)
    member_id: int | None = Field(None, ge=1, le=MAX_ID)
    source_id: int | None = Field(None, ge=1, le=MAX_ID)
    since: dt.datetime | None = Field(None, description="Received at or after.")


class BounceFilter(InboundFilter):
    reason: Reason | None = None
    hard: bool | None = None


def _filtered(request, rows, filters: InboundFilter):
    if filters.address:
        require_pii(request, _("address"))
        rows = rows.filter(address__in={filters.address, filters.address.lower()})
    for key in ("delivery_id", "member_id", "source_id"):
        if getattr(filters, key):
            rows = rows.filter(**{key: getattr(filters, key)})
    if filters.since:
        rows = rows.filter(received_at__gte=aware(filters.since, "since"))
    return rows


def _render(request, rows, fields: tuple[str, ...]) -> list[dict]:
    pii = can(request, "members.view_pii")
    items = [{**{f: getattr(row, f) for f in fields}, "id": row.pk,
              "address": row.address if pii else mask_email(row.address)} for row in rows]
    if not pii:  # relays quote the recipient in their replies
        for item in items:
            if "diagnostic" in item:
                item["diagnostic"] = mask_emails_in(item["diagnostic"])
    return items


_BOUNCE_FIELDS = ("delivery_id", "source_id", "member_id", "reason", "hard", "counts", "via",
                  "status", "diagnostic", "remote_mta", "action", "received_at")
_COMPLAINT_FIELDS = ("delivery_id", "source_id", "member_id", "feedback_type", "reporter",
                     "via", "received_at")


@bounces_router.get("", response={200: page_of(BounceOut), **errors(403, 422)},
                    summary="List bounces", **requires("deliveries.view"))
def list_bounces(request, filters: Query[BounceFilter]):
    rows = _filtered(request, Bounce.objects.filter(workspace=request.workspace)
                     .defer("raw"), filters)
    if filters.reason:
        rows = rows.filter(reason=filters.reason)
    if filters.hard is not None:
        rows = rows.filter(hard=filters.hard)
    return paginate(rows, filters, lambda page: _render(request, page, _BOUNCE_FIELDS))


@bounces_router.get("/{bounce_id}", response={200: BounceOut, **errors(404)},
                    summary="Get a bounce", **requires("deliveries.view"))
def get_bounce(request, bounce_id: int = Path(..., ge=1, le=MAX_ID)):
    bounce = get_scoped(Bounce, request, bounce_id, _("Bounce"))
    return _render(request, [bounce], _BOUNCE_FIELDS)[0]


@complaints_router.get("", response={200: page_of(ComplaintOut), **errors(403, 422)},
                       summary="List complaints", **requires("deliveries.view"))
def list_complaints(request, filters: Query[InboundFilter]):
    rows = _filtered(request, Complaint.objects.filter(workspace=request.workspace)
                     .defer("raw"), filters)
    return paginate(rows, filters, lambda page: _render(request, page, _COMPLAINT_FIELDS))
