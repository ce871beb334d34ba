"""From the engine and the public tracking endpoints to a local receiver: a transactional message
queued and sent, a person's open, click and conversion (a scanner's click is not told), and an
opt-out — each arriving signed, with the stable schema."""

import asyncio
import datetime as dt
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from tayori.delivery import sending, tokens
from tayori.delivery.engine import Worker
from tayori.delivery.models import Delivery, DeliverySettings
from tayori.members.models import Member
from tayori.tracking import ingest
from tayori.tracking.models import Event
from tayori.webhooks import dispatch, events, signing

pytestmark = pytest.mark.django_db(transaction=True)

HTML = ('<p>{{ member.email }}様</p><p><a href="https://shop.example.jp/sale">セール</a></p>'
        '<p><a href="https://shop.example.jp/guide">ガイド</a></p>')
BROWSER = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")


@pytest.fixture
def mailed(workspace, receiver, endpoint_of):
    """A transactional message to a member, sent through the engine into the sandbox outbox,
    with an endpoint subscribed to every event."""
    _endpoint, secret = endpoint_of(events=list(events.TYPES))
    DeliverySettings.objects.create(workspace=workspace, tracking_host="t.example.jp")
    member = Member.objects.create(workspace=workspace, email="taro@example.jp")
    delivery = sending.enqueue_message(workspace, sending.Content(
        subject="ご注文ありがとうございます", html=HTML, from_address="shop@example.jp"),
        member=member)
    asyncio.run(Worker(name="test").drain())
    return delivery, secret


def received(receiver, secret) -> list[dict]:
    dispatch.deliver()
    for request in receiver.requests:
        assert signing.verify(secret, request.headers["Tayori-Signature"], request.body)
    bodies = [json.loads(r.body) for r in receiver.requests]
    receiver.requests.clear()
    # Posted side by side, events may arrive in any order: created_at puts them back.
    return sorted(bodies, key=lambda body: body["created_at"])


def test_a_sent_transactional_message_is_told_queued_then_sent(mailed, receiver, workspace):
    delivery, secret = mailed
    queued, sent = received(receiver, secret)
    assert (queued["type"], sent["type"]) == ("message.queued", "message.sent")
    delivery.refresh_from_db()
    assert sent["workspace"] == workspace.pk
    assert sent["data"] == {
        "delivery_id": delivery.pk, "source_id": delivery.source_id,
        "source_kind": "transactional", "member_id": delivery.member_id,
        "address": "taro@example.jp", "status": "sent", "smtp_reply": delivery.smtp_reply,
        "reason": "", "message_id": delivery.message_id}
    assert delivery.message_id and queued["data"]["status"] == "queued"


def test_a_persons_open_click_and_conversion_are_told_and_a_scanners_click_is_not(
        mailed, receiver, client):
    delivery, secret = mailed
    received(receiver, secret)
    Delivery.objects.update(sent_at=timezone.now() - dt.timedelta(hours=1))
    client.get(f"/t/o/{tokens.make(tokens.OPEN, delivery.pk)}.gif", HTTP_USER_AGENT=BROWSER)
    landing = client.get(f"/t/c/{tokens.make(tokens.CLICK, delivery.pk, 1)}",
                         HTTP_USER_AGENT=BROWSER)["Location"]
    ingest.flush()
    token = parse_qs(urlsplit(landing).query)["tayori_c"][0]
    client.get(f"/t/v/{token}.gif", {"value": "12,800"})
    ingest.flush()
    opened, clicked, converted = received(receiver, secret)
    assert opened["type"] == "message.opened" and opened["data"]["delivery_id"] == delivery.pk
    assert (clicked["type"], clicked["data"]["link_index"], clicked["data"]["url"]) == (
        "message.clicked", 1, "https://shop.example.jp/guide")
    assert (converted["type"], converted["data"]["value"], converted["data"]["url"]) == (
        "message.converted", 12800, "https://shop.example.jp/guide")
    # A link scanner is a machine: counted apart, told to nobody.
    client.get(f"/t/c/{tokens.make(tokens.CLICK, delivery.pk, 0)}",
               HTTP_USER_AGENT="Mozilla/5.0 (compatible; Barracuda Sentinel; bot)")
    assert ingest.flush() == 1
    assert Event.objects.filter(kind="click").exclude(machine="").count() == 1
    assert received(receiver, secret) == []


def test_an_opt_out_is_told_once(mailed, receiver, client):
    delivery, secret = mailed
    received(receiver, secret)
    url = f"/t/u/{tokens.make(tokens.UNSUBSCRIBE, delivery.pk)}"
    assert client.post(url, {"List-Unsubscribe": "One-Click"}).status_code == 200
    [told] = received(receiver, secret)
    assert told["type"] == "member.unsubscribed"
    assert (told["data"]["method"], told["data"]["member_id"], told["data"]["address"]) == (
        "one-click", delivery.member_id, "taro@example.jp")
    client.post(url, {"List-Unsubscribe": "One-Click"})  # again: nothing changed
    assert received(receiver, secret) == []
