"""Bulk upsert: up to 10,000 members per call, one result per item, bad items never stop good ones."""

import pytest

from tayori.accounts.models import AuditEvent
from tayori.api.tests.helpers import error_of
from tayori.members.models import Attribute, ConsentRecord, Member, Suppression

BULK = "/api/v1/members/bulk"


@pytest.fixture
def attrs(workspace):
    Attribute.objects.create(workspace=workspace, key="name", label="氏名", pii=True)
    Attribute.objects.create(workspace=workspace, key="age", label="年齢", type="number")
    Attribute.objects.create(workspace=workspace, key="code", label="会員番号", unique=True)


def test_it_stores_the_good_items_and_reports_the_bad_ones_in_order(api, workspace, attrs):
    Member.objects.create(workspace=workspace, email="old@example.jp", attributes={"age": 40})
    response = api.post(BULK, {"items": [
        {"email": "a@example.jp", "attributes": {"name": "A", "age": "20"}},
        {"email": "broken@", "attributes": {"name": "B"}},
        {"email": "old@example.jp", "attributes": {"age": 41}},
        {"email": "c@example.jp", "attributes": {"age": "many", "colour": "red"}},
        {"phone": "090-1111-2222", "attributes": {"status": "x"}},
        {"attributes": {"name": "no contact"}},
    ]})
    assert response.status_code == 200, response.content
    body = response.json()
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4, 5]
    assert [r["status"] for r in results] == ["created", "error", "updated", "error", "error",
                                              "error"]
    assert results[0]["id"] == Member.objects.get(email="a@example.jp").pk
    assert results[0]["errors"] == []
    assert results[1]["id"] is None and results[1]["errors"][0]["field"] == "email"
    assert {e["field"] for e in results[3]["errors"]} == {"attributes.age", "attributes.colour"}
    assert results[4]["errors"][0]["field"] == "attributes.status"
    assert results[5]["errors"][0]["field"] == "email"
    assert body["summary"] == {"created": 1, "updated": 1, "error": 4}
    assert Member.objects.get(email="old@example.jp").attributes == {"age": 41}
    assert Member.objects.count() == 2
    event = AuditEvent.objects.get(action="members.bulk_upsert")
    assert event.detail == {"mode": "upsert", "created": 1, "updated": 1, "error": 4}
    assert event.api_key is not None


def test_sending_the_same_items_again_changes_nothing(api, attrs):
    items = [{"email": f"m{i}@example.jp", "attributes": {"age": i}} for i in range(5)]
    assert api.post(BULK, {"items": items}).json()["summary"] == {"created": 5}
    assert api.post(BULK, {"items": items}).json()["summary"] == {"unchanged": 5}


def test_unique_attributes_clash_inside_the_batch(api, attrs):
    results = api.post(BULK, {"items": [
        {"email": "a@example.jp", "attributes": {"code": "X1"}},
        {"email": "b@example.jp", "attributes": {"code": "X1"}},
    ]}).json()["results"]
    assert [r["status"] for r in results] == ["created", "error"]
    assert results[1]["errors"][0]["field"] == "attributes.code"


def test_modes_add_update_unsubscribe_and_suppress(api, workspace, attrs):
    Member.objects.create(workspace=workspace, email="old@example.jp")
    add = api.post(BULK, {"mode": "add", "items": [{"email": "old@example.jp"},
                                                    {"email": "new@example.jp"}]}).json()
    assert [r["status"] for r in add["results"]] == ["error", "created"]
    update = api.post(BULK, {"mode": "update", "items": [{"email": "nobody@example.jp"}]}).json()
    assert update["results"][0]["status"] == "error"
    unsub = api.post(BULK, {"mode": "unsubscribe", "items": [{"email": "old@example.jp"}]}).json()
    assert unsub["results"][0]["status"] == "unsubscribed"
    assert Member.objects.get(email="old@example.jp").status == "unsubscribed"
    api.post(BULK, {"mode": "suppress", "items": [{"email": "gone@example.jp"}]})
    assert Suppression.objects.filter(workspace=workspace, value="gone@example.jp").exists()
    assert api.post(BULK, {"mode": "merge", "items": [{"email": "a@example.jp"}]}).status_code == 422


def test_it_records_consent_evidence_for_the_members_it_creates(api, workspace, attrs):
    api.post(BULK, {"items": [{"email": "a@example.jp"}],
                    "consent": {"method": "web form", "source": "https://example.jp/signup",
                                "wording_version": "2024-04"}})
    consent = ConsentRecord.objects.get()
    assert consent.member.email == "a@example.jp"
    assert (consent.method, consent.wording_version) == ("web form", "2024-04")


def test_it_takes_ten_thousand_items_in_a_few_statements(api, workspace,
                                                         django_assert_max_num_queries):
    items = [{"email": f"member{i}@example.jp"} for i in range(10_000)]
    with django_assert_max_num_queries(80):
        response = api.post(BULK, {"items": items})
    assert response.status_code == 200
    assert response.json()["summary"] == {"created": 10_000}
    assert Member.objects.filter(workspace=workspace).count() == 10_000


def test_it_refuses_more_than_ten_thousand_items_or_none(api, db):
    too_many = api.post(BULK, {"items": [{"email": "a@example.jp"}] * 10_001})
    assert too_many.status_code == 422
    assert error_of(too_many)["field"] == "items"
    assert api.post(BULK, {"items": []}).status_code == 422
    assert not Member.objects.exists()


def test_bulk_upsert_needs_the_import_permission(analyst_api, db):
    response = analyst_api.post(BULK, {"items": [{"email": "a@example.jp"}]})
    assert response.status_code == 403
    assert not Member.objects.exists()


def test_items_in_another_workspace_are_never_touched(api, workspace, other_workspace):
    theirs = Member.objects.create(workspace=other_workspace, email="a@example.jp",
                                   status="blocked")
    result = api.post(BULK, {"items": [{"email": "a@example.jp", "status": "active"}]}).json()
    assert result["results"][0]["status"] == "created"
    theirs.refresh_from_db()
    assert theirs.status == "blocked"
    assert Member.objects.filter(workspace=workspace, email="a@example.jp").exists()
