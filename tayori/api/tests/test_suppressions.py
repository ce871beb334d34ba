"""Suppressions over the API: normalized values, masking, search refused without PII."""

import datetime as dt

from django.utils import timezone

from tayori.accounts.models import AuditEvent
from tayori.api.tests.helpers import error_of
from tayori.members.models import Suppression

SUPPRESSIONS = "/api/v1/suppressions"


def test_it_suppresses_a_normalized_address_and_number(api, workspace):
    email = api.post(SUPPRESSIONS, {"value": "Stop@Example.JP", "reason": "苦情"})
    assert email.status_code == 201, email.content
    assert email.json()["value"] == "Stop@example.jp"
    phone = api.post(SUPPRESSIONS, {"kind": "phone", "value": "０９０-１２３４-５６７８",
                                    "reason": "本人の申し出"})
    assert phone.json()["value"] == "+819012345678"
    assert set(Suppression.objects.values_list("value", flat=True)) == {"Stop@example.jp",
                                                                        "+819012345678"}
    assert AuditEvent.objects.filter(action="suppression.added").count() == 2


def test_it_refuses_a_bad_value_and_a_duplicate(api, workspace):
    bad = api.post(SUPPRESSIONS, {"kind": "phone", "value": "12", "reason": "x"})
    assert bad.status_code == 422 and error_of(bad)["field"] == "value"
    api.post(SUPPRESSIONS, {"value": "a@example.jp", "reason": "x"})
    again = api.post(SUPPRESSIONS, {"value": "a@EXAMPLE.jp", "reason": "y"})
    assert again.status_code == 409
    assert Suppression.objects.count() == 1


def test_an_expiry_must_be_in_the_future(api, db):
    past = (timezone.now() - dt.timedelta(days=1)).isoformat()
    response = api.post(SUPPRESSIONS, {"value": "a@example.jp", "reason": "x", "expires_at": past})
    assert response.status_code == 422 and error_of(response)["field"] == "expires_at"
    future = api.post(SUPPRESSIONS, {"value": "a@example.jp", "reason": "x",
                                     "expires_at": "2099-01-01T00:00:00"})
    assert future.status_code == 201
    # Without an offset the time is read in the workspace's zone (JST).
    assert Suppression.objects.get().expires_at == dt.datetime(2098, 12, 31, 15, tzinfo=dt.UTC)


def test_values_are_masked_and_search_refused_without_pii(api, analyst_api, workspace):
    api.post(SUPPRESSIONS, {"value": "stop@example.jp", "reason": "x"})
    item = analyst_api.get(SUPPRESSIONS).json()["items"][0]
    assert item["value"] == "st***@example.jp" and item["masked"] is True
    refused = analyst_api.get(SUPPRESSIONS, {"value": "stop@example.jp"})
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "pii_not_allowed"


def test_it_finds_a_suppression_by_its_value(api, workspace):
    api.post(SUPPRESSIONS, {"value": "stop@example.jp", "reason": "x"})
    api.post(SUPPRESSIONS, {"kind": "phone", "value": "09012345678", "reason": "x"})
    assert [s["value"] for s in api.get(SUPPRESSIONS, {"value": "090-1234-5678"}).json()[
        "items"]] == ["+819012345678"]
    assert [s["kind"] for s in api.get(SUPPRESSIONS, {"kind": "email"}).json()["items"]] == [
        "email"]
    assert api.get(SUPPRESSIONS, {"value": "neither"}).status_code == 422


def test_it_lifts_a_suppression(api, workspace):
    created = api.post(SUPPRESSIONS, {"value": "stop@example.jp", "reason": "x"}).json()
    assert api.delete(f"{SUPPRESSIONS}/{created['id']}").status_code == 204
    assert not Suppression.objects.exists()
    assert AuditEvent.objects.filter(action="suppression.deleted").exists()


def test_another_workspaces_suppression_is_not_found(api, other_workspace):
    theirs = Suppression.objects.create(workspace=other_workspace, value="x@example.jp",
                                        reason="x")
    assert api.get(f"{SUPPRESSIONS}/{theirs.pk}").status_code == 404
    assert api.delete(f"{SUPPRESSIONS}/{theirs.pk}").status_code == 404
    assert Suppression.objects.filter(pk=theirs.pk).exists()
    assert api.get(SUPPRESSIONS).json()["items"] == []


def test_suppressing_needs_members_edit(analyst_api, db):
    response = analyst_api.post(SUPPRESSIONS, {"value": "a@example.jp", "reason": "x"})
    assert response.status_code == 403
    assert not Suppression.objects.exists()
