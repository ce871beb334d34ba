"""Segments over the API: definitions checked by the segment engine, counts, and masking rules."""

import pytest

from tayori.accounts.models import AuditEvent
from tayori.api.tests.helpers import error_of
from tayori.members.models import Attribute, ListMembership, Member, MemberList, Segment

SEGMENTS = "/api/v1/segments"
GOLD = {"op": "and", "conditions": [{"field": "plan", "operator": "equals", "value": "gold"}]}


@pytest.fixture
def members(workspace):
    Attribute.objects.create(workspace=workspace, key="plan", label="プラン", type="choice",
                             choices=["free", "gold"])
    Attribute.objects.create(workspace=workspace, key="name", label="氏名", pii=True)
    return [Member.objects.create(workspace=workspace, email=f"m{i}@example.jp",
                                  attributes={"plan": "gold" if i % 2 else "free"})
            for i in range(5)]


def test_it_creates_a_segment_and_counts_it(api, members):
    response = api.post(SEGMENTS, {"name": "ゴールド", "definition": GOLD})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["definition"] == GOLD
    assert api.get(f"{SEGMENTS}/{body['id']}/count").json() == {"count": 2}
    assert AuditEvent.objects.filter(action="segment.created").exists()


def test_members_can_be_filtered_by_a_segment(api, workspace, members):
    segment = Segment.objects.create(workspace=workspace, name="Gold", definition=GOLD)
    items = api.get("/api/v1/members", {"segment_id": segment.pk}).json()["items"]
    assert [m["id"] for m in items] == [members[1].pk, members[3].pk]


def test_it_names_the_bad_condition(api, members):
    definition = {"op": "and", "conditions": [
        {"field": "plan", "operator": "equals", "value": "gold"},
        {"op": "or", "conditions": [{"field": "colour", "operator": "equals", "value": "red"}]},
    ]}
    response = api.post(SEGMENTS, {"name": "Bad", "definition": definition})
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "definition.conditions.1.conditions.0"
    assert "colour" in error["message"]
    assert not Segment.objects.exists()


def test_a_key_without_pii_may_not_condition_on_personal_data(masked_editor_api, members):
    for field, operator, value in (("email", "starts_with", "m1"), ("name", "contains", "山")):
        definition = {"op": "and", "conditions": [
            {"field": field, "operator": operator, "value": value}]}
        response = masked_editor_api.post(SEGMENTS, {"name": field, "definition": definition})
        assert response.status_code == 403
        assert error_of(response)["code"] == "pii_not_allowed"
    assert not Segment.objects.exists()


def test_it_changes_a_segment_and_refuses_a_self_reference(api, workspace, members):
    segment = Segment.objects.create(workspace=workspace, name="Gold", definition=GOLD)
    path = f"{SEGMENTS}/{segment.pk}"
    free = {"op": "and", "conditions": [{"field": "plan", "operator": "equals", "value": "free"}]}
    assert api.patch(path, {"definition": free, "name": "Free"}).json()["name"] == "Free"
    assert api.get(f"{path}/count").json() == {"count": 3}
    itself = {"op": "and", "conditions": [
        {"field": "segment", "operator": "in_segment", "value": segment.pk}]}
    assert api.patch(path, {"definition": itself}).status_code == 422


def test_a_segment_others_refer_to_is_not_deleted(api, workspace, members):
    gold = Segment.objects.create(workspace=workspace, name="Gold", definition=GOLD)
    Segment.objects.create(workspace=workspace, name="Not gold", definition={
        "op": "and", "conditions": [
            {"field": "segment", "operator": "not_in_segment", "value": gold.pk}]})
    response = api.delete(f"{SEGMENTS}/{gold.pk}")
    assert response.status_code == 409
    assert error_of(response)["segments"][0]["name"] == "Not gold"
    assert Segment.objects.filter(pk=gold.pk).exists()


def test_a_segment_that_can_no_longer_run_is_a_conflict_not_a_crash(api, workspace, members):
    vip = MemberList.objects.create(workspace=workspace, name="VIP")
    ListMembership.objects.create(member_list=vip, member=members[0])
    segment = Segment.objects.create(workspace=workspace, name="VIP", definition={
        "op": "and", "conditions": [{"field": "list", "operator": "in_list", "value": vip.pk}]})
    assert api.get(f"{SEGMENTS}/{segment.pk}/count").json() == {"count": 1}
    vip.delete()
    response = api.get(f"{SEGMENTS}/{segment.pk}/count")
    assert response.status_code == 409
    assert error_of(response)["field"] == "definition"


def test_names_are_unique(api, workspace, members):
    Segment.objects.create(workspace=workspace, name="Gold", definition=GOLD)
    assert api.post(SEGMENTS, {"name": "Gold", "definition": GOLD}).status_code == 409


def test_another_workspaces_segment_is_not_found(api, other_workspace, members):
    theirs = Segment.objects.create(workspace=other_workspace, name="Theirs", definition={})
    for response in (api.get(f"{SEGMENTS}/{theirs.pk}"),
                     api.get(f"{SEGMENTS}/{theirs.pk}/count"),
                     api.patch(f"{SEGMENTS}/{theirs.pk}", {"name": "Mine"}),
                     api.delete(f"{SEGMENTS}/{theirs.pk}"),
                     api.get("/api/v1/members", {"segment_id": theirs.pk})):
        assert response.status_code == 404
    assert api.get(SEGMENTS).json()["items"] == []
    # Nor can a definition reach into another workspace.
    into = {"op": "and", "conditions": [
        {"field": "segment", "operator": "in_segment", "value": theirs.pk}]}
    assert api.post(SEGMENTS, {"name": "Sneaky", "definition": into}).status_code == 422


def test_saving_segments_needs_members_edit(analyst_api, workspace, members):
    segment = Segment.objects.create(workspace=workspace, name="Gold", definition=GOLD)
    assert analyst_api.get(f"{SEGMENTS}/{segment.pk}/count").json() == {"count": 2}
    assert analyst_api.post(SEGMENTS, {"name": "x", "definition": GOLD}).status_code == 403
    assert analyst_api.delete(f"{SEGMENTS}/{segment.pk}").status_code == 403
