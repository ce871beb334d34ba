"""Cursor pagination for list endpoints: ``?limit=`` and an opaque ``cursor``.

Rows are walked in id order and the cursor is the last id seen, signed so that clients treat it as
opaque and cannot tamper with it. Unlike offsets, a cursor never skips or repeats a row when rows
are added or deleted between pages.
"""

from collections.abc import Callable
from typing import Any

from django.core import signing
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from ninja import Field, Schema
from pydantic import create_model

from tayori.api.errors import invalid

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
_SALT = "tayori.api.cursor"


class PageParams(Schema):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT,
                       description=f"Items per page, at most {MAX_LIMIT}.")
    cursor: str | None = Field(None, max_length=200,
                               description="`next_cursor` from the previous page; omit for the first.")


def encode_cursor(last_id: int) -> str:
    return signing.dumps(last_id, salt=_SALT)


def decode_cursor(cursor: str) -> int:
    try:
        last_id = signing.loads(cursor, salt=_SALT)
    except signing.BadSignature as exc:
        raise invalid("cursor", _("This cursor is not valid; use next_cursor from a response.")) from exc
    if not isinstance(last_id, int) or isinstance(last_id, bool):
        raise invalid("cursor", _("This cursor is not valid; use next_cursor from a response."))
    return last_id


def paginate(queryset: QuerySet, params: PageParams,
             render: Callable[[list], list[Any]] | None = None) -> dict:
    """One page of ``queryset`` in id order: ``{"items": [...], "next_cursor": str | None}``.

    ``render`` turns the page's rows into response items in one go (so masking or counting can
    be done for the page at once, not per row with a query each).
    """
    queryset = queryset.order_by("pk")
    if params.cursor:
        queryset = queryset.filter(pk__gt=decode_cursor(params.cursor))
    rows = list(queryset[: params.limit + 1])
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    items = render(rows) if render else rows
    return {"items": items, "next_cursor": encode_cursor(rows[-1].pk) if more else None}


_pages: dict[type, type] = {}


def page_of(item: type[Schema]) -> type[Schema]:
    """The response schema of a page of ``item`` (named ``<Item>Page`` in the OpenAPI spec)."""
    if item not in _pages:
        _pages[item] = create_model(
            f"{item.__name__.removesuffix('Out')}Page", __base__=Schema,
            items=(list[item], ...),
            next_cursor=(str | None, Field(None, description="Pass as `cursor` for the next page; "
                                                             "null on the last page.")),
        )
    return _pages[item]
