"""Cursor pagination: a walk sees every item exactly once, and cursors are opaque and checked."""

import pytest

from tayori.api.pagination import decode_cursor, encode_cursor
from tayori.api.tests.helpers import error_of
from tayori.members.models import Member, Suppression

MEMBERS = "/api/v1/members"


def walk(api, path, limit, **params):
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": limit, **params}
        if cursor:
            query["cursor"] = cursor
        response = api.get(path, query)
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["items"]) <= limit
        seen.extend(item["id"] for item in body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages


@pytest.mark.parametrize("limit", [1, 7, 25, 500])
def test_a_walk_returns_every_member_exactly_once_in_id_order(api, workspace, other_workspace,
                                                              limit):
    Member.objects.bulk_create([Member(workspace=workspace, email=f"m{i}@example.jp")
                                for i in range(25)])
    Member.objects.bulk_create([Member(workspace=other_workspace, email=f"o{i}@example.jp")
                                for i in range(5)])
    expected = list(Member.objects.filter(workspace=workspace).order_by("pk")
                    .values_list("pk", flat=True))
    seen, pages = walk(api, MEMBERS, limit)
    assert seen == expected
    assert pages == -(-25 // limit)  # no empty last page


def test_rows_added_during_a_walk_are_neither_skipped_nor_repeated(api, workspace):
    Member.objects.bulk_create([Member(workspace=workspace, email=f"m{i}@example.jp")
                                for i in range(6)])
    first = api.get(MEMBERS, {"limit": 3}).json()
    Member.objects.filter(pk=first["items"][0]["id"]).delete()
    late = Member.objects.create(workspace=workspace, email="late@example.jp")
    rest, _pages = walk(api, MEMBERS, 3, cursor=first["next_cursor"])
    ids = [m["id"] for m in first["items"]] + rest
    assert len(ids) == len(set(ids)) == 7
    assert ids[-1] == late.pk


def test_the_last_page_has_no_cursor(api, workspace):
    Member.objects.create(workspace=workspace, email="a@example.jp")
    assert api.get(MEMBERS, {"limit": 1}).json()["next_cursor"] is None


def test_an_empty_workspace_is_one_empty_page(api, db):
    assert api.get(MEMBERS).json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("limit", [0, 501, -1, "ten"])
def test_it_refuses_a_limit_out_of_range(api, db, limit):
    response = api.get(MEMBERS, {"limit": limit})
    assert response.status_code == 422
    assert error_of(response)["field"] == "limit"


@pytest.mark.parametrize("cursor", ["garbage", encode_cursor(5)[:-2] + "xx", "1"])
def test_it_refuses_a_forged_or_damaged_cursor(api, db, cursor):
    response = api.get(MEMBERS, {"cursor": cursor})
    assert response.status_code == 422
    assert error_of(response)["field"] == "cursor"


def test_cursors_are_opaque_round_trips():
    cursor = encode_cursor(1234)
    assert "1234" not in cursor.split(":")[-1]
    assert decode_cursor(cursor) == 1234


def test_other_lists_paginate_the_same_way(api, workspace):
    Suppression.objects.bulk_create([Suppression(workspace=workspace, value=f"s{i}@example.jp",
                                                 reason="test") for i in range(12)])
    seen, _pages = walk(api, "/api/v1/suppressions", 5)
    assert seen == sorted(Suppression.objects.values_list("pk", flat=True))
