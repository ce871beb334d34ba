"""The attribute schema over the API: read by viewers, defined and changed by editors."""

import pytest

from tayori.accounts.models import AuditEvent
from tayori.api.tests.helpers import error_of
from tayori.members.models import Attribute, Member

ATTRIBUTES = "/api/v1/attributes"


@pytest.fixture
def plan(workspace):
    return Attribute.objects.create(workspace=workspace, key="plan", label="プラン",
                                    type="choice", choices=["free", "gold"], position=1)


def test_it_lists_the_schema_in_display_order(analyst_api, workspace, plan, other_workspace):
    Attribute.objects.create(workspace=workspace, key="name", label="氏名", pii=True,
                             required=True, position=0)
    Attribute.objects.create(workspace=other_workspace, key="secret", label="Secret")
    items = analyst_api.get(ATTRIBUTES).json()["items"]
    assert [a["key"] for a in items] == ["name", "plan"]
    assert items[0] == {"id": items[0]["id"], "key": "name", "label": "氏名", "type": "text",
                        "choices": [], "required": True, "unique": False, "pii": True,
                        "position": 0}
    assert analyst_api.get(f"{ATTRIBUTES}/plan").json()["choices"] == ["free", "gold"]
    assert analyst_api.get(f"{ATTRIBUTES}/secret").status_code == 404


def test_it_defines_an_attribute_at_the_end(api, plan):
    response = api.post(ATTRIBUTES, {"key": "birthday", "label": "誕生日", "type": "date",
                                     "pii": True})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["key"], body["type"], body["pii"], body["position"]) == ("birthday", "date",
                                                                          True, 2)
    assert AuditEvent.objects.filter(action="attribute.created").exists()


@pytest.mark.parametrize("body,field", [
    ({"key": "Bad Key", "label": "x"}, "key"),
    ({"key": "email", "label": "x"}, "key"),
    ({"key": "tier", "label": "x", "type": "choice"}, "choices"),
    ({"key": "tier", "label": "x", "type": "multi_choice", "choices": ["a;b"]}, "choices"),
    ({"key": "tier", "label": "x", "type": "colour"}, "type"),
    ({"key": "tier", "label": ""}, "label"),
])
def test_it_validates_definitions_like_the_ui(api, db, body, field):
    response = api.post(ATTRIBUTES, body)
    assert response.status_code == 422, response.content
    assert error_of(response)["field"] == field
    assert not Attribute.objects.exists()


def test_a_key_is_defined_once(api, plan):
    response = api.post(ATTRIBUTES, {"key": "plan", "label": "Plan"})
    assert response.status_code == 409
    assert error_of(response)["field"] == "key"


def test_it_changes_a_definition_and_converts_stored_values(api, workspace):
    Attribute.objects.create(workspace=workspace, key="age", label="年齢")
    member = Member.objects.create(workspace=workspace, email="a@example.jp",
                                   attributes={"age": "42"})
    response = api.patch(f"{ATTRIBUTES}/age", {"type": "number", "label": "Age"})
    assert response.status_code == 200, response.content
    assert response.json()["type"] == "number"
    member.refresh_from_db()
    assert member.attributes == {"age": 42}
    event = AuditEvent.objects.get(action="attribute.updated")
    assert event.detail["converted"] == 1


def test_a_change_blocked_by_stored_values_changes_nothing_and_names_the_members(
        api, analyst_api, workspace, plan):
    Attribute.objects.filter(pk=plan.pk).update(pii=True)
    member = Member.objects.create(workspace=workspace, email="taro@example.jp",
                                   attributes={"plan": "gold"})
    response = api.patch(f"{ATTRIBUTES}/plan", {"choices": ["free", "platinum"]})
    assert response.status_code == 409
    error = error_of(response)
    assert error["blocked"] == 1
    assert error["blockers"][0]["member_id"] == member.pk
    assert error["blockers"][0]["email"] == "taro@example.jp"
    assert Attribute.objects.get(pk=plan.pk).choices == ["free", "gold"]


def test_blockers_are_masked_for_keys_without_pii(masked_editor_api, workspace, plan):
    Attribute.objects.filter(pk=plan.pk).update(pii=True)
    Member.objects.create(workspace=workspace, email="taro@example.jp", attributes={"plan": "gold"})
    error = error_of(masked_editor_api.patch(f"{ATTRIBUTES}/plan", {"choices": ["free"]}))
    assert error["blockers"][0]["email"] == "ta***@example.jp"
    assert error["blockers"][0]["value"] == "***"
    assert "gold" not in error["blockers"][0]["reason"]


def test_the_key_cannot_change_and_unknown_fields_are_refused(api, plan):
    response = api.patch(f"{ATTRIBUTES}/plan", {"key": "tier", "label": "Tier"})
    assert response.status_code == 422
    assert error_of(response)["field"] == "key"
    assert Attribute.objects.filter(key="plan", label="プラン").exists()


def test_deleting_an_attribute_clears_its_values(api, workspace, plan):
    member = Member.objects.create(workspace=workspace, email="a@example.jp",
                                   attributes={"plan": "gold", "other": 1})
    assert api.delete(f"{ATTRIBUTES}/plan").status_code == 204
    member.refresh_from_db()
    assert member.attributes == {"other": 1}
    assert not Attribute.objects.exists()
    assert AuditEvent.objects.get(action="attribute.deleted").detail["members_cleared"] == 1


def test_another_workspaces_attribute_cannot_be_changed(api, other_workspace):
    Attribute.objects.create(workspace=other_workspace, key="plan", label="Theirs")
    assert api.patch(f"{ATTRIBUTES}/plan", {"label": "Mine"}).status_code == 404
    assert api.delete(f"{ATTRIBUTES}/plan").status_code == 404
    assert Attribute.objects.get(key="plan").label == "Theirs"


def test_defining_attributes_needs_members_edit(analyst_api, plan):
    assert analyst_api.post(ATTRIBUTES, {"key": "x", "label": "x"}).status_code == 403
    assert analyst_api.patch(f"{ATTRIBUTES}/plan", {"label": "x"}).status_code == 403
    assert analyst_api.delete(f"{ATTRIBUTES}/plan").status_code == 403
