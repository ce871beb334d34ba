"""The scheduler: scheduled starts, quiet hours in the workspace's zone, auto-pause, notices."""

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.utils import timezone

from tayori.delivery import queue, scheduler
from tayori.delivery.models import Delivery, DeliverySettings, Relay, Source
from tayori.members.models import Member, Segment

pytestmark = pytest.mark.django_db(transaction=True)
JST = dt.timezone(dt.timedelta(hours=9))


@pytest.fixture
def segment(workspace):
    Member.objects.bulk_create(
        [Member(workspace=workspace, email=f"s{i}@example.jp") for i in range(30)])
    return Segment.objects.create(workspace=workspace, name="all",
                                  definition={"op": "and", "conditions": []})


def bulk(workspace, segment, **fields):
    return Source.objects.create(workspace=workspace, name="news", from_address="news@example.jp",
                                 subject="s", text="t", segment=segment, **fields)


@pytest.mark.parametrize("start,end,local,quiet", [
    ("21:00", "08:00", "22:30", True), ("21:00", "08:00", "07:59", True),
    ("21:00", "08:00", "08:00", False), ("21:00", "08:00", "12:00", False),
    ("12:00", "13:00", "12:30", True), ("12:00", "13:00", "13:00", False),
    ("09:00", "09:00", "09:00", False)])
def test_quiet_hours_may_cross_midnight(start, end, local, quiet):
    t = dt.time.fromisoformat
    assert scheduler.in_quiet_hours(t(start), t(end), t(local)) is quiet


def test_scheduled_sources_all_start_when_due_and_tell_their_contacts(workspace, segment):
    now = timezone.now()
    due = [bulk(workspace, segment, status="scheduled", scheduled_at=now,
                contacts="boss@example.jp, ops@example.jp") for _ in range(5)]
    later = bulk(workspace, segment, status="scheduled", scheduled_at=now + dt.timedelta(minutes=1))
    with ThreadPoolExecutor(4) as pool:
        started = scheduler.start_due(now=now, pool=pool)
    assert sorted(started) == sorted(s.pk for s in due)
    assert set(Source.objects.filter(pk__in=started).values_list("status", flat=True)) == {
        "running"}
    assert Source.objects.get(pk=later.pk).status == "scheduled"
    assert Delivery.objects.filter(source__in=due, status="queued").count() == 150
    notices = Delivery.objects.filter(source__kind="transactional")
    assert notices.count() == 10
    assert {d.address for d in notices} == {"boss@example.jp", "ops@example.jp"}
    assert "30" in notices.first().source.text


def test_quiet_hours_hold_bulk_sends_in_the_workspace_zone_and_release_them(workspace, segment):
    DeliverySettings.objects.create(workspace=workspace, quiet_start=dt.time(21),
                                    quiet_end=dt.time(8))
    source = bulk(workspace, segment)
    queue.start(source)
    night = dt.datetime(2026, 11, 22, 22, 0, tzinfo=JST)
    assert scheduler.quiet_hours(now=night) == ([source.pk], [])
    assert Source.objects.get(pk=source.pk).status == "quiet"
    assert queue.claim("w", 100) == []
    morning = dt.datetime(2026, 11, 23, 8, 0, tzinfo=JST)
    assert scheduler.quiet_hours(now=morning) == ([], [source.pk])
    assert len(queue.claim("w", 100)) == 30


def test_a_sources_own_quiet_hours_win_over_the_workspace_default(workspace, segment):
    DeliverySettings.objects.create(workspace=workspace, quiet_start=dt.time(21),
                                    quiet_end=dt.time(8))
    source = bulk(workspace, segment, quiet_start=dt.time(23), quiet_end=dt.time(6))
    queue.start(source)
    assert scheduler.quiet_hours(now=dt.datetime(2026, 11, 22, 22, 0, tzinfo=JST)) == ([], [])


def test_a_wall_of_failures_pauses_the_source_with_the_reason(workspace, segment):
    source = bulk(workspace, segment, contacts="boss@example.jp")
    queue.start(source)
    rows = queue.claim("w", 25)
    outcomes = [queue.Outcome(c.id, "failed", "550 5.7.1 Message rejected as spam")
                for c in rows[:10]]
    outcomes += [queue.Outcome(c.id, "sent", "250 ok") for c in rows[10:25]]
    queue.record("w", outcomes)
    assert scheduler.auto_pause(now=timezone.now()) == [source.pk]
    source.refresh_from_db()
    assert source.status == "paused"
    assert "10" in source.pause_reason and "rejected as spam" in source.pause_reason
    assert Delivery.objects.filter(source=source, status="held").count() == 5
    assert Delivery.objects.filter(address="boss@example.jp").count() == 1


def test_a_few_failures_do_not_pause(workspace, segment):
    source = bulk(workspace, segment)
    queue.start(source)
    rows = queue.claim("w", 30)
    queue.record("w", [queue.Outcome(c.id, "failed" if c is rows[0] else "sent", "x")
                       for c in rows])
    assert scheduler.auto_pause(now=timezone.now()) == []


def test_sources_pause_when_no_relay_can_be_reached(workspace, segment):
    DeliverySettings.objects.create(workspace=workspace, mode="relays")
    Relay.objects.create(workspace=workspace, name="main", host="127.0.0.1", port=1,
                         down_until=timezone.now() + dt.timedelta(minutes=1),
                         last_error="Connection refused")
    source = bulk(workspace, segment)
    queue.start(source)
    assert scheduler.auto_pause(now=timezone.now()) == [source.pk]
    assert "Connection refused" in Source.objects.get(pk=source.pk).pause_reason


def test_a_tick_finishes_sources_with_nothing_left(workspace, segment):
    source = bulk(workspace, segment, contacts="boss@example.jp")
    queue.start(source)
    queue.record("w", [queue.Outcome(c.id, "sent", "250") for c in queue.claim("w", 100)])
    assert source.pk in scheduler.tick()["done"]
    done = Delivery.objects.filter(address="boss@example.jp").order_by("id").last()
    assert "30" in done.source.text
