"""Small pieces shared by the v1 routers: id bounds, workspace-scoped fetches, times, responses."""

import datetime as dt

from django.db.models import Model
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Schema

from tayori.api.errors import ErrorOut, invalid, not_found

# Ids are 64-bit; larger numbers cannot name a row (and SQLite refuses them outright).
MAX_ID = 2**63 - 1


def get_scoped(model: type[Model], request, pk: int, what: str, **extra) -> Model:
    """The row ``pk`` of the key's workspace, or 404 — a row of another workspace is never
    distinguished from one that does not exist."""
    obj = model.objects.filter(pk=pk, workspace=request.workspace, **extra).first()
    if obj is None:
        raise not_found(what)
    return obj


def aware(value: dt.datetime | None, field: str) -> dt.datetime | None:
    """A request time made timezone-aware (naive times are in the workspace's zone) and checked
    to be storable."""
    if value is None:
        return None
    try:
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        value.astimezone(dt.UTC)
    except (OverflowError, ValueError) as exc:
        raise invalid(field, _("This time is out of range.")) from exc
    return value


def errors(*statuses: int) -> dict:
    """Error responses to document for an operation (every operation may also answer 401/403/429)."""
    return {status: ErrorOut for status in (401, 403, 429, *statuses)}


class InSchema(Schema):
    """A request body. Unknown fields are refused, so a misspelt one is never silently ignored;
    surrounding whitespace is dropped before lengths are checked, so a name of spaces is empty."""

    model_config = {"str_strip_whitespace": True, "extra": "forbid"}
