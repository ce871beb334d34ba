"""API keys: who may call, from where, how often, and what the call records."""

import datetime as dt

import pytest
from django.utils import timezone

from tayori.accounts.models import ApiKey
from tayori.api.tests.helpers import Api, error_of
from tayori.members.models import Member

MEMBERS = "/api/v1/members"


def test_it_refuses_a_call_without_a_key(client, db):
    response = Api(client, None).get(MEMBERS)
    assert response.status_code == 401
    assert error_of(response)["code"] == "missing_key"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "tyr_abc"])
def test_it_refuses_a_malformed_authorization_header(client, db, header):
    response = client.get(MEMBERS, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert error_of(response)["code"] == "missing_key"


def test_it_refuses_an_unknown_key(client, db):
    response = Api(client, "tyr_not-a-real-key").get(MEMBERS)
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_key"


def test_it_refuses_a_revoked_key(client, issue_key):
    key, raw = issue_key()
    assert Api(client, raw).get(MEMBERS).status_code == 200
    key.revoked_at = timezone.now()
    key.save()
    response = Api(client, raw).get(MEMBERS)
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_key"


def test_it_refuses_a_key_without_the_routes_permission(client, issue_key):
    _key, raw = issue_key(["members.view"])
    response = Api(client, raw).post(MEMBERS, {"email": "a@example.jp"})
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "permission_denied"
    assert "members.edit" in error["message"]
    assert not Member.objects.exists()


def test_it_accepts_calls_only_from_the_keys_networks(client, issue_key):
    _key, raw = issue_key(cidrs=["192.0.2.0/24", "2001:db8::/32"])
    api = Api(client, raw)
    assert api.get(MEMBERS, REMOTE_ADDR="192.0.2.10").status_code == 200
    assert api.get(MEMBERS, REMOTE_ADDR="2001:db8::1").status_code == 200
    refused = api.get(MEMBERS, REMOTE_ADDR="198.51.100.7")
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "ip_not_allowed"


def test_it_reads_the_client_address_from_a_trusted_proxy_only(client, issue_key, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.1/32"]
    _key, raw = issue_key(cidrs=["192.0.2.0/24"])
    api = Api(client, raw)
    via_proxy = api.get(MEMBERS, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.5")
    assert via_proxy.status_code == 200
    forged = api.get(MEMBERS, REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="192.0.2.5")
    assert forged.status_code == 403


def test_a_workspace_can_require_an_ip_rule_on_every_key(client, workspace, issue_key):
    workspace.require_key_ip_rules = True
    workspace.save()
    _key, raw = issue_key()
    response = Api(client, raw).get(MEMBERS)
    assert response.status_code == 403
    assert error_of(response)["code"] == "ip_not_allowed"


def test_it_limits_requests_per_key_per_minute(client, issue_key, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    _key, raw = issue_key()
    api = Api(client, raw)
    answers = [api.get(MEMBERS) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert [r["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0"]
    assert answers[0]["X-RateLimit-Limit"] == "3"
    limited = api.get(MEMBERS)
    assert limited.status_code == 429
    assert error_of(limited)["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert limited["X-RateLimit-Remaining"] == "0"
    # Another key has its own budget.
    assert Api(client, issue_key()[1]).get(MEMBERS).status_code == 200


def test_the_rate_limit_starts_over_in_the_next_minute(client, issue_key, settings, monkeypatch):
    settings.API_RATE_LIMIT_PER_MINUTE = 1
    clock = [1_800_000_000.0]
    monkeypatch.setattr("tayori.api.ratelimit.time.time", lambda: clock[0])
    api = Api(client, issue_key()[1])
    assert api.get(MEMBERS).status_code == 200
    assert api.get(MEMBERS).status_code == 429
    clock[0] += 60
    assert api.get(MEMBERS).status_code == 200


def test_a_zero_rate_limit_means_unlimited(client, issue_key, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    api = Api(client, issue_key()[1])
    assert all(api.get(MEMBERS).status_code == 200 for _ in range(5))


def test_it_records_when_a_key_was_last_used_at_most_once_a_minute(client, issue_key):
    key, raw = issue_key()
    api = Api(client, raw)
    api.get(MEMBERS)
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    api.get(MEMBERS)
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=first - dt.timedelta(minutes=2))
    api.get(MEMBERS)
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first


def test_a_key_only_reaches_its_own_workspace(client, workspace, other_workspace, issue_key):
    mine = Member.objects.create(workspace=workspace, email="mine@example.jp")
    theirs = Member.objects.create(workspace=other_workspace, email="theirs@example.jp")
    api = Api(client, issue_key()[1])
    assert [m["id"] for m in api.get(MEMBERS).json()["items"]] == [mine.pk]
    assert api.get(f"{MEMBERS}/{theirs.pk}").status_code == 404


def test_messages_follow_accept_language_else_the_workspace(client, workspace, issue_key):
    api = Api(client, issue_key(["members.view"])[1])
    english = api.post(MEMBERS, {"email": "a@example.jp"}, HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.8")
    assert english["Content-Language"] == "en"
    assert api.get(MEMBERS)["Content-Language"] == workspace.language
