"""Segments: saved audiences as condition trees — list, read, create, change, delete, count.

Definitions are validated and compiled by ``tayori.members.segments``, the same engine as the
UI's condition builder. Keys without ``members.view_pii`` may not save conditions on personal
data: a count over "email starts with …" would reveal what masking hides.
"""

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from ninja import Field, Path, Query, Router, Schema
from ninja.responses import Status

from tayori.accounts import audit
from tayori.api.auth import can, requires
from tayori.api.common import MAX_ID, InSchema, errors, get_scoped
from tayori.api.errors import ApiError, conflict
from tayori.api.pagination import PageParams, page_of, paginate
from tayori.members.masking import pii_fields
from tayori.members.models import Attribute, Member, Segment

router = Router(tags=["Segments"])

_EXAMPLE_DEFINITION = {"op": "and", "conditions": [
    {"field": "status", "operator": "equals", "value": "active"},
    {"op": "or", "conditions": [
        {"field": "plan", "operator": "in", "value": ["gold", "platinum"]},
        {"field": "birthday", "operator": "anniversary_within_days", "value": 7},
    ]},
]}

DEFINITION_HELP = (
    "A tree of groups `{\"op\": \"and\"|\"or\", \"conditions\": [...]}` whose leaves are "
    "`{\"field\", \"operator\", \"value\"}`. `field` is `email`, `phone`, `status`, "
    "`created_at`, `list`, `segment` or an attribute key; operators depend on the field's type "
    "(equals, not_equals, contains, starts_with, in, gt, lt, between, is_empty, "
    "within_last_days, anniversary_within_days, in_list, in_segment, …). An empty definition "
    "selects every member.")


class SegmentOut(Schema):
    id: int
    name: str
    description: str
    definition: dict[str, Any] = Field(description=DEFINITION_HELP)
    created_at: dt.datetime
    updated_at: dt.datetime


class SegmentIn(InSchema):
    name: str = Field(..., min_length=1, max_length=200, description="Unique in the workspace.")
    description: str = Field("", max_length=5000)
    definition: dict[str, Any] = Field(description=DEFINITION_HELP)

    model_config = {"json_schema_extra": {"examples": [
        {"name": "ゴールド会員", "definition": _EXAMPLE_DEFINITION}]}}


class SegmentPatch(InSchema):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    definition: dict[str, Any] | None = None


class CountOut(Schema):
    count: int = Field(description="Members the segment selects now.")


def _engine():
    # Imported when first used: the engine is large and only segment calls need it.
    from tayori.members import segments

    return segments


def _run(query):
    """Run ``query()`` over a saved segment; a segment that can no longer run (a list it names
    was deleted, an attribute changed type) is a 409 that says why, not a crash."""
    engine = _engine()
    try:
        return query()
    except engine.SegmentError as error:
        raise conflict(_("This segment can no longer be run: %(reason)s") % {"reason": error},
                       field="definition") from error


def selected_members(workspace, segment: Segment) -> QuerySet[Member]:
    """The members ``segment`` selects now (validated and compiled here; run by the caller)."""
    return _run(lambda: _engine().segment_members(segment))


def _referenced_fields(node) -> set[str]:
    """Every ``field`` named anywhere in a condition tree."""
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("field"), str):
            found.add(node["field"])
        for value in node.values():
            found |= _referenced_fields(value)
    elif isinstance(node, list):
        for value in node:
            found |= _referenced_fields(value)
    return found


def _json_path(path: tuple[int, ...]) -> str:
    """The engine's 1-based condition position (1, 2) as a body path:
    ``definition.conditions.0.conditions.1``."""
    return ".".join(["definition", *(f"conditions.{i - 1}" for i in path)])


