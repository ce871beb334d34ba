"""Webhook endpoints by API: the secret shown on creation and rotation only, validation like the
UI's, enabling and disabling, an endpoint's events and attempts, replaying an event."""

import pytest

from tayori.accounts.models import AuditEvent
from tayori.accounts.permissions import BUILTIN_ROLES
from tayori.api.tests.helpers import Api, error_of
from tayori.webhooks import events, signing
from tayori.webhooks.models import Attempt, Endpoint, WebhookEvent

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.jp/tayori"


@pytest.fixture
def created(api):
    response = api.post("/api/v1/webhooks", {"url": URL, "description": "注文システム",
                                             "events": ["message.sent", "message.failed"]})
    assert response.status_code == 201, response.content
    return response.json()


def test_creating_returns_the_secret_once(api, created, workspace):
    assert created["secret"].startswith(signing.PREFIX)
    assert (created["url"], created["events"], created["active"]) == (
        URL, ["message.sent", "message.failed"], True)
    fetched = api.get(f"/api/v1/webhooks/{created['id']}").json()
    assert "secret" not in fetched and fetched["description"] == "注文システム"
    assert "secret" not in api.get("/api/v1/webhooks").json()["items"][0]
    assert AuditEvent.objects.get().action == "webhook.endpoint_created"
    assert Endpoint.objects.get().workspace == workspace


@pytest.mark.parametrize("body,field", [
    ({"url": "ftp://example.jp/x", "events": ["message.sent"]}, "url"),
    ({"url": "https://a:b@example.jp/x", "events": ["message.sent"]}, "url"),
    ({"url": "http://127.0.0.1/x", "events": ["message.sent"]}, "url"),
    ({"url": URL, "events": []}, "events"),
    ({"url": URL, "events": ["message.teleported"]}, "events"),
    ({"url": URL}, "events"),
])
def test_bad_urls_and_events_are_refused(api, settings, body, field):
    settings.WEBHOOK_PRIVATE_NETWORKS = False
    response = api.post("/api/v1/webhooks", body)
    assert response.status_code == 422
    assert field in str(error_of(response)["field"])
    assert not Endpoint.objects.exists()


def test_an_endpoint_is_changed_disabled_and_enabled(api, created):
    path = f"/api/v1/webhooks/{created['id']}"
    changed = api.patch(path, {"events": ["message.opened"], "description": "CRM"}).json()
    assert (changed["events"], changed["description"]) == (["message.opened"], "CRM")
    disabled = api.patch(path, {"active": False}).json()
    assert not disabled["active"] and "integration" in disabled["disabled_reason"]
    assert api.patch(path, {"active": True}).json()["active"]
    assert api.patch(path, {"url": None}).status_code == 422
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "webhook.endpoint_created", "webhook.endpoint_updated", "webhook.endpoint_disabled",
        "webhook.endpoint_enabled"]


def test_rotating_returns_a_new_secret_and_the_overlap(api, created):
    rotated = api.post(f"/api/v1/webhooks/{created['id']}/rotate-secret").json()
    assert rotated["secret"] != created["secret"] and rotated["previous_valid_until"]


def test_events_and_attempts_are_listed_and_an_event_replayed(api, created, workspace):
    events.publish(workspace.pk, "message.sent", [{"n": 1}])
    event = WebhookEvent.objects.get()
    WebhookEvent.objects.filter(pk=event.pk).update(status="gave_up", attempts=10)
    Attempt.objects.create(workspace=workspace, endpoint_id=created["id"], event=event,
                           number=10, status_code=500, error="HTTP 500", response="oops")
    path = f"/api/v1/webhooks/{created['id']}"
    [listed] = api.get(f"{path}/events", {"status": "gave_up"}).json()["items"]
    assert (listed["event_id"], listed["type"], listed["payload"]["data"]) == (
        event.uid, "message.sent", {"n": 1})
    assert api.get(f"{path}/events", {"status": "delivered"}).json()["items"] == []
    [attempt] = api.get(f"{path}/attempts").json()["items"]
    assert (attempt["event_id"], attempt["status_code"], attempt["response"]) == (
        event.pk, 500, "oops")
    replayed = api.post(f"{path}/events/{event.pk}/replay")
    assert replayed.status_code == 200 and replayed.json()["status"] == "pending"
    assert AuditEvent.objects.filter(action="webhook.event_replayed").exists()


def test_an_event_is_replayed_only_through_its_own_endpoint(api, created, workspace):
    other = api.post("/api/v1/webhooks", {"url": URL, "events": ["message.sent"]}).json()
    events.publish(workspace.pk, "message.sent", [{}])
    event = WebhookEvent.objects.get(endpoint_id=created["id"])
    assert api.post(f"/api/v1/webhooks/{other['id']}/events/{event.pk}/replay").status_code == 404


def test_deleting_an_endpoint(api, created):
    assert api.delete(f"/api/v1/webhooks/{created['id']}").status_code == 204
    assert api.get(f"/api/v1/webhooks/{created['id']}").status_code == 404


def test_keys_without_the_permission_are_refused(client, issue_key, created):
    analyst = Api(client, issue_key(BUILTIN_ROLES["Analyst"])[1])
    response = analyst.get("/api/v1/webhooks")
    assert response.status_code == 403 and error_of(response)["code"] == "permission_denied"


def test_another_workspaces_endpoints_are_not_found(api, outsider_api, created):
    assert outsider_api.get(f"/api/v1/webhooks/{created['id']}").status_code == 404
    assert outsider_api.get("/api/v1/webhooks").json()["items"] == []


def test_keys_without_personal_data_see_addresses_masked(client, issue_key, created, workspace):
    events.publish(workspace.pk, "message.sent", [{"address": "taro@example.jp"}])
    integrator = Api(client, issue_key({"webhooks.manage"})[1])
    [item] = integrator.get(f"/api/v1/webhooks/{created['id']}/events").json()["items"]
    assert item["payload"]["data"]["address"].startswith("ta***")
    [full] = Api(client, issue_key()[1]).get(
        f"/api/v1/webhooks/{created['id']}/events").json()["items"]
    assert full["payload"]["data"]["address"] == "taro@example.jp"


def test_choosing_where_events_go_needs_the_pii_right(client, issue_key, created):
    """Events carry members' addresses: a key that sees them masked may not route them."""
    _key, raw = issue_key({"webhooks.manage"})
    masked = Api(client, raw)
    refused = masked.post("/api/v1/webhooks", {"url": URL, "events": ["message.sent"]})
    assert refused.status_code == 403 and error_of(refused)["field"] == "url"
    moved = masked.patch(f"/api/v1/webhooks/{created['id']}", {"url": URL + "/elsewhere"})
    assert moved.status_code == 403
    assert masked.patch(f"/api/v1/webhooks/{created['id']}",
                        {"description": "見るだけ"}).status_code == 200
    assert Endpoint.objects.get().url == URL
