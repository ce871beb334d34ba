"""Sending to a local receiver: signed posts, retries with backoff driven by ``now=``, giving up
after three days, resting and auto-disabling a failing endpoint with a notice and an audit
event, timeouts, redirects, refused addresses, replays and claims."""

import datetime as dt
import json

import pytest
from django.utils import timezone

from tayori.accounts.models import AuditEvent
from tayori.delivery.models import Delivery, SenderDomain
from tayori.webhooks import dispatch, endpoints, events, signing
from tayori.webhooks.models import Attempt, Endpoint, WebhookEvent

pytestmark = pytest.mark.django_db

MINUTE, HOUR = dt.timedelta(minutes=1), dt.timedelta(hours=1)


def publish(workspace, n=1, event_type="message.sent"):
    events.publish(workspace.pk, event_type, [{"n": i} for i in range(n)])
    return list(WebhookEvent.objects.filter(workspace=workspace).order_by("id"))


def test_an_event_is_posted_signed_with_its_id_and_type(workspace, receiver, endpoint_of):
    endpoint, secret = endpoint_of()
    [event] = publish(workspace)
    assert dispatch.deliver() == 1
    [request] = receiver.requests
    assert request.path == "/hooks/tayori?source=test"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Tayori-Event-Id"] == event.uid
    assert request.headers["Tayori-Event-Type"] == "message.sent"
    assert request.headers["Tayori-Attempt"] == "1"
    assert signing.verify(secret, request.headers["Tayori-Signature"], request.body)
    payload = json.loads(request.body)
    assert (payload["id"], payload["type"], payload["workspace"]) == (
        event.uid, "message.sent", workspace.pk)
    assert payload["created_at"].endswith("+09:00")  # the workspace's zone, with its offset
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_status_code) == ("delivered", 1, 200)
    [attempt] = Attempt.objects.all()
    assert (attempt.ok, attempt.status_code, attempt.response) == (True, 200, "answer 200")
    assert attempt.finished_at is not None and attempt.duration_ms is not None


def test_a_500_is_retried_after_a_minute_and_then_delivered(workspace, receiver, endpoint_of):
    endpoint, _secret = endpoint_of()
    receiver.answer(500)
    [event] = publish(workspace)
    t0 = event.created_at
    assert dispatch.deliver(now=t0) == 1
    event.refresh_from_db()
    endpoint.refresh_from_db()
    assert (event.status, event.next_attempt_at, event.last_error) == (
        "failed", t0 + MINUTE, "HTTP 500")
    assert (endpoint.consecutive_failures, endpoint.failing_since) == (1, t0)
    assert endpoint.resting_until == t0 + MINUTE
    assert dispatch.deliver(now=t0 + 30 * dt.timedelta(seconds=1)) == 0  # not yet
    assert dispatch.deliver(now=t0 + MINUTE) == 1
    event.refresh_from_db()
    endpoint.refresh_from_db()
    assert (event.status, event.attempts) == ("delivered", 2)
    assert (endpoint.consecutive_failures, endpoint.failing_since, endpoint.resting_until) == (
        0, None, None)
    assert [r.headers["Tayori-Event-Id"] for r in receiver.requests] == [event.uid] * 2
    assert [r.body for r in receiver.requests][0] == receiver.requests[1].body  # same bytes
    assert list(Attempt.objects.order_by("id").values_list("number", "status_code")) == [
        (1, 500), (2, 200)]


def test_an_endpoint_failing_for_three_days_gives_up_and_is_disabled_with_a_notice(
        workspace, owner, teammate, receiver, endpoint_of):
    SenderDomain.objects.create(workspace=workspace, domain="example.jp")
    endpoint, _secret = endpoint_of()
    receiver.answer(*[503] * 20)
    [event] = publish(workspace)
    t0 = now = event.created_at
    tried = []
    while event.status != "gave_up" and len(tried) < 20:
        if dispatch.deliver(now=now):
            tried.append(now - t0)
        event.refresh_from_db()
        endpoint.refresh_from_db()
        now = max(event.next_attempt_at, endpoint.resting_until or now)
    assert tried == [dt.timedelta(0), MINUTE, 6 * MINUTE, 36 * MINUTE, 2 * HOUR + 36 * MINUTE,
                     8 * HOUR + 36 * MINUTE, 20 * HOUR + 36 * MINUTE, 44 * HOUR + 36 * MINUTE,
                     68 * HOUR + 36 * MINUTE, 72 * HOUR]
    assert len(receiver.requests) == 10 and event.attempts == 10
    assert not endpoint.active and endpoint.disabled_at == t0 + 72 * HOUR
    assert "HTTP 503" in endpoint.disabled_reason
    audit = AuditEvent.objects.get(action="webhook.endpoint_disabled")
    assert (audit.workspace, audit.target, audit.detail["automatic"]) == (
        workspace, f"webhook:{endpoint.pk}", True)
    # Only operators who manage webhooks are told (the Analyst is not).
    [notice] = Delivery.objects.filter(source__kind="transactional")
    assert notice.address == owner.email and notice.status == "queued"
    assert notice.source.from_address == "tayori@example.jp"
    assert endpoint.url in notice.data["subject"] + notice.data["text"]
    # Disabled: new events are not even written, and nothing more is sent.
    assert publish(workspace, event_type="message.sent") == [event]
    assert dispatch.deliver(now=now + HOUR) == 0


