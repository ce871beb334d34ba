"""The engine end to end: a segment's personalized mail into the sandbox outbox, and through a
real SMTP server with DKIM; refusals, retries and a relay that is down."""

import asyncio
import email
import email.policy

import dkim as dkimpy
import pytest

from tayori.delivery import queue, sending
from tayori.delivery.dkim import dns_record, generate_key
from tayori.delivery.engine import Worker
from tayori.delivery.models import (
    Delivery,
    DeliverySettings,
    OutboxMessage,
    Relay,
    SenderDomain,
    Source,
)
from tayori.delivery.smtp.sink import free_port
from tayori.delivery.tests.test_smtp_client import Recorder, start
from tayori.lib import crypto
from tayori.members.models import Member, Segment

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def audience(workspace):
    Member.objects.bulk_create([
        Member(workspace=workspace, email=f"m{i}@example.net", attributes={"name": f"会員{i}"})
        for i in range(12)] + [Member(workspace=workspace, email="gone@example.net",
                                      status="unsubscribed")])
    return Segment.objects.create(workspace=workspace, name="all",
                                  definition={"op": "and", "conditions": []})


def send(workspace, segment, **content):
    fields = {"subject": "{{ member.name }}様 冬のお知らせ", "html": "<p>{{ member.name }}様</p>",
              "text": "{{ member.name }}様", "from_address": "news@example.jp",
              "from_name": "サンプル", **content}
    source = sending.create_bulk(workspace, sending.Content(**fields), name="winter",
                                 segment=segment)
    queue.start(source)
    return source


def drain(**options) -> int:
    return asyncio.run(Worker(name="test", **options).drain())


def parse(raw: bytes):
    return email.message_from_bytes(bytes(raw), policy=email.policy.default)


def test_without_relays_a_segment_send_lands_in_the_sandbox_outbox(workspace, audience):
    source = send(workspace, audience)
    assert drain() == 12
    assert Delivery.objects.filter(source=source, status="sent").count() == 12
    assert Delivery.objects.get(source=source, address="gone@example.net").skip_reason == (
        "unsubscribed")
    caught = OutboxMessage.objects.get(recipient="m3@example.net")
    message = parse(caught.raw)
    assert message["Subject"] == caught.subject == "会員3様 冬のお知らせ"
    assert message.get_body(("plain",)).get_content() == "会員3様"
    assert caught.delivery.message_id == message["Message-ID"]
    assert caught.mail_from.startswith("bounce+")
    assert queue.finish_done() == [source.pk]


def test_through_a_relay_every_message_is_signed_and_recorded(workspace, audience):
    key = generate_key()
    SenderDomain.objects.create(workspace=workspace, domain="example.jp", selector="tay",
                                rsa_key=crypto.encrypt(key))
    handler = Recorder(refuse_rcpt={"m1@example.net": "550 5.1.1 User unknown",
                                    "m2@example.net": "451 4.7.1 Greylisted"})
    controller = start(handler, decode_data=False)
    try:
        DeliverySettings.objects.create(workspace=workspace, mode="relays")
        Relay.objects.create(workspace=workspace, name="local", host="127.0.0.1",
                             port=controller.port, tls="off")
        source = send(workspace, audience)
        assert drain() == 10
    finally:
        controller.stop()
    assert len(handler.messages) == 10
    record = dns_record(key).encode()
    for mail_from, _rcpts, content in handler.messages:
        assert dkimpy.verify(content, dnsfunc=lambda name, timeout=5: record)
        assert mail_from.startswith("bounce+") and mail_from.endswith("@example.jp")
    rows = {d.address: d for d in Delivery.objects.filter(source=source)}
    assert rows["m0@example.net"].status == "sent"
    assert rows["m0@example.net"].smtp_reply.startswith("250")
    assert (rows["m1@example.net"].status, rows["m1@example.net"].smtp_reply) == (
        "failed", "550 5.1.1 User unknown")
    deferred = rows["m2@example.net"]
    assert (deferred.status, deferred.attempts) == ("deferred", 1)
    assert deferred.next_attempt_at > deferred.queued_at
    assert not OutboxMessage.objects.exists()


def test_a_relay_that_is_down_returns_the_rows_unspent_and_rests(workspace, audience):
    DeliverySettings.objects.create(workspace=workspace, mode="relays")
    relay = Relay.objects.create(workspace=workspace, name="down", host="127.0.0.1",
                                 port=free_port(), tls="off")
    source = send(workspace, audience)
    assert drain() == 0
    waiting = Delivery.objects.filter(source=source, status="deferred", attempts=0)
    assert waiting.count() == 12
    assert all(d.next_attempt_at > d.queued_at for d in waiting)
    relay.refresh_from_db()
    assert relay.down_until is not None and relay.last_error


def test_a_recipient_whose_template_fails_is_failed_with_the_reason(workspace, audience):
    Member.objects.filter(email="m4@example.net").update(attributes={"name": "x", "n": 0})
    source = send(workspace, audience, text="{{ 10 / (member.n or 1) }}",
                  html="<p>{{ member.name }}</p>")
    Member.objects.filter(email="m5@example.net").update(attributes={"n": "text"})
    drain()
    failed = Delivery.objects.get(source=source, address="m5@example.net")
    assert failed.status == "failed" and "template" in failed.smtp_reply
    assert Delivery.objects.filter(source=source, status="sent").count() == 11


def test_urgent_mail_overtakes_a_bulk_backlog(workspace, audience):
    send(workspace, audience)
    urgent = sending.enqueue_message(workspace, sending.Content(
        subject="障害のお知らせ", text="{{ data.detail }}", from_address="ops@example.jp"),
        to="m9@example.net", data={"detail": "決済が停止しています"}, urgent=True)
    worker = Worker(name="test", batch=5)

    async def urgent_lane_once():
        try:
            await worker.lanes[0].step()
        finally:
            await worker.close()

    asyncio.run(urgent_lane_once())
    urgent.refresh_from_db()
    assert urgent.status == "sent"
    assert Delivery.objects.filter(source__kind=Source.Kind.BULK, status="sent").count() == 0
    message = parse(OutboxMessage.objects.get(delivery=urgent).raw)
    assert message.get_content() == "決済が停止しています"
    assert "List-Unsubscribe" not in message
