"""Incident notices by API: a monitoring system learns the types' fields, sends an outage
notice to exactly the affected merchants, follows it with a recovery, and is told field by
field what it got wrong."""

import asyncio

import pytest

from tayori.accounts.permissions import BUILTIN_ROLES
from tayori.api.tests.helpers import Api, error_of
from tayori.delivery.engine import Worker
from tayori.delivery.models import Delivery, OutboxMessage
from tayori.incidents.models import Incident, Notice, NoticeType
from tayori.incidents.starter import create_starter
from tayori.incidents.tests import conftest as incident_fixtures
from tayori.incidents.tests.conftest import AFFECTED, CHOSEN

# The incident tests' workspace: the starter types, and merchants using services.
starter = incident_fixtures.starter
merchants = incident_fixtures.merchants

OUTAGE = {"type": "障害発生", "fields": {"services": CHOSEN,
                                        "started_at": "2026-11-30T03:12:00+09:00",
                                        "impact": "全面停止"}}


@pytest.fixture
def monitor(client, issue_key):
    """What a monitoring system's key carries: send notices, read them back."""
    return Api(client, issue_key(["notices.send", "deliveries.view"])[1])


def test_the_types_say_which_fields_they_take(monitor, starter):
    body = monitor.get("/api/v1/notice-types").json()
    assert [t["name"] for t in body["items"]] == ["障害発生", "障害復旧", "事後報告",
                                                  "メンテナンス告知"]
    outage = body["items"][0]
    assert [(f["key"], f["kind"], f["required"]) for f in outage["fields"]] == [
        ("services", "services", True), ("started_at", "datetime", True),
        ("impact", "choice", True), ("details", "textarea", False),
        ("next_update", "text", False)]
    assert outage["fields"][2]["choices"][0] == "全面停止"
    assert [s["code"] for s in outage["services"]] == ["payment_api", "card", "konbini",
                                                       "transfer", "dashboard"]
    assert body["items"][1]["follows_id"] == outage["id"]
    assert body["items"][2]["requires_second_confirmation"] is True


def test_an_outage_notice_reaches_exactly_the_affected_merchants(monitor, merchants,
                                                                 transactional_db):
    response = monitor.post("/api/v1/notices", OUTAGE)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "sent" and body["via"] == "api"
    assert body["recipients"] == 3 and body["skipped"] == {"bounced": 1, "suppressed": 1}
    assert body["fields"]["started_at"] == "2026-11-29T18:12:00+00:00"
    assert body["subject"] == "【障害発生】決済API、送金APIに障害が発生しています"
    asyncio.run(Worker(name="api-notices").drain())
    assert {m.recipient for m in OutboxMessage.objects.all()} == AFFECTED
    read = monitor.get(f"/api/v1/notices/{body['id']}").json()
    assert read["progress"]["sent"] == 3 and read["progress"]["skipped"] == 2
    assert Delivery.objects.get(address="e@merchant.example.jp").status == "sent"


def test_a_recovery_joins_the_incident_and_takes_its_fields(monitor, merchants):
    outage = monitor.post("/api/v1/notices", OUTAGE).json()
    response = monitor.post("/api/v1/notices", {
        "type": "障害復旧", "incident_id": outage["incident_id"],
        "fields": {"recovered_at": "2026-11-30T04:40"}})  # naive: the workspace's zone
    assert response.status_code == 201, response.content
    recovery = response.json()
    assert recovery["incident_id"] == outage["incident_id"]
    assert recovery["fields"] == {"services": CHOSEN, "started_at": "2026-11-29T18:12:00+00:00",
                                  "recovered_at": "2026-11-29T19:40:00+00:00"}
    assert recovery["recipients"] == 3
    listed = monitor.get("/api/v1/notices", {"incident_id": outage["incident_id"]}).json()
    assert [n["type"] for n in listed["items"]] == ["障害発生", "障害復旧"]


def test_a_type_may_be_named_by_id(monitor, starter, merchants):
    response = monitor.post("/api/v1/notices", {**OUTAGE, "type": starter["障害発生"].pk})
    assert response.status_code == 201