def test_a_failing_endpoint_rests_and_is_probed_with_one_event_at_a_time(
        workspace, receiver, endpoint_of):
    endpoint, _secret = endpoint_of()
    receiver.answer(500, 500, 500, 500)
    rows = publish(workspace, 3)
    t0 = rows[0].created_at
    assert dispatch.deliver(now=t0) == 3  # healthy: all at once
    assert dispatch.deliver(now=t0 + MINUTE) == 1  # failing: one probe, which fails
    assert sum(WebhookEvent.objects.values_list("attempts", flat=True)) == 4
    assert dispatch.deliver(now=t0 + 2 * MINUTE) == 0  # resting until t0 + 6 min
    assert dispatch.deliver(now=t0 + 6 * MINUTE) == 3  # the probe succeeds, the rest follow
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"delivered"}
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0 and endpoint.last_success_at == t0 + 6 * MINUTE


def test_a_receiver_that_does_not_answer_in_time_is_a_failure(
        workspace, receiver, endpoint_of, monkeypatch):
    monkeypatch.setattr(dispatch, "TIMEOUT", 0.3)
    endpoint_of()
    receiver.answer(200, delay=1.5)
    [event] = publish(workspace)
    dispatch.deliver(now=event.created_at)
    event.refresh_from_db()
    attempt = Attempt.objects.get()
    assert (event.status, attempt.status_code, attempt.ok) == ("failed", None, False)
    assert attempt.error == "no answer within 0.3 seconds"
    assert 250 <= attempt.duration_ms < 1400


def test_redirects_are_not_followed(workspace, receiver, endpoint_of):
    endpoint_of()
    receiver.answer(302)
    [event] = publish(workspace)
    dispatch.deliver(now=event.created_at)
    attempt = Attempt.objects.get()
    assert attempt.status_code == 302 and not attempt.ok
    assert attempt.error.startswith("redirects are not followed")
    assert len(receiver.requests) == 1


def test_private_addresses_are_refused_unless_allowed(workspace, receiver, endpoint_of, settings):
    endpoint_of()
    settings.WEBHOOK_PRIVATE_NETWORKS = False
    [event] = publish(workspace)
    dispatch.deliver(now=event.created_at)
    assert receiver.requests == []
    assert "127.0.0.1 is not a public address" in Attempt.objects.get().error
    with pytest.raises(endpoints.FieldError):
        endpoints.clean_url("http://127.0.0.1:8080/hook")
    with pytest.raises(endpoints.FieldError):
        endpoints.clean_url("http://169.254.169.254/latest/meta-data")
    assert endpoints.clean_url("https://hooks.example.jp/x") == "https://hooks.example.jp/x"


def test_a_replay_sends_the_same_event_again_with_a_fresh_window(
        workspace, receiver, endpoint_of):
    endpoint_of()
    [event] = publish(workspace)
    dispatch.deliver()
    later = timezone.now() + 5 * HOUR
    assert endpoints.replay(event, now=later)
    event.refresh_from_db()
    assert (event.status, event.retry_until) == ("pending", later + events.RETRY_FOR)
    assert dispatch.deliver(now=later) == 1
    first, second = receiver.requests
    # Backoff starts over: the header counts the attempts since the replay.
    assert first.body == second.body and second.headers["Tayori-Attempt"] == "1"


def test_replaying_failed_events_since_a_time_takes_only_those(workspace, receiver, endpoint_of):
    endpoint, _secret = endpoint_of()
    old, new, fine = publish(workspace, 3)
    WebhookEvent.objects.filter(pk=old.pk).update(status="gave_up",
                                                  created_at=old.created_at - 10 * HOUR)
    WebhookEvent.objects.filter(pk=new.pk).update(status="gave_up")
    WebhookEvent.objects.filter(pk=fine.pk).update(status="delivered")
    assert endpoints.replay_failed(endpoint, since=new.created_at - HOUR) == 1
    assert dispatch.deliver() == 1
    assert [r.headers["Tayori-Event-Id"] for r in receiver.requests] == [new.uid]


