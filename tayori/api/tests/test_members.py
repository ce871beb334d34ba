"""Members over the API: the same validation as the UI, masking, and workspace scoping."""

import datetime as dt

import pytest
from django.utils import timezone

from tayori.accounts.models import AuditEvent
from tayori.api.tests.helpers import error_of
from tayori.members.models import Attribute, ListMembership, Member, MemberList

MEMBERS = "/api/v1/members"


@pytest.fixture
def attrs(workspace):
    Attribute.objects.create(workspace=workspace, key="name", label="氏名", pii=True,
                             required=True)
    Attribute.objects.create(workspace=workspace, key="age", label="年齢", type="number")
    Attribute.objects.create(workspace=workspace, key="plan", label="プラン", type="choice",
                             choices=["free", "gold"])


@pytest.fixture
def taro(workspace, attrs):
    return Member.objects.create(workspace=workspace, email="taro@example.jp",
                                 phone="+819012345678", attributes={"name": "山田太郎", "age": 30})


@pytest.fixture
def stranger(other_workspace):
    return Member.objects.create(workspace=other_workspace, email="stranger@example.jp")


def test_it_creates_a_member_normalized_like_the_ui(api, attrs):
    response = api.post(MEMBERS, {"email": "Taro@Example.JP", "phone": "０９０-１２３４-５６７８",
                                  "attributes": {"name": "山田太郎", "age": "３０"}})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["email"] == "Taro@example.jp"
    assert body["phone"] == "+819012345678"
    assert body["attributes"] == {"name": "山田太郎", "age": 30}
    assert body["status"] == "active" and body["masked"] is False
    assert Member.objects.get(pk=body["id"]).email == "Taro@example.jp"
    assert AuditEvent.objects.filter(action="member.created", target=f"member:{body['id']}",
                                     api_key__isnull=False).exists()


def test_it_reports_every_bad_field_with_the_first_in_field(api, attrs):
    response = api.post(MEMBERS, {"email": "not-an-address",
                                  "attributes": {"age": "many", "plan": "platinum"}})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    fields = {e["field"] for e in error["errors"]}
    assert fields == {"email", "attributes.age", "attributes.plan", "attributes.name"}
    assert error["field"] == error["errors"][0]["field"]
    assert not Member.objects.exists()


def test_it_refuses_unknown_attributes_and_member_fields_inside_attributes(api, attrs):
    unknown = api.post(MEMBERS, {"email": "a@example.jp", "attributes": {"name": "A", "nmae": 1}})
    assert error_of(unknown)["field"] == "attributes.nmae"
    misplaced = api.post(MEMBERS, {"attributes": {"email": "a@example.jp", "name": "A"}})
    assert misplaced.status_code == 422
    assert error_of(misplaced)["field"] == "attributes.email"


def test_it_answers_409_when_the_address_is_taken(api, taro):
    response = api.post(MEMBERS, {"email": "taro@EXAMPLE.JP", "attributes": {"name": "X"}})
    assert response.status_code == 409
    error = error_of(response)
    assert error["field"] == "email" and error["member_id"] == taro.pk


def test_schema_errors_name_the_field(api, attrs):
    response = api.post(MEMBERS, {"email": "a@example.jp", "status": "sleeping"})
    assert response.status_code == 422
    assert error_of(response)["field"] == "status"
    assert error_of(api.post(MEMBERS, {"email": 12})).get("field") == "email"


def test_it_gets_a_member(api, taro):
    body = api.get(f"{MEMBERS}/{taro.pk}").json()
    assert body["email"] == "taro@example.jp" and body["attributes"]["name"] == "山田太郎"


def test_another_workspaces_member_is_not_found(api, stranger):
    for response in (api.get(f"{MEMBERS}/{stranger.pk}"),
                     api.patch(f"{MEMBERS}/{stranger.pk}", {"status": "blocked"}),
                     api.delete(f"{MEMBERS}/{stranger.pk}")):
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"
    stranger.refresh_from_db()
    assert stranger.status == "active"


def test_patch_changes_only_what_is_sent(api, taro):
    response = api.patch(f"{MEMBERS}/{taro.pk}", {"attributes": {"plan": "gold"}})
    assert response.status_code == 200, response.content
    taro.refresh_from_db()
    assert taro.attributes == {"name": "山田太郎", "age": 30, "plan": "gold"}
    assert taro.email == "taro@example.jp"
    event = AuditEvent.objects.get(action="member.updated")
    assert event.detail["fields"] == ["plan"]


def test_patch_clears_an_attribute_sent_as_null_and_refuses_clearing_a_required_one(api, taro):
    assert api.patch(f"{MEMBERS}/{taro.pk}", {"attributes": {"age": None}}).status_code == 200
    taro.refresh_from_db()
    assert "age" not in taro.attributes
    refused = api.patch(f"{MEMBERS}/{taro.pk}", {"attributes": {"name": None}})
    assert refused.status_code == 422
    assert error_of(refused)["field"] == "attributes.name"