def test_a_dry_run_sends_nothing(monitor, merchants):
    response = monitor.post("/api/v1/notices", {**OUTAGE, "dry_run": True})
    assert response.status_code == 200
    assert response.json()["recipients"] == 3 and response.json()["dry_run"] is True
    assert Notice.objects.count() == 0 and Incident.objects.count() == 0


def test_a_type_needing_a_second_operator_waits(monitor, merchants):
    response = monitor.post("/api/v1/notices", {"type": "事後報告", "fields": {
        "services": ["transfer"], "started_at": "2026-11-30T03:12",
        "recovered_at": "2026-11-30T04:40", "cause": "DB", "measures": "冗長化"}})
    assert response.status_code == 201
    assert response.json()["status"] == "awaiting_confirmation"
    assert response.json()["source_id"] is None


@pytest.mark.parametrize("fields,field", [
    ({"services": ["payment_api", "nope"]}, "fields.services"),
    ({"services": []}, "fields.services"),
    ({"services": "card", "started_at": None}, "fields.started_at"),
    ({"started_at": "30/11/2026 3:12"}, "fields.started_at"),
    ({"started_at": 1764440000}, "fields.started_at"),
    ({"impact": "大変"}, "fields.impact"),
    ({"colour": "red"}, "fields.colour"),
])
def test_each_bad_field_is_a_422_naming_it(monitor, merchants, fields, field):
    response = monitor.post("/api/v1/notices", {**OUTAGE, "fields": {**OUTAGE["fields"],
                                                                     **fields}})
    assert response.status_code == 422, response.content
    error = error_of(response)
    assert error["field"] == field and [e["field"] for e in error["errors"]] == [field]
    assert Notice.objects.count() == 0


def test_every_problem_is_listed_at_once(monitor, merchants):
    response = monitor.post("/api/v1/notices", {"type": "障害発生", "fields": {
        "services": ["nope"], "impact": "?"}})
    fields = sorted(e["field"] for e in error_of(response)["errors"])
    assert fields == ["fields.impact", "fields.services", "fields.started_at"]


def test_a_notice_nobody_would_receive_is_refused(monitor, starter):
    response = monitor.post("/api/v1/notices", OUTAGE)  # no merchants yet
    assert response.status_code == 422
    assert error_of(response)["field"] == "fields.services"
    assert Notice.objects.count() == 0 and Incident.objects.count() == 0


def test_another_workspace_s_type_and_incident_are_not_found(monitor, starter, merchants,
                                                             other_workspace):
    create_starter(other_workspace, from_address="x@other.example")
    theirs = NoticeType.objects.get(workspace=other_workspace, name="障害発生")
    assert monitor.post("/api/v1/notices", {**OUTAGE, "type": theirs.pk}).status_code == 404
    assert monitor.post("/api/v1/notices", {**OUTAGE, "type": "ない"}).status_code == 404
    incident = Incident.objects.create(workspace=other_workspace, title="theirs")
    response = monitor.post("/api/v1/notices", {**OUTAGE, "incident_id": incident.pk})
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert Notice.objects.count() == 0


def test_sending_needs_the_notice_permission(client, issue_key, merchants):
    analyst = Api(client, issue_key(BUILTIN_ROLES["Analyst"])[1])
    response = analyst.post("/api/v1/notices", OUTAGE)
    assert response.status_code == 403 and error_of(response)["code"] == "permission_denied"
    sender_only = Api(client, issue_key(["notices.send"])[1])
    assert sender_only.get("/api/v1/notices").status_code == 403
    assert sender_only.post("/api/v1/notices", OUTAGE).status_code == 201
    assert Notice.objects.count() == 1


def test_a_retried_notice_is_sent_once(monitor, merchants):
    """The monitoring system timed out and posts again with the same Idempotency-Key."""
    first = monitor.post("/api/v1/notices", OUTAGE, HTTP_IDEMPOTENCY_KEY="incident-0312")
    again = monitor.post("/api/v1/notices", OUTAGE, HTTP_IDEMPOTENCY_KEY="incident-0312")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Notice.objects.count() == 1
    assert Delivery.objects.filter(source__kind="notice").count() == 5
