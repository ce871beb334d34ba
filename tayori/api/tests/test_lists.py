"""Lists over the API: CRUD, membership, and the workspace boundary."""

import pytest

from tayori.accounts.models import AuditEvent
from tayori.api.tests.helpers import error_of
from tayori.members.models import ListMembership, Member, MemberList

LISTS = "/api/v1/lists"


@pytest.fixture
def vip(workspace):
    return MemberList.objects.create(workspace=workspace, name="VIP")


@pytest.fixture
def people(workspace):
    return [Member.objects.create(workspace=workspace, email=f"p{i}@example.jp") for i in range(3)]


def test_it_creates_reads_renames_and_deletes_a_list(api):
    created = api.post(LISTS, {"name": "  秋キャンペーン  ", "description": "当選者"})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["name"] == "秋キャンペーン" and body["member_count"] == 0
    path = f"{LISTS}/{body['id']}"
    assert api.get(path).json()["description"] == "当選者"
    renamed = api.patch(path, {"name": "冬キャンペーン"})
    assert renamed.json()["name"] == "冬キャンペーン"
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"list.created", "list.updated", "list.deleted"} <= actions


def test_names_are_unique_in_the_workspace(api, vip, other_workspace):
    response = api.post(LISTS, {"name": "VIP"})
    assert response.status_code == 409
    assert error_of(response)["field"] == "name"
    other = api.post(LISTS, {"name": "Other"}).json()
    assert api.patch(f"{LISTS}/{other['id']}", {"name": "VIP"}).status_code == 409
    MemberList.objects.create(workspace=other_workspace, name="Elsewhere")
    assert api.post(LISTS, {"name": "Elsewhere"}).status_code == 201


def test_a_blank_name_is_refused_with_its_field(api, db):
    response = api.post(LISTS, {"name": "   "})
    assert response.status_code == 422
    assert error_of(response)["field"] == "name"


def test_it_adds_members_all_or_nothing(api, vip, people, other_workspace):
    stranger = Member.objects.create(workspace=other_workspace, email="x@example.jp")
    refused = api.post(f"{LISTS}/{vip.pk}/members",
                       {"member_ids": [people[0].pk, stranger.pk]})
    assert refused.status_code == 422
    error = error_of(refused)
    assert error["field"] == "member_ids" and str(stranger.pk) in error["message"]
    assert not ListMembership.objects.exists()
    added = api.post(f"{LISTS}/{vip.pk}/members", {"member_ids": [p.pk for p in people[:2]]})
    assert added.json() == {"added": 2, "already": 0}
    again = api.post(f"{LISTS}/{vip.pk}/members", {"member_ids": [p.pk for p in people]})
    assert again.json() == {"added": 1, "already": 2}
    assert api.get(f"{LISTS}/{vip.pk}").json()["member_count"] == 3


def test_it_lists_a_lists_members_masked_for_keys_without_pii(api, analyst_api, vip, people):
    ListMembership.objects.create(member_list=vip, member=people[1])
    items = api.get(f"{LISTS}/{vip.pk}/members").json()["items"]
    assert [m["id"] for m in items] == [people[1].pk]
    assert items[0]["email"] == "p1@example.jp"
    assert analyst_api.get(f"{LISTS}/{vip.pk}/members").json()["items"][0]["email"] == \
        "p***@example.jp"


def test_it_removes_a_member_from_a_list(api, vip, people):
    ListMembership.objects.create(member_list=vip, member=people[0])
    assert api.delete(f"{LISTS}/{vip.pk}/members/{people[0].pk}").status_code == 204
    assert not ListMembership.objects.exists()
    assert Member.objects.filter(pk=people[0].pk).exists()
    # Removing again is not an error: the member is off the list either way.
    assert api.delete(f"{LISTS}/{vip.pk}/members/{people[0].pk}").status_code == 204


def test_another_workspaces_list_is_not_found(api, other_workspace, people):
    theirs = MemberList.objects.create(workspace=other_workspace, name="Theirs")
    path = f"{LISTS}/{theirs.pk}"
    assert api.get(path).status_code == 404
    assert api.patch(path, {"name": "Mine"}).status_code == 404
    assert api.delete(path).status_code == 404
    assert api.get(f"{path}/members").status_code == 404
    assert api.post(f"{path}/members", {"member_ids": [people[0].pk]}).status_code == 404
    assert MemberList.objects.get(pk=theirs.pk).name == "Theirs"
    assert [item["name"] for item in api.get(LISTS).json()["items"]] == []


def test_editing_lists_needs_members_edit(analyst_api, vip, people):
    assert analyst_api.get(LISTS).status_code == 200
    assert analyst_api.post(LISTS, {"name": "New"}).status_code == 403
    assert analyst_api.delete(f"{LISTS}/{vip.pk}").status_code == 403
    assert analyst_api.post(f"{LISTS}/{vip.pk}/members",
                            {"member_ids": [people[0].pk]}).status_code == 403
