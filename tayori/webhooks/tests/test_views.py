"""The Webhooks pages: adding and editing endpoints, revealing and rotating the secret, the test
button, enabling and disabling, the attempts log and replays — each audited, and closed to roles
without webhooks.manage."""

import datetime as dt

import pytest
from django.utils import timezone

from conftest import make_operator
from tayori.accounts.models import AuditEvent, Role
from tayori.lib import crypto
from tayori.webhooks import dispatch, events
from tayori.webhooks.models import Attempt, Endpoint, WebhookEvent

pytestmark = pytest.mark.django_db


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_an_endpoint_is_added_with_its_events_and_audited(owner_client, workspace, receiver):
    page = owner_client.get("/mail/webhooks/new/")
    assert page.status_code == 200 and "member.unsubscribed" in page.content.decode()
    response = owner_client.post("/mail/webhooks/new/", {
        "url": receiver.url, "description": "注文システム",
        "events": ["message.sent", "message.failed"]})
    endpoint = Endpoint.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/mail/webhooks/{endpoint.pk}/"
    assert (endpoint.workspace, endpoint.events, endpoint.active) == (
        workspace, ["message.sent", "message.failed"], True)
    assert crypto.decrypt(endpoint.secret).startswith("whsec_")
    assert "whsec_" not in endpoint.secret  # sealed at rest
    assert actions() == ["webhook.endpoint_created"]
    listing = owner_client.get("/mail/webhooks/").content.decode()
    assert "注文システム" in listing and "/mail/webhooks/" in listing


@pytest.mark.parametrize("url,events_,field", [
    ("ftp://example.jp/x", ["message.sent"], "url"),
    ("https://user:pw@example.jp/x", ["message.sent"], "url"),
    ("not a url", ["message.sent"], "url"),
    ("https://example.jp/x", [], "events"),
    ("https://example.jp/x", ["message.teleported"], "events"),
])
def test_bad_urls_and_events_are_refused(owner_client, url, events_, field):
    response = owner_client.post("/mail/webhooks/new/", {"url": url, "events": events_})
    assert response.status_code == 400
    assert list(response.context["form"].errors) == [field]
    assert not Endpoint.objects.exists()


def test_the_secret_is_revealed_on_request_and_audited(owner_client, endpoint_of):
    endpoint, secret = endpoint_of()
    page = owner_client.get(f"/mail/webhooks/{endpoint.pk}/").content.decode()
    assert secret not in page
    revealed = owner_client.get(f"/mail/webhooks/{endpoint.pk}/secret/",
                                HTTP_HX_REQUEST="true")
    assert secret in revealed.content.decode()
    assert "no-cache" in revealed["Cache-Control"]
    assert actions() == ["webhook.secret_viewed"]


def test_rotating_makes_a_new_secret(owner_client, endpoint_of):
    endpoint, secret = endpoint_of()
    assert owner_client.post(f"/mail/webhooks/{endpoint.pk}/rotate/").status_code == 302
    endpoint.refresh_from_db()
    assert crypto.decrypt(endpoint.secret) != secret
    assert crypto.decrypt(endpoint.previous_secret) == secret
    assert actions() == ["webhook.secret_rotated"]


def test_the_test_button_posts_a_ping_and_says_what_came_back(owner_client, endpoint_of,
                                                             receiver):
    endpoint, _secret = endpoint_of()
    response = owner_client.post(f"/mail/webhooks/{endpoint.pk}/test/", follow=True)
    assert "HTTP 200" in response.content.decode()
    assert receiver.requests[0].headers["Tayori-Event-Type"] == "ping"
    receiver.answer(500)
    response = owner_client.post(f"/mail/webhooks/{endpoint.pk}/test/", follow=True)
    assert "HTTP 500" in response.content.decode()
    assert actions() == ["webhook.test_sent", "webhook.test_sent"]


def test_editing_changes_url_and_events(owner_client, endpoint_of):
    endpoint, _secret = endpoint_of()
    response = owner_client.post(f"/mail/webhooks/{endpoint.pk}/edit/", {
        "url": "https://hooks.example.jp/tayori", "events": ["message.opened"]})
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.events) == ("https://hooks.example.jp/tayori",
                                              ["message.opened"])
    assert AuditEvent.objects.get().detail["changed"] == ["url", "description", "events"]


def test_disabling_and_enabling_from_the_page(owner_client, endpoint_of, workspace):
    endpoint, _secret = endpoint_of()
    events.publish(workspace.pk, "message.sent", [{}])
    owner_client.post(f"/mail/webhooks/{endpoint.pk}/active/", {"active": "0"})
    endpoint.refresh_from_db()
    assert not endpoint.active and "owner@sample.jp" in endpoint.disabled_reason
    assert WebhookEvent.objects.get().status == "gave_up"
    assert endpoint.disabled_reason in owner_client.get("/mail/webhooks/").content.decode()
    owner_client.post(f"/mail/webhooks/{endpoint.pk}/active/", {"active": "1"})
    endpoint.refresh_from_db()
    assert endpoint.active
    assert actions() == ["webhook.endpoint_disabled", "webhook.endpoint_enabled"]


