"""Suppressions: addresses and numbers never to send to, whoever they belong to.

Values are normalized exactly like member contacts so that a suppression always matches the
member it is meant for. They are personal data: masked for keys without ``members.view_pii``,
and searching by value needs that permission.
"""

import datetime as dt
from typing import Literal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Path, Query, Router, Schema
from ninja.responses import Status

from tayori.accounts import audit
from tayori.api.auth import can, require_pii, requires
from tayori.api.common import MAX_ID, InSchema, aware, errors, get_scoped
from tayori.api.errors import conflict, invalid
from tayori.api.pagination import PageParams, page_of, paginate
from tayori.members import services
from tayori.members.masking import mask_email, mask_phone
from tayori.members.models import Suppression
from tayori.members.values import FieldError, normalize_email, normalize_phone

router = Router(tags=["Suppressions"])

Kind = Literal[tuple(Suppression.Kind.values)]


class SuppressionOut(Schema):
    id: int
    kind: Kind
    value: str = Field(description="Normalized address or E.164 number; masked for keys "
                                    "without members.view_pii.")
    reason: str
    source: str
    expires_at: dt.datetime | None = Field(description="After this time the suppression no "
                                                       "longer applies; null = never.")
    delivery_id: int | None = Field(None, description="The delivery whose bounce or complaint "
                                                      "caused it.")
    created_at: dt.datetime
    masked: bool


class SuppressionIn(InSchema):
    kind: Kind = "email"
    value: str = Field(..., min_length=1, max_length=320, description=(
        "An email address, or a phone number as written (`090-1234-5678`) or in E.164."))
    reason: str = Field(..., min_length=1, max_length=200)
    source: str = Field("api", max_length=100)
    expires_at: dt.datetime | None = Field(None, description="Optional; in the future.")

    model_config = {"json_schema_extra": {"examples": [
        {"kind": "email", "value": "complaints@example.jp", "reason": "苦情により配信停止"}]}}


class SuppressionFilters(Schema):
    kind: Kind | None = None
    value: str | None = Field(None, max_length=320, description=(
        "Find the suppression of this address or number (normalized first); needs "
        "members.view_pii."))


def _normalize(kind: str, raw: str) -> str:
    try:
        value = normalize_email(raw) if kind == "email" else normalize_phone(raw)
    except FieldError as error:
        raise invalid("value", error.message) from error
    if not value:
        raise invalid("value", _("This field is required."))
    return value


def _quietly(normalize, raw: str) -> str:
    try:
        return normalize(raw)
    except FieldError:
        return ""


def _render(request, rows: list[Suppression]) -> list[dict]:
    pii = can(request, "members.view_pii")
    mask = {"email": mask_email, "phone": mask_phone}
    return [{"id": s.pk, "kind": s.kind, "reason": s.reason, "source": s.source,
             "expires_at": s.expires_at, "delivery_id": s.delivery_id,
             "created_at": s.created_at, "masked": not pii,
             "value": s.value if pii else mask[s.kind](s.value)} for s in rows]


@router.get("", response={200: page_of(SuppressionOut), **errors(422)},
            summary="List suppressions", **requires("members.view"))
def list_suppressions(request, filters: Query[SuppressionFilters], page: Query[PageParams]):
    rows = Suppression.objects.filter(workspace=request.workspace)
    if filters.kind:
        rows = rows.filter(kind=filters.kind)
    if filters.value:
        require_pii(request, "value")
        if filters.kind:
            values = [_normalize(filters.kind, filters.value)]
        else:
            values = [v for v in (_quietly(normalize_email, filters.value),
                                  _quietly(normalize_phone, filters.value)) if v]
            if not values:
                raise invalid("value", _("Not a valid email address or phone number."))
        rows = rows.filter(value__in=values)
    return paginate(rows, page, lambda page_rows: _render(request, page_rows))


@router.post("", response={201: SuppressionOut, **errors(409, 422)},
             summary="Suppress an address or number", **requires("members.edit"))
def create(request, payload: SuppressionIn):
    value = _normalize(payload.kind, payload.value)
    expires_at = aware(payload.expires_at, "expires_at")
    if expires_at is not None and expires_at <= timezone.now():
        raise invalid("expires_at", _("The expiry must be in the future."))
    if Suppression.objects.filter(workspace=request.workspace, kind=payload.kind,
                                  value=value).exists():
        raise conflict(_("This is already suppressed."), field="value")
    with transaction.atomic():
        suppression = Suppression.objects.create(
            workspace=request.workspace, kind=payload.kind, value=value,
            reason=payload.reason.strip(), source=payload.source.strip(), expires_at=expires_at)
    audit.record("suppression.added", request=request, target=f"suppression:{suppression.pk}",
                 kind=suppression.kind, reason=suppression.reason, via="api")
    return Status(201, _render(request, [suppression])[0])


@router.get("/{suppression_id}", response={200: SuppressionOut, **errors(404)},
            summary="Get a suppression", **requires("members.view"))
def get(request, suppression_id: int = Path(..., ge=1, le=MAX_ID)):
    return _render(request, [get_scoped(Suppression, request, suppression_id, _("Suppression"))])[0]


@router.delete("/{suppression_id}", response={204: None, **errors(404)},
               summary="Lift a suppression", **requires("members.edit"))
def delete(request, suppression_id: int = Path(..., ge=1, le=MAX_ID)):
    suppression = get_scoped(Suppression, request, suppression_id, _("Suppression"))
    target, kind = f"suppression:{suppression.pk}", suppression.kind
    reactivated = services.lift_suppression(suppression)
    audit.record("suppression.deleted", request=request, target=target, kind=kind, via="api",
                 members_reactivated=reactivated)
    return Status(204, None)
