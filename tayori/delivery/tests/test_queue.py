"""The queue: fan-out reasons, priority claims under leases, bulk recording, life cycle."""

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from tayori.delivery import queue
from tayori.delivery.models import Delivery, Priority, Source
from tayori.members.models import Member, Segment, Suppression

pytestmark = pytest.mark.django_db(transaction=True)

EVERYONE = {"op": "and", "conditions": []}


@pytest.fixture
def audience(workspace):
    rows = [Member(workspace=workspace, email=f"m{i}@example.jp") for i in range(10)]
    rows += [
        Member(workspace=workspace, email="gone@example.jp", status="unsubscribed"),
        Member(workspace=workspace, email="bad@example.jp", status="bounced"),
        Member(workspace=workspace, email="blocked@example.jp"),
        Member(workspace=workspace, email="", phone="+819012345678"),
        Member(workspace=workspace, email="M0@example.jp"),  # the same mailbox as m0
    ]
    Member.objects.bulk_create(rows)
    Suppression.objects.create(workspace=workspace, value="blocked@example.jp", reason="test")
    Suppression.objects.create(workspace=workspace, value="m9@example.jp", reason="expired",
                               expires_at=timezone.now() - dt.timedelta(days=1))
    return Segment.objects.create(workspace=workspace, name="all", definition=EVERYONE)


def bulk(workspace, segment, **fields):
    return Source.objects.create(workspace=workspace, name="news", from_address="a@example.jp",
                                 subject="s", segment=segment, **fields)


def test_fan_out_queues_the_audience_and_skips_with_reasons(workspace, other_workspace, audience):
    Member.objects.create(workspace=other_workspace, email="stranger@example.jp")
    source = bulk(workspace, audience)
    counts = queue.fan_out(source)
    assert counts == {"queued": 10, "unsubscribed": 1, "bounced": 1, "suppressed": 1,
                      "no_address": 1, "duplicate": 1}
    source.refresh_from_db()
    assert source.total == 15
    assert source.skipped == {"unsubscribed": 1, "bounced": 1, "suppressed": 1, "no_address": 1,
                              "duplicate": 1}
    skipped = Delivery.objects.get(source=source, address="M0@example.jp")
    assert (skipped.status, skipped.skip_reason) == ("skipped", "duplicate")
    assert skipped.finished_at is not None
    assert not Delivery.objects.filter(address="stranger@example.jp").exists()
    assert set(Delivery.objects.values_list("workspace_id", flat=True)) == {workspace.pk}


def test_fan_out_sends_to_each_spelling_when_once_per_address_is_off(workspace, audience):
    counts = queue.fan_out(bulk(workspace, audience, once_per_address=False))
    assert counts["queued"] == 11 and "duplicate" not in counts


def test_fan_out_follows_the_segment(workspace, audience):
    few = Segment.objects.create(workspace=workspace, name="few", definition={
        "op": "or", "conditions": [
            {"field": "email", "operator": "equals", "value": "m1@example.jp"},
            {"field": "email", "operator": "equals", "value": "gone@example.jp"}]})
    assert queue.fan_out(bulk(workspace, few)) == {"queued": 1, "unsubscribed": 1}


def running(workspace, segment, **fields):
    source = bulk(workspace, segment, **fields)
    queue.start(source)
    source.refresh_from_db()
    return source


def test_claims_go_to_urgent_rows_first_and_only_for_running_sources(workspace, audience):
    news = running(workspace, audience)
    draft = bulk(workspace, audience)
    queue.fan_out(draft)  # rows exist, but the source has not started
    urgent = Source.objects.create(workspace=workspace, kind="transactional", name="outage",
                                   from_address="a@example.jp", subject="s", status="running",
                                   priority=Priority.URGENT)
    Delivery.objects.create(workspace=workspace, source=urgent, address="ops@example.jp",
                            priority=Priority.URGENT, data={"incident": "INC-1"})
    first = queue.claim("w1", 3)
    assert first[0].address == "ops@example.jp"
    assert {c.source_id for c in first} == {urgent.pk, news.pk}
    assert next(c for c in first if c.source_id == urgent.pk).data == {"incident": "INC-1"}
    rest = queue.claim("w1", 100)
    assert len(first) + len(rest) == 11
    assert all(c.source_id == news.pk for c in rest)
    assert queue.claim("w1", 100) == []
    assert Delivery.objects.filter(status="claimed", claimed_by="w1").count() == 11


def test_the_urgent_lane_claims_only_urgent_rows(workspace, audience):
    running(workspace, audience)
    assert queue.claim("lane", 10, min_priority=Priority.URGENT) == []