def _valid_definition(request, definition: dict, segment: Segment | None = None) -> dict:
    """The definition as the engine normalizes it; 403 when a key that sees personal data masked
    conditions on it, else 422 naming every bad condition."""
    engine = _engine()
    allow_pii = can(request, "members.view_pii")
    if not allow_pii:
        attributes = Attribute.objects.filter(workspace=request.workspace)
        used = _referenced_fields(definition) & pii_fields(attributes)
        if used:
            raise ApiError(403, "pii_not_allowed", _(
                "Conditions on personal data (%(fields)s) need the “members.view_pii” "
                "permission.") % {"fields": ", ".join(sorted(used))}, field="definition")
    try:
        return engine.validate(request.workspace, definition, allow_pii=allow_pii,
                               segment=segment)
    except engine.SegmentError as error:
        listed = [{"field": _json_path(e.path), "message": str(e)} for e in error.errors] or [
            {"field": "definition", "message": _("This segment definition is not valid.")}]
        raise ApiError(422, "validation_error", listed[0]["message"], field=listed[0]["field"],
                       errors=listed) from error


def _refuse_taken_name(request, name: str, exclude: int | None = None) -> None:
    taken = Segment.objects.filter(workspace=request.workspace, name=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise conflict(_("A segment with this name already exists."), field="name")


def _get(request, segment_id: int) -> Segment:
    return get_scoped(Segment, request, segment_id, _("Segment"))


@router.get("", response={200: page_of(SegmentOut), **errors(422)}, summary="List segments",
            **requires("members.view"))
def list_segments(request, page: Query[PageParams]):
    return paginate(Segment.objects.filter(workspace=request.workspace), page)


@router.post("", response={201: SegmentOut, **errors(409, 422)},
             summary="Create a segment", **requires("members.edit"))
def create(request, payload: SegmentIn):
    definition = _valid_definition(request, payload.definition)
    _refuse_taken_name(request, payload.name)
    with transaction.atomic():
        segment = Segment.objects.create(workspace=request.workspace, name=payload.name,
                                         description=payload.description, definition=definition)
    audit.record("segment.created", request=request, target=f"segment:{segment.pk}",
                 name=segment.name, via="api")
    return Status(201, segment)


@router.get("/{segment_id}", response={200: SegmentOut, **errors(404)}, summary="Get a segment",
            **requires("members.view"))
def get(request, segment_id: int = Path(..., ge=1, le=MAX_ID)):
    return _get(request, segment_id)


@router.patch("/{segment_id}", response={200: SegmentOut, **errors(404, 409, 422)},
              summary="Change a segment", **requires("members.edit"))
def update(request, payload: SegmentPatch, segment_id: int = Path(..., ge=1, le=MAX_ID)):
    segment = _get(request, segment_id)
    changed = []
    if payload.definition is not None:
        segment.definition = _valid_definition(request, payload.definition, segment)
        changed.append("definition")
    if payload.name is not None and payload.name != segment.name:
        _refuse_taken_name(request, payload.name, exclude=segment.pk)
        segment.name = payload.name
        changed.append("name")
    if payload.description is not None and payload.description != segment.description:
        segment.description = payload.description
        changed.append("description")
    if changed:
        with transaction.atomic():
            segment.save()
        audit.record("segment.updated", request=request, target=f"segment:{segment.pk}",
                     name=segment.name, fields=changed, via="api")
    return segment


@router.delete("/{segment_id}", response={204: None, **errors(404)}, summary="Delete a segment",
               **requires("members.edit"))
def delete(request, segment_id: int = Path(..., ge=1, le=MAX_ID)):
    """Refused (409) while other segments include or exclude this one."""
    segment = _get(request, segment_id)
    referring = _engine().referring_segments(segment)
    if referring:
        raise conflict(_("Other segments refer to this one: %(names)s") % {
            "names": ", ".join(s.name for s in referring)},
            segments=[{"id": s.pk, "name": s.name} for s in referring])
    target, name = f"segment:{segment.pk}", segment.name
    segment.delete()
    audit.record("segment.deleted", request=request, target=target, name=name, via="api")
    return Status(204, None)


@router.get("/{segment_id}/count", response={200: CountOut, **errors(404, 409)},
            summary="Count a segment's members now", **requires("members.view"))
def count(request, segment_id: int = Path(..., ge=1, le=MAX_ID)):
    segment = _get(request, segment_id)
    return {"count": _run(lambda: selected_members(request.workspace, segment).count())}
