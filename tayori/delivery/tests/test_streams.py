"""Broadcast and transactional mail are separate streams: each goes through the relays set to
carry it, with its own Return-Path domain; an unsubscribed member still gets transactional mail
and a bounced one gets neither."""

import asyncio
import datetime as dt

import pytest
from django.utils import timezone

from tayori.delivery import queue, scheduler, sending
from tayori.delivery.models import Delivery, DeliverySettings, OutboxMessage, Relay, Stream
from tayori.delivery.tests.test_engine import drain, send
from tayori.delivery.tests.test_smtp_client import Recorder, start
from tayori.members.models import Member, Segment

pytestmark = pytest.mark.django_db(transaction=True)

NOTICE = sending.Content(subject="ご注文の確認", text="ありがとうございます。",
                         from_address="shop@example.jp")


@pytest.fixture
def relays(workspace):
    """Two local SMTP servers: one for broadcast mail, one for transactional mail."""
    handlers = {Stream.BROADCAST: Recorder(), Stream.TRANSACTIONAL: Recorder()}
    controllers = {stream: start(handler, decode_data=False)
                   for stream, handler in handlers.items()}
    DeliverySettings.objects.create(workspace=workspace, mode="relays",
                                    bounce_domain="b.example.jp",
                                    transactional_bounce_domain="tx.example.jp")
    for stream, controller in controllers.items():
        Relay.objects.create(workspace=workspace, name=stream, host="127.0.0.1",
                             port=controller.port, tls="off", stream=stream)
    yield handlers
    for controller in controllers.values():
        controller.stop()


@pytest.fixture
def everyone(workspace):
    Member.objects.bulk_create([Member(workspace=workspace, email=f"m{i}@example.net")
                                for i in range(3)])
    return Segment.objects.create(workspace=workspace, name="all",
                                  definition={"op": "and", "conditions": []})


def test_each_stream_leaves_through_its_own_relays_and_return_path(workspace, relays, everyone):
    send(workspace, everyone)
    sending.enqueue_message(workspace, NOTICE, to="buyer@example.org", urgent=True)
    assert drain() == 4
    broadcast, transactional = relays[Stream.BROADCAST], relays[Stream.TRANSACTIONAL]
    assert sorted(r[0] for _f, r, _c in broadcast.messages) == [
        "m0@example.net", "m1@example.net", "m2@example.net"]
    assert [r for _f, r, _c in transactional.messages] == [["buyer@example.org"]]
    assert all(f.endswith("@b.example.jp") for f, _r, _c in broadcast.messages)
    mail_from, _rcpts, content = transactional.messages[0]
    assert mail_from.startswith("bounce+") and mail_from.endswith("@tx.example.jp")
    assert b"List-Unsubscribe" not in content  # transactional mail has no list to leave


def test_a_stream_without_its_own_relay_uses_the_others(workspace, relays):
    Relay.objects.filter(stream=Stream.TRANSACTIONAL).update(active=False)
    sending.enqueue_message(workspace, NOTICE, to="buyer@example.org")
    assert drain() == 1
    assert len(relays[Stream.BROADCAST].messages) == 1


def test_unsubscribed_members_get_transactional_mail_and_bounced_ones_nothing(workspace,
                                                                             everyone):
    Member.objects.filter(email="m0@example.net").update(status="unsubscribed")
    Member.objects.filter(email="m1@example.net").update(status="bounced")
    bulk = send(workspace, everyone)
    messages = [sending.enqueue_message(workspace, NOTICE, to=f"m{i}@example.net")
                for i in range(3)]
    drain()
    skipped = dict(Delivery.objects.filter(source=bulk, status="skipped")
                   .values_list("address", "skip_reason"))
    assert skipped == {"m0@example.net": "unsubscribed", "m1@example.net": "bounced"}
    statuses = {m.address: Delivery.objects.get(pk=m.pk).status for m in messages}
    assert statuses == {"m0@example.net": "sent", "m1@example.net": "skipped",
                        "m2@example.net": "sent"}
    assert OutboxMessage.objects.filter(recipient="m0@example.net").count() == 1


def test_a_message_for_later_waits_until_the_scheduler_starts_it(workspace):
    later = timezone.now() + dt.timedelta(hours=1)
    delivery = sending.enqueue_message(workspace, NOTICE, to="buyer@example.org", send_at=later)
    assert (delivery.status, delivery.source.status) == ("held", "scheduled")
    assert drain() == 0
    scheduler.tick(now=later - dt.timedelta(minutes=1))
    assert Delivery.objects.get(pk=delivery.pk).status == "held"
    scheduler.tick(now=later)
    assert Delivery.objects.get(pk=delivery.pk).status == "queued"
    assert drain() == 1
    assert Delivery.objects.get(pk=delivery.pk).status == "sent"
    assert queue.finish_done() == [delivery.source_id]


def test_a_lane_never_waits_for_a_relay_connection_it_holds_itself(workspace, relays, everyone):
    """Broadcast goes through relay "broadcast"; transactional mail may use it too while its own
    relay rests. With one connection allowed, a lane sending both in one batch must hand the
    connection over, not wait for itself."""
    from tayori.delivery.engine import Worker

    Relay.objects.filter(stream=Stream.BROADCAST).update(stream=Stream.ALL, max_connections=1)
    Relay.objects.filter(stream=Stream.TRANSACTIONAL).update(
        down_until=timezone.now() + dt.timedelta(hours=1))
    send(workspace, everyone)
    sending.enqueue_message(workspace, NOTICE, to="buyer@example.org")  # normal priority
    sent = asyncio.run(asyncio.wait_for(Worker(name="one-lane", bulk_lanes=1).drain(), 30))
    assert sent == 4
    assert len(relays[Stream.BROADCAST].messages) == 4


def test_a_message_for_later_is_skipped_if_its_recipient_went_bad_meanwhile(workspace):
    from tayori.members.models import Suppression

    later = timezone.now() + dt.timedelta(days=2)
    taro = Member.objects.create(workspace=workspace, email="taro@example.net")
    to_member = sending.enqueue_message(workspace, NOTICE, member=taro, send_at=later)
    to_address = sending.enqueue_message(workspace, NOTICE, to="x@example.org", send_at=later)
    fine = sending.enqueue_message(workspace, NOTICE, to="y@example.org", send_at=later)
    Member.objects.filter(pk=taro.pk).update(status="complained")
    Suppression.objects.create(workspace=workspace, value="x@example.org", reason="bounce")
    scheduler.tick(now=later)
    rows = {d.pk: (d.status, d.skip_reason) for d in Delivery.objects.all()}
    assert rows == {to_member.pk: ("skipped", "complained"),
                    to_address.pk: ("skipped", "suppressed"), fine.pk: ("queued", "")}


def test_an_address_of_spaces_is_refused(workspace):
    with pytest.raises(sending.ContentRefused) as refused:
        sending.enqueue_message(workspace, NOTICE, to="   ")
    assert refused.value.errors[0].field == "to"
    assert not Delivery.objects.exists()