def test_results_are_recorded_in_bulk(workspace, audience):
    source = running(workspace, audience)
    claimed = queue.claim("w1", 4)
    later = timezone.now() + dt.timedelta(minutes=5)
    outcomes = [queue.Outcome(claimed[0].id, "sent", "250 2.0.0 Ok", "<a@x>"),
                queue.Outcome(claimed[1].id, "deferred", "451 4.7.1 Try later", retry_at=later),
                queue.Outcome(claimed[2].id, "failed", "550 5.1.1 No such user"),
                queue.Outcome(claimed[3].id, "requeue", "connection refused")]
    assert queue.record("w1", outcomes) == 4
    rows = {d.pk: d for d in Delivery.objects.filter(source=source)}
    sent, deferred, failed, requeued = (rows[c.id] for c in claimed)
    assert (sent.status, sent.attempts, sent.message_id) == ("sent", 1, "<a@x>")
    assert sent.sent_at is not None and sent.claimed_by == ""
    assert (deferred.status, deferred.attempts, deferred.smtp_reply) == (
        "deferred", 1, "451 4.7.1 Try later")
    assert abs(deferred.next_attempt_at - later) < dt.timedelta(seconds=1)
    assert (failed.status, failed.attempts) == ("failed", 1) and failed.finished_at
    assert (requeued.status, requeued.attempts) == ("queued", 0)


def test_a_worker_whose_lease_was_taken_over_does_not_overwrite(workspace, audience):
    running(workspace, audience)
    row = queue.claim("w1", 1)[0]
    Delivery.objects.filter(pk=row.id).update(claimed_by="w2")
    assert queue.record("w1", [queue.Outcome(row.id, "failed", "550")]) == 0
    assert Delivery.objects.get(pk=row.id).status == "claimed"


def test_maintain_returns_due_retries_and_abandoned_leases(workspace, audience):
    running(workspace, audience)
    now = timezone.now()
    abandoned = queue.claim("dead", 2, now=now - dt.timedelta(minutes=10))
    live = queue.claim("alive", 2, now=now)
    retry = queue.claim("w", 2, now=now)
    queue.record("w", [queue.Outcome(retry[0].id, "deferred", "451", retry_at=now),
                       queue.Outcome(retry[1].id, "deferred", "451",
                                     retry_at=now + dt.timedelta(hours=1))])
    assert queue.maintain(now=now + dt.timedelta(seconds=1)) == 3
    requeued = set(Delivery.objects.filter(status="queued").values_list("pk", flat=True))
    assert {abandoned[0].id, abandoned[1].id, retry[0].id} <= requeued
    assert not {live[0].id, live[1].id, retry[1].id} & requeued


def test_pause_holds_rows_and_resume_never_requeues_sent_ones(workspace, audience):
    source = running(workspace, audience)
    sent = queue.claim("w", 3)
    queue.record("w", [queue.Outcome(c.id, "sent", "250") for c in sent])
    in_flight = queue.claim("w", 1)[0]
    assert queue.pause(source, "checking the content")
    assert queue.claim("w", 100) == []
    # A message handed over before the pause is still recorded.
    assert queue.record("w", [queue.Outcome(in_flight.id, "sent", "250")]) == 1
    assert queue.resume(source)
    again = queue.claim("w", 100)
    assert len(again) == 6
    assert not {c.id for c in again} & ({c.id for c in sent} | {in_flight.id})


def test_cancel_stops_everything_not_yet_handed_over(workspace, audience):
    source = running(workspace, audience)
    queue.claim("w", 2)
    assert queue.cancel(source) == 8
    source.refresh_from_db()
    assert source.status == "cancelled" and queue.claim("w", 100) == []


def test_a_source_with_nothing_left_is_done(workspace, audience):
    source = running(workspace, audience)
    rows = queue.claim("w", 100)
    assert queue.finish_done() == []
    queue.record("w", [queue.Outcome(c.id, "sent", "250") for c in rows])
    assert queue.finish_done() == [source.pk]
    source.refresh_from_db()
    assert source.status == "done" and source.finished_at is not None
    assert queue.progress(source)["sent"] == 10


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED is PostgreSQL's")
def test_concurrent_claims_never_share_a_row(workspace):
    Member.objects.bulk_create(
        [Member(workspace=workspace, email=f"c{i}@example.jp") for i in range(600)])
    segment = Segment.objects.create(workspace=workspace, name="all", definition=EVERYONE)
    running(workspace, segment)
    got: dict[str, list[int]] = {}

    def worker(name):
        ids = []
        while batch := queue.claim(name, 25):
            ids += [c.id for c in batch]
        got[name] = ids
        connection.close()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [pk for ids in got.values() for pk in ids]
    assert len(every) == len(set(every)) == 600
