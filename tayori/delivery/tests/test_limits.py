"""Rates: token buckets, carrier domains, a send's hourly cap and a relay's, by requeueing."""

import asyncio

import pytest

from tayori.delivery import queue, sending
from tayori.delivery.engine import Worker
from tayori.delivery.limits import Limits, TokenBucket
from tayori.delivery.models import Delivery, DeliverySettings, Relay
from tayori.delivery.tests.test_smtp_client import Recorder, start
from tayori.members.models import Member, Segment


def test_a_bucket_gives_its_burst_then_says_how_long_to_wait():
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.take() for _ in range(3)] == [0, 0, 0]
    wait = bucket.take()
    assert 0.4 < wait <= 0.5


def test_carrier_domains_have_their_own_limits_shared_between_processes():
    limits = Limits(share=0.5)
    docomo = [limits.wait_for(f"u{i}@docomo.ne.jp", 1, None) for i in range(12)]
    assert [w for w, _ in docomo[:10]] == [0] * 10  # 20/s for all, 10/s for this process
    assert docomo[10][0] > 0 and docomo[10][1] == "rate limit for docomo.ne.jp"
    assert all(limits.wait_for(f"u{i}@example.jp", 1, None) == (0, "") for i in range(100))


@pytest.fixture
def audience(workspace):
    Member.objects.bulk_create([Member(workspace=workspace, email=f"m{i}@example.net")
                                for i in range(10)])
    return Segment.objects.create(workspace=workspace, name="all",
                                  definition={"op": "and", "conditions": []})


@pytest.mark.django_db(transaction=True)
def test_a_send_over_its_hourly_cap_waits_in_the_queue_unspent(workspace, audience):
    source = sending.create_bulk(workspace, sending.Content(
        subject="s", text="t", from_address="a@example.jp"), name="capped", segment=audience,
        max_per_hour=240)  # 4 a minute: the first minute's burst is 4
    queue.start(source)
    asyncio.run(Worker(name="cap").drain())
    rows = Delivery.objects.filter(source=source)
    assert rows.filter(status="sent").count() == 4
    waiting = rows.filter(status="deferred")
    assert waiting.count() == 6 and {d.attempts for d in waiting} == {0}
    assert {d.smtp_reply for d in waiting} == {"waiting: the send's hourly limit"}


@pytest.mark.django_db(transaction=True)
def test_a_relays_hourly_cap_holds_the_rest_back(workspace, audience):
    handler = Recorder()
    controller = start(handler, decode_data=False)
    try:
        DeliverySettings.objects.create(workspace=workspace, mode="relays")
        Relay.objects.create(workspace=workspace, name="small", host="127.0.0.1",
                             port=controller.port, tls="off", max_per_hour=180)
        source = sending.create_bulk(workspace, sending.Content(
            subject="s", text="t", from_address="a@example.jp"), name="r", segment=audience)
        queue.start(source)
        asyncio.run(Worker(name="relaycap").drain())
    finally:
        controller.stop()
    assert len(handler.messages) == 3
    held = Delivery.objects.filter(source=source, status="deferred")
    assert held.count() == 7 and "hourly limit of small" in held.first().smtp_reply


@pytest.mark.django_db(transaction=True)
def test_lanes_share_a_relays_connections(workspace, audience):
    handler = Recorder()
    controller = start(handler, decode_data=False)
    opened = []
    try:
        DeliverySettings.objects.create(workspace=workspace, mode="relays")
        Relay.objects.create(workspace=workspace, name="one", host="127.0.0.1",
                             port=controller.port, tls="off", max_connections=1)
        source = sending.create_bulk(workspace, sending.Content(
            subject="s", text="t", from_address="a@example.jp"), name="c", segment=audience)
        queue.start(source)
        worker = Worker(name="conn", bulk_lanes=3, batch=2)

        async def run():
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            while worker.sent < 10:
                held = sum(1 for lane in worker.lanes for ch in lane.channels.values()
                           if getattr(ch, "connection", None) is not None)
                opened.append(held)
                # Look at every turn of the loop: a connection held for one SMTP exchange can
                # open and close between two 10 ms samples on a fast run.
                await asyncio.sleep(0)
            stop.set()
            await task

        asyncio.run(asyncio.wait_for(run(), 30))
    finally:
        controller.stop()
    assert len(handler.messages) == 10
    assert max(opened) == 1
