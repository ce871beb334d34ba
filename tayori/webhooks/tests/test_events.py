"""Emitting events: what each type's data holds, who gets it, and what it costs — nothing when
nobody subscribed, a few statements for a whole batch of a bulk send when someone did."""

import datetime as dt
import json

import pytest

from tayori.delivery import queue, sending, signals
from tayori.delivery.models import Delivery, Source
from tayori.members.models import Member, Suppression
from tayori.webhooks import events, listeners, subscriptions
from tayori.webhooks.models import Endpoint, WebhookEvent

pytestmark = pytest.mark.django_db

BASE = {"delivery_id", "source_id", "source_kind", "member_id", "address"}


def payloads(**filters) -> list[dict]:
    return [json.loads(body) for body in WebhookEvent.objects.filter(**filters).order_by(
        "id").values_list("body", flat=True)]


@pytest.fixture
def bulk(workspace):
    """A running bulk send with 200 recipients claimed by worker "w"."""
    Member.objects.bulk_create([Member(workspace=workspace, email=f"m{i}@example.jp")
                                for i in range(200)])
    source = Source.objects.create(workspace=workspace, name="news", status="running",
                                   from_address="news@example.jp", subject="s", text="t")
    Delivery.objects.bulk_create([Delivery(workspace=workspace, source=source, member=m,
                                           address=m.email, status="queued")
                                  for m in Member.objects.filter(workspace=workspace)])
    return source, queue.claim("w", 500)


def sent(claimed) -> list[queue.Outcome]:
    return [queue.Outcome(c.id, "sent", "250 2.0.0 Ok", f"<{c.id}@example.jp>") for c in claimed]


def test_nobody_subscribed_costs_the_engine_no_query(bulk, django_assert_num_queries,
                                                     django_capture_on_commit_callbacks):
    _source, claimed = bulk
    subscriptions.workspaces("message.sent")  # the snapshot, loaded once per few seconds
    with django_capture_on_commit_callbacks(execute=True), django_assert_num_queries(1):
        queue.record("w", sent(claimed))  # its own statement only
    assert not WebhookEvent.objects.exists()


def test_a_bulk_batch_is_written_in_a_few_statements(
        workspace, bulk, endpoint_of, django_assert_max_num_queries,
        django_capture_on_commit_callbacks):
    source, claimed = bulk
    endpoint_of(events=["message.sent"])
    subscriptions.workspaces("message.sent")
    # record, the deliveries' facts, the endpoints, one bulk insert
    with django_capture_on_commit_callbacks(execute=True), django_assert_max_num_queries(4):
        queue.record("w", sent(claimed))
    assert WebhookEvent.objects.count() == 200
    first = payloads()[0]
    delivery = Delivery.objects.get(pk=first["data"]["delivery_id"])
    assert first["type"] == "message.sent"
    assert first["data"] == {
        "delivery_id": delivery.pk, "source_id": source.pk, "source_kind": "bulk",
        "member_id": delivery.member_id, "address": delivery.address, "status": "sent",
        "smtp_reply": "250 2.0.0 Ok", "reason": "", "message_id": f"<{delivery.pk}@example.jp>"}
    assert len({p["id"] for p in payloads()}) == 200


def test_each_endpoint_gets_only_the_types_it_subscribed_to(
        workspace, bulk, endpoint_of, django_capture_on_commit_callbacks):
    _source, claimed = bulk
    sent_only, _secret = endpoint_of(events=["message.sent"])
    both, _secret = endpoint_of(events=["message.sent", "message.deferred"])
    outcomes = [queue.Outcome(claimed[0].id, "sent", "250 ok"),
                queue.Outcome(claimed[1].id, "deferred", "451 try later"),
                queue.Outcome(claimed[2].id, "requeue", "waiting")]
    with django_capture_on_commit_callbacks(execute=True):
        queue.record("w", outcomes)
    assert list(WebhookEvent.objects.filter(endpoint=sent_only).values_list("type", flat=True)) == [
        "message.sent"]
    assert sorted(WebhookEvent.objects.filter(endpoint=both).values_list("type", flat=True)) == [
        "message.deferred", "message.sent"]
    # One event told to two endpoints is one event: the same id and body.
    shared = WebhookEvent.objects.filter(type="message.sent")
    assert len({(e.uid, e.body) for e in shared}) == 1