def test_patch_refuses_removing_the_last_contact(api, workspace, attrs):
    member = Member.objects.create(workspace=workspace, email="only@example.jp",
                                   attributes={"name": "A"})
    response = api.patch(f"{MEMBERS}/{member.pk}", {"email": None})
    assert response.status_code == 422
    assert error_of(response)["field"] == "email"
    member.refresh_from_db()
    assert member.email == "only@example.jp"


def test_patch_answers_409_when_the_new_address_belongs_to_another_member(api, workspace, taro):
    other = Member.objects.create(workspace=workspace, email="hanako@example.jp",
                                  attributes={"name": "花子"})
    response = api.patch(f"{MEMBERS}/{other.pk}", {"email": "taro@example.jp"})
    assert response.status_code == 409
    assert error_of(response)["field"] == "email"


def test_it_deletes_a_member_and_audits_it(api, taro):
    assert api.delete(f"{MEMBERS}/{taro.pk}").status_code == 204
    assert not Member.objects.filter(pk=taro.pk).exists()
    assert AuditEvent.objects.filter(action="member.deleted", target=f"member:{taro.pk}").exists()
    assert api.get(f"{MEMBERS}/{taro.pk}").status_code == 404


def test_lookup_by_email_or_phone_normalizes_first(api, taro):
    assert api.get(f"{MEMBERS}/lookup", {"email": "taro@EXAMPLE.jp"}).json()["id"] == taro.pk
    assert api.get(f"{MEMBERS}/lookup", {"phone": "090-1234-5678"}).json()["id"] == taro.pk
    missing = api.get(f"{MEMBERS}/lookup", {"email": "nobody@example.jp"})
    assert missing.status_code == 404
    bad = api.get(f"{MEMBERS}/lookup", {"phone": "123"})
    assert bad.status_code == 422 and error_of(bad)["field"] == "phone"
    both = api.get(f"{MEMBERS}/lookup", {"email": "taro@example.jp", "phone": "09012345678"})
    assert both.status_code == 422


def test_lookup_never_finds_another_workspaces_member(api, stranger):
    assert api.get(f"{MEMBERS}/lookup", {"email": stranger.email}).status_code == 404


def test_a_key_without_view_pii_sees_masked_data(analyst_api, taro):
    body = analyst_api.get(f"{MEMBERS}/{taro.pk}").json()
    assert body["masked"] is True
    assert body["email"] == "ta***@example.jp"
    assert body["phone"].startswith("+81") and body["phone"].endswith("78")
    assert "1234" not in body["phone"]
    assert body["attributes"] == {"name": "***", "age": 30}
    listed = analyst_api.get(MEMBERS).json()["items"][0]
    assert listed["email"] == "ta***@example.jp" and listed["attributes"]["name"] == "***"


def test_a_key_without_view_pii_may_not_look_up_by_contact(analyst_api, taro):
    for params in ({"email": "taro@example.jp"}, {"phone": "09012345678"}):
        response = analyst_api.get(f"{MEMBERS}/lookup", params)
        assert response.status_code == 403
        error = error_of(response)
        assert error["code"] == "pii_not_allowed" and "members.view_pii" in error["message"]


def test_masked_writes_answer_masked_too(masked_editor_api, attrs):
    response = masked_editor_api.post(MEMBERS, {"email": "hanako@example.jp",
                                                "attributes": {"name": "花子"}})
    assert response.status_code == 201
    assert response.json()["email"] == "ha***@example.jp"
    assert response.json()["attributes"]["name"] == "***"


def test_it_filters_by_status_list_and_update_time(api, workspace, taro):
    hanako = Member.objects.create(workspace=workspace, email="hanako@example.jp",
                                   status="unsubscribed",
                                   updated_at=timezone.now() - dt.timedelta(days=3))
    vip = MemberList.objects.create(workspace=workspace, name="VIP")
    ListMembership.objects.create(member_list=vip, member=hanako)

    def ids(**params):
        response = api.get(MEMBERS, params)
        assert response.status_code == 200, response.content
        return [m["id"] for m in response.json()["items"]]

    assert ids(status="unsubscribed") == [hanako.pk]
    assert ids(list_id=vip.pk) == [hanako.pk]
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    assert ids(updated_since=since) == [taro.pk]
    assert api.get(MEMBERS, {"status": "sleeping"}).status_code == 422


def test_filtering_by_another_workspaces_list_is_not_found(api, other_workspace, taro):
    theirs = MemberList.objects.create(workspace=other_workspace, name="VIP")
    assert api.get(MEMBERS, {"list_id": theirs.pk}).status_code == 404


def test_ids_beyond_64_bits_are_refused_not_crashed_on(api, db):
    assert api.get(f"{MEMBERS}/{2**70}").status_code == 422
    assert api.get(MEMBERS, {"list_id": 2**70}).status_code == 422