def test_two_senders_never_claim_the_same_event(workspace, receiver, endpoint_of):
    endpoint_of()
    rows = publish(workspace, 2)
    now = timezone.now()
    first = dispatch.claim("a", 10, now=now)
    assert {e.pk for e in first} == {r.pk for r in rows}
    assert dispatch.claim("b", 10, now=now) == []
    # A sender that died: its claims lapse and the events are taken again, attempts counted.
    again = dispatch.claim("b", 10, now=now + dispatch.LEASE + dt.timedelta(seconds=1))
    assert {e.pk for e in again} == {r.pk for r in rows}
    assert {e.attempts for e in again} == {2}


def test_a_disabled_endpoint_gives_up_its_waiting_events_until_enabled(
        workspace, receiver, endpoint_of):
    endpoint, _secret = endpoint_of()
    [event] = publish(workspace)
    assert endpoints.disable(endpoint, "maintenance")
    assert not endpoints.disable(endpoint, "again")
    event.refresh_from_db()
    assert (event.status, event.last_error) == ("gave_up", "endpoint disabled")
    assert dispatch.deliver() == 0
    assert endpoints.enable(endpoint)
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.disabled_reason == ""
    assert endpoints.replay(event) and dispatch.deliver() == 1


def test_a_test_event_goes_once_whatever_the_endpoint_subscribes_to(
        workspace, receiver, endpoint_of):
    endpoint, secret = endpoint_of(events=["member.unsubscribed"])
    receiver.answer(500)
    ping = events.ping(endpoint)
    assert dispatch.deliver(only=[ping.pk]) == 1
    ping.refresh_from_db()
    assert ping.status == "gave_up"  # a test is not retried
    payload = json.loads(receiver.requests[0].body)
    assert payload["type"] == "ping" and payload["data"]["endpoint_id"] == endpoint.pk


def test_after_a_rotation_both_secrets_sign_for_a_day(workspace, receiver, endpoint_of):
    endpoint, old = endpoint_of()
    new = endpoints.rotate(endpoint)
    assert new != old and new.startswith("whsec_")
    publish(workspace)
    dispatch.deliver()
    header = receiver.requests[0].headers["Tayori-Signature"]
    body = receiver.requests[0].body
    assert signing.verify(new, header, body) and signing.verify(old, header, body)
    endpoint.refresh_from_db()
    keys = endpoints.secrets_of(endpoint, timezone.now() + 25 * HOUR)
    assert keys == [new]


def test_the_scheduler_task_sends_without_waiting_and_records_at_the_next_tick(
        workspace, receiver, endpoint_of):
    endpoint_of()
    receiver.answer(200, delay=0.8)
    [event] = publish(workspace)
    began = timezone.now()
    recorded = dispatch.tick()
    assert (timezone.now() - began).total_seconds() < dispatch.TICK_BUDGET + 0.3
    assert recorded == 0 and len(dispatch._inflight) == 1
    event.refresh_from_db()
    assert event.status == "sending"
    for _ in range(20):
        recorded += dispatch.tick()
        if recorded:
            break
    event.refresh_from_db()
    assert (recorded, event.status) == (1, "delivered")


def test_the_scheduler_task_costs_nothing_without_endpoints(db, django_assert_max_num_queries):
    dispatch.tick()  # loads the subscription snapshot
    with django_assert_max_num_queries(0):
        assert dispatch.tick() == 0


def test_an_endpoint_of_another_workspace_gets_nothing(
        workspace, other_workspace, receiver, endpoint_of):
    endpoint_of(ws=other_workspace)
    assert publish(workspace) == []
    assert Endpoint.objects.get().workspace == other_workspace


def test_finished_events_and_their_attempts_are_kept_thirty_days(
        workspace, receiver, endpoint_of):
    endpoint_of()
    delivered, waiting = publish(workspace, 2)
    dispatch.deliver(only=[delivered.pk])
    month = timezone.now() + dispatch.KEEP + HOUR
    assert dispatch.prune(now=timezone.now()) == 0
    assert dispatch.prune(now=month) == 1
    assert list(WebhookEvent.objects.values_list("pk", flat=True)) == [waiting.pk]
    assert not Attempt.objects.exists()