def test_the_log_shows_attempts_and_events_can_be_replayed(owner_client, endpoint_of,
                                                          workspace, receiver):
    endpoint, _secret = endpoint_of()
    receiver.answer(500)
    events.publish(workspace.pk, "message.sent", [{}])
    event = WebhookEvent.objects.get()
    dispatch.deliver(now=event.created_at)
    page = owner_client.get(f"/mail/webhooks/{endpoint.pk}/").content.decode()
    assert "answer 500" in page and event.uid in page and "HTTP 500" in page
    detail = owner_client.get(f"/mail/webhooks/events/{event.pk}/").content.decode()
    assert "&quot;message.sent&quot;" in detail or '"message.sent"' in detail
    assert owner_client.post(f"/mail/webhooks/events/{event.pk}/replay/").status_code == 302
    event.refresh_from_db()
    assert event.status == "pending" and event.next_attempt_at <= timezone.now()
    dispatch.deliver()
    assert Attempt.objects.filter(ok=True).count() == 1
    assert actions() == ["webhook.event_replayed"]


def test_replaying_failed_events_since_a_day(owner_client, endpoint_of, workspace):
    endpoint, _secret = endpoint_of()
    events.publish(workspace.pk, "message.sent", [{}, {}])
    WebhookEvent.objects.update(status="gave_up")
    today = timezone.localdate(timezone=dt.timezone(dt.timedelta(hours=9))).isoformat()
    owner_client.post(f"/mail/webhooks/{endpoint.pk}/replay/", {"since": today})
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"pending"}
    assert AuditEvent.objects.get().detail["count"] == 2


def test_deleting_an_endpoint_takes_its_log(owner_client, endpoint_of, workspace):
    endpoint, _secret = endpoint_of()
    events.publish(workspace.pk, "message.sent", [{}])
    assert owner_client.post(f"/mail/webhooks/{endpoint.pk}/delete/")["Location"] == \
        "/mail/webhooks/"
    assert not Endpoint.objects.exists() and not WebhookEvent.objects.exists()
    assert actions() == ["webhook.endpoint_deleted"]


def test_roles_without_the_permission_are_refused(analyst_client, endpoint_of):
    endpoint, _secret = endpoint_of()
    assert analyst_client.get("/mail/webhooks/").status_code == 403
    assert analyst_client.get(f"/mail/webhooks/{endpoint.pk}/secret/").status_code == 403
    assert analyst_client.post(f"/mail/webhooks/{endpoint.pk}/rotate/").status_code == 403


def test_the_sidebar_links_to_webhooks_for_those_who_manage_them(owner_client):
    assert 'href="/mail/webhooks/"' in owner_client.get("/").content.decode()


def test_the_sidebar_has_no_webhooks_link_for_an_analyst(analyst_client):
    assert 'href="/mail/webhooks/"' not in analyst_client.get("/").content.decode()


def test_a_role_without_personal_data_sees_addresses_masked(client, workspace, endpoint_of):
    Role.objects.create(workspace=workspace, name="Integrator", permissions=["webhooks.manage"])
    client.force_login(make_operator(workspace, "dev@sample.jp", "Integrator"))
    endpoint_of(events=["message.sent"])
    events.publish(workspace.pk, "message.sent", [{"address": "taro@example.jp"}])
    page = client.get(f"/mail/webhooks/events/{WebhookEvent.objects.get().pk}/")
    assert page.status_code == 200
    assert "taro@example.jp" not in page.content.decode() and "ta***" in page.content.decode()


def test_a_role_without_personal_data_may_not_choose_where_events_go(client, workspace,
                                                                     endpoint_of):
    Role.objects.create(workspace=workspace, name="Integrator", permissions=["webhooks.manage"])
    client.force_login(make_operator(workspace, "dev@sample.jp", "Integrator"))
    refused = client.post("/mail/webhooks/new/", {"url": "https://hooks.example.jp/a",
                                                  "events": ["message.sent"]})
    assert refused.status_code == 400 and "個人情報の閲覧権限" in refused.content.decode()
    endpoint, _secret = endpoint_of(events=["message.sent"])
    moved = client.post(f"/mail/webhooks/{endpoint.pk}/edit/", {
        "url": "https://elsewhere.example.jp/", "events": ["message.sent"]})
    assert moved.status_code == 400
    assert Endpoint.objects.get().url == endpoint.url