def test_a_transactional_message_is_queued_and_a_skipped_one_failed_with_the_reason(
        workspace, endpoint_of, django_capture_on_commit_callbacks):
    endpoint_of(events=["message.queued", "message.failed"])
    Suppression.objects.create(workspace=workspace, value="blocked@example.jp", reason="x")
    content = sending.Content(subject="ご注文", text="t", from_address="shop@example.jp")
    with django_capture_on_commit_callbacks(execute=True):
        queued = sending.enqueue_message(workspace, content, to="taro@example.jp")
        skipped = sending.enqueue_message(workspace, content, to="blocked@example.jp")
    first, second = payloads()
    assert (first["type"], first["data"]["delivery_id"], first["data"]["status"]) == (
        "message.queued", queued.pk, "queued")
    assert first["data"]["source_kind"] == "transactional" and first["data"]["member_id"] is None
    assert (second["type"], second["data"]["status"], second["data"]["reason"]) == (
        "message.failed", "skipped", "suppressed")
    assert set(second["data"]) == BASE | {"status", "smtp_reply", "reason"}
    assert second["data"]["delivery_id"] == skipped.pk


@pytest.mark.parametrize("event_type", sorted(events.OWN_KEYS))
def test_every_type_carries_all_of_its_keys(workspace, bulk, endpoint_of, event_type):
    _source, claimed = bulk
    endpoint_of(events=[event_type])
    events.publish_deliveries(event_type, [{"delivery_id": claimed[0].id}])
    [payload] = payloads()
    assert set(payload) == {"id", "type", "created_at", "workspace", "data"}
    assert set(payload["data"]) == BASE | set(events.OWN_KEYS[event_type])
    assert payload["id"].startswith("evt_") and payload["type"] == event_type


def test_deliveries_of_other_workspaces_are_never_told(
        workspace, other_workspace, bulk, endpoint_of):
    _source, claimed = bulk
    endpoint_of(events=["message.opened"], ws=other_workspace)
    assert events.publish_deliveries("message.opened", [{"delivery_id": claimed[0].id}]) == 0
    assert not WebhookEvent.objects.exists()


def test_a_stale_snapshot_writes_nothing_for_an_endpoint_that_is_gone(
        workspace, bulk, endpoint_of, monkeypatch):
    _source, claimed = bulk
    endpoint, _secret = endpoint_of(events=["message.opened"])
    subscriptions.workspaces("message.opened")
    Endpoint.objects.filter(pk=endpoint.pk).delete()  # as if in another process: no signal
    monkeypatch.setattr(subscriptions, "_snapshot",
                        (1e18, {"message.opened": frozenset({workspace.pk}),
                                "*": frozenset({workspace.pk})}))
    assert events.publish_deliveries("message.opened", [{"delivery_id": claimed[0].id}]) == 0


def test_a_listener_that_fails_does_not_break_the_engine(bulk, monkeypatch, caplog,
                                                         django_capture_on_commit_callbacks):
    _source, claimed = bulk

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(signals, "LISTENERS", [broken])
    with django_capture_on_commit_callbacks(execute=True):
        assert queue.record("w", sent(claimed[:3])) == 3
    assert "a delivery listener failed" in caplog.text


def test_webhooks_listen_to_delivery_tracking_and_opt_outs():
    from tayori.tracking import ingest, optout

    assert listeners.delivery_changed in signals.LISTENERS
    assert listeners.responded in ingest.EVENT_LISTENERS
    assert listeners.unsubscribed in optout.LISTENERS


def test_created_at_is_when_it_happened_in_the_workspaces_zone(workspace, bulk, endpoint_of):
    _source, claimed = bulk
    endpoint_of(events=["message.opened"])
    at = dt.datetime(2025, 3, 1, 1, 15, 2, 120000, tzinfo=dt.UTC)
    events.publish_deliveries("message.opened", [{"delivery_id": claimed[0].id, "at": at}])
    assert payloads()[0]["created_at"] == "2025-03-01T10:15:02.120+09:00"


def test_bounce_processing_publishes_bounces_with_their_reply_and_reason(
        workspace, bulk, endpoint_of):
    _source, claimed = bulk
    endpoint_of(events=["message.bounced"])
    events.publish_deliveries("message.bounced", [{
        "delivery_id": claimed[0].id, "smtp_reply": "550 5.1.1 user unknown",
        "reason": "hard"}])
    data = payloads()[0]["data"]
    assert (data["status"], data["smtp_reply"], data["reason"]) == (
        "bounced", "550 5.1.1 user unknown", "hard")
