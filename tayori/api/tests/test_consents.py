"""Consent records over the API: record, list, withdraw; evidence is kept, never deleted."""

import pytest

from tayori.accounts.models import AuditEvent
from tayori.api.tests.helpers import error_of
from tayori.members.models import ConsentRecord, Member


@pytest.fixture
def member(workspace):
    return Member.objects.create(workspace=workspace, email="taro@example.jp")


def consents(member) -> str:
    return f"/api/v1/members/{member.pk}/consents"


def test_it_records_and_lists_consent(api, member):
    response = api.post(consents(member), {
        "channel": "email", "given_at": "2024-04-01T10:00:00+09:00", "method": "web form",
        "source": "https://example.jp/signup", "wording_version": "2024-04",
        "ip": "203.0.113.7", "user_agent": "Mozilla/5.0"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["active"] is True and body["ip"] == "203.0.113.7"
    assert body["given_at"] == "2024-04-01T10:00:00+09:00"
    items = api.get(consents(member)).json()["items"]
    assert [c["id"] for c in items] == [body["id"]]
    assert AuditEvent.objects.filter(action="consent.recorded", target=f"member:{member.pk}")\
        .exists()


def test_it_refuses_bad_evidence(api, member):
    future = api.post(consents(member), {"method": "form", "given_at": "2999-01-01T00:00:00Z"})
    assert future.status_code == 422 and error_of(future)["field"] == "given_at"
    no_method = api.post(consents(member), {"method": "  "})
    assert no_method.status_code == 422 and error_of(no_method)["field"] == "method"
    bad_ip = api.post(consents(member), {"method": "form", "ip": "999.1.1.1"})
    assert bad_ip.status_code == 422 and error_of(bad_ip)["field"] == "ip"
    assert not ConsentRecord.objects.exists()


def test_it_withdraws_a_consent_once(api, member):
    created = api.post(consents(member), {"method": "web form"}).json()
    path = f"{consents(member)}/{created['id']}/withdraw"
    withdrawn = api.post(path, {"method": "unsubscribe link"})
    assert withdrawn.status_code == 200
    assert withdrawn.json()["active"] is False
    assert withdrawn.json()["withdrawn_method"] == "unsubscribe link"
    again = api.post(path, {"method": "phone"})
    assert again.status_code == 409
    record = ConsentRecord.objects.get()
    assert record.withdrawn_method == "unsubscribe link" and record.method == "web form"
    assert AuditEvent.objects.filter(action="consent.withdrawn").count() == 1


def test_ip_and_user_agent_are_masked_without_pii(api, analyst_api, member):
    api.post(consents(member), {"method": "form", "ip": "203.0.113.7", "user_agent": "UA"})
    item = analyst_api.get(consents(member)).json()["items"][0]
    assert (item["ip"], item["user_agent"]) == ("***", "***")


def test_another_workspaces_member_and_consent_are_not_found(api, member, other_workspace):
    theirs = Member.objects.create(workspace=other_workspace, email="x@example.jp")
    record = ConsentRecord.objects.create(workspace=other_workspace, member=theirs, method="form")
    assert api.get(consents(theirs)).status_code == 404
    assert api.post(consents(theirs), {"method": "form"}).status_code == 404
    assert api.post(f"{consents(theirs)}/{record.pk}/withdraw", {}).status_code == 404
    # Nor through one's own member's path.
    assert api.post(f"{consents(member)}/{record.pk}/withdraw", {}).status_code == 404
    record.refresh_from_db()
    assert record.withdrawn_at is None


def test_recording_consent_needs_members_edit(analyst_api, member):
    assert analyst_api.post(consents(member), {"method": "form"}).status_code == 403
    assert analyst_api.get(consents(member)).status_code == 200


def test_times_are_given_in_the_workspaces_zone(api, member, workspace):
    api.post(consents(member), {"method": "form", "given_at": "2024-04-01T00:00:00Z"})
    assert api.get(consents(member)).json()["items"][0]["given_at"] == "2024-04-01T09:00:00+09:00"
    workspace.time_zone = "UTC"
    workspace.save()
    assert api.get(consents(member)).json()["items"][0]["given_at"] == "2024-04-01T00:00:00Z"
