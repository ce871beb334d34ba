"""Delivery pages: creating and controlling sends, the log with masking, the outbox, settings."""

import asyncio

import pytest
from django.test import Client
from django.urls import reverse

from tayori.accounts.models import AuditEvent
from tayori.delivery import queue, sending
from tayori.delivery.engine import Worker
from tayori.delivery.models import Delivery, DeliverySettings, OutboxMessage, Relay, Source
from tayori.lib import crypto
from tayori.members.models import Member, Segment

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def english(workspace):
    workspace.language = "en"
    workspace.save()


@pytest.fixture
def segment(workspace):
    Member.objects.bulk_create([Member(workspace=workspace, email=f"taro{i}@example.jp",
                                       attributes={"name": f"太郎{i}"}) for i in range(3)])
    return Segment.objects.create(workspace=workspace, name="all",
                                  definition={"op": "and", "conditions": []})


def signed_in(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


FORM = {"name": "冬のセール", "from_address": "news@example.jp", "from_name": "便りストア",
        "subject": "{{ member.name }}様 冬のセール", "html": "<p>{{ member.name }}様</p>",
        "text": "", "tracking": "on", "once_per_address": "on"}


def create(client, segment, **fields):
    return client.post(reverse("delivery:send-new"), {**FORM, "segment": segment.pk, **fields})


def test_a_send_is_created_started_paused_resumed_and_audited(owner_client, segment):
    bad = create(owner_client, segment, html="<p>\n{% if %}</p>")
    assert bad.status_code == 400 and b"Line 2" in bad.content
    response = create(owner_client, segment)
    source = Source.objects.get(name="冬のセール")
    assert response.url == reverse("delivery:send", args=[source.pk])
    assert source.status == "draft" and source.created_by is not None
    owner_client.post(reverse("delivery:send-start", args=[source.pk]))
    assert Delivery.objects.filter(source=source, status="queued").count() == 3
    page = owner_client.get(reverse("delivery:send-progress", args=[source.pk]))
    assert b'hx-trigger="every 2s"' in page.content and b"Pause" in page.content
    owner_client.post(reverse("delivery:send-pause", args=[source.pk]))
    assert Source.objects.get(pk=source.pk).status == "paused"
    owner_client.post(reverse("delivery:send-resume", args=[source.pk]))
    assert Source.objects.get(pk=source.pk).status == "running"
    actions = set(AuditEvent.objects.filter(target=f"source:{source.pk}").values_list(
        "action", flat=True))
    assert actions == {"send.created", "send.start", "send.pause", "send.resume"}


def test_an_analyst_sees_sends_but_cannot_create_or_control_them(analyst_client, workspace,
                                                                 segment):
    source = draft(workspace, segment)
    assert analyst_client.get(reverse("delivery:send", args=[source.pk])).status_code == 200
    assert create(analyst_client, segment).status_code == 403
    assert analyst_client.post(reverse("delivery:send-start", args=[source.pk])).status_code == 403
    assert Source.objects.get().status == "draft"


def draft(workspace, segment):
    fields = {k: v for k, v in FORM.items() if k in (
        "from_address", "from_name", "subject", "html", "text")}
    return sending.create_bulk(workspace, sending.Content(**fields), name=FORM["name"],
                               segment=segment)


def sent(workspace, segment):
    source = draft(workspace, segment)
    queue.start(source)
    asyncio.run(Worker(name="t").drain())
    Delivery.objects.filter(source=source, address="taro2@example.jp").update(
        smtp_reply="=HYPERLINK(\"x\")")
    return source


def test_the_log_masks_addresses_and_refuses_address_search_for_an_analyst(
        client, owner, teammate, workspace, segment):
    sent(workspace, segment)
    owner_client, analyst_client = signed_in(owner), signed_in(teammate)
    page = analyst_client.get(reverse("delivery:log"))
    assert b"ta***@example.jp" in page.content and b"taro1@example.jp" not in page.content
    refused = analyst_client.get(reverse("delivery:log"), {"q": "taro1@example.jp"})
    assert b"cannot search" in refused.content and b"ta***@" not in refused.content
    found = owner_client.get(reverse("delivery:log"), {"q": "Taro1@example.jp"})
    assert found.content.count(b"taro1@example.jp") == 1 and b"taro0@" not in found.content
    export = analyst_client.get(reverse("delivery:log-export"))
    body = b"".join(export.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff") and "ta***@example.jp" in body and "taro1@" not in body
    assert "'=HYPERLINK" in body
    b"".join(owner_client.get(reverse("delivery:log-export"),
                              {"q": "taro1@example.jp"}).streaming_content)
    exported = AuditEvent.objects.filter(action="deliveries.exported").order_by("id").last()
    assert "taro1@" not in str(exported.detail) and "ta***@example.jp" in str(exported.detail)
    sjis = owner_client.get(reverse("delivery:log-export"), {"encoding": "cp932"})
    assert "冬のセール".encode("cp932") in b"".join(sjis.streaming_content)


def test_the_outbox_shows_the_message_and_hides_content_without_pii_rights(
        owner, teammate, workspace, segment):
    sent(workspace, segment)
    owner_client, analyst_client = signed_in(owner), signed_in(teammate)
    message = OutboxMessage.objects.get(recipient="taro1@example.jp")
    page = owner_client.get(reverse("delivery:outbox-message", args=[message.pk]))
    assert "太郎1様 冬のセール".encode() in page.content
    assert b'sandbox=""' in page.content and "&lt;p&gt;太郎1様".encode() in page.content
    hidden = analyst_client.get(reverse("delivery:outbox-message", args=[message.pk]))
    assert "太郎1".encode() not in hidden.content and b"ta***@example.jp" in hidden.content
    assert analyst_client.get(reverse("delivery:outbox-download",
                                      args=[message.pk])).status_code == 403
    listing = owner_client.get(reverse("delivery:outbox"))
    assert listing.content.count(b"taro") == 3 and "太郎1様".encode() in listing.content
    assert "太郎1".encode() not in analyst_client.get(reverse("delivery:outbox")).content


def test_relays_keep_their_password_sealed_and_switching_needs_one(owner_client, workspace):
    refused = owner_client.post(reverse("delivery:settings"), {"mode": "relays"})
    assert refused.status_code == 400 and DeliverySettings.of(workspace).mode == "sandbox"
    owner_client.post(reverse("delivery:relay-new"), {
        "name": "main", "host": "smtp.example.jp", "port": 587, "tls": "required", "stream": "transactional",
        "username": "tayori", "new_password": "s3cret-pass", "max_connections": 4,
        "max_per_connection": 100, "weight": 1, "active": "on"})
    relay = Relay.objects.get()
    assert "s3cret" not in relay.password and crypto.decrypt(relay.password) == "s3cret-pass"
    assert relay.stream == "transactional"
    form = owner_client.get(reverse("delivery:relay", args=[relay.pk]))
    assert b"s3cret" not in form.content and relay.password.encode() not in form.content
    owner_client.post(reverse("delivery:relay", args=[relay.pk]), {
        "name": "main", "host": "smtp.example.jp", "port": 587, "tls": "required", "stream": "transactional",
        "username": "tayori", "new_password": "", "max_connections": 4,
        "max_per_connection": 100, "weight": 1, "active": "on"})
    assert crypto.decrypt(Relay.objects.get().password) == "s3cret-pass"
    owner_client.post(reverse("delivery:settings"), {"mode": "relays"})
    assert DeliverySettings.of(workspace).mode == "relays"


def test_a_sender_domain_gets_a_dkim_key_and_its_dns_record(owner, teammate):
    owner_client, analyst_client = signed_in(owner), signed_in(teammate)
    owner_client.post(reverse("delivery:domain-new"), {"domain": "example.jp",
                                                       "selector": "tayori", "ed25519": "on"})
    page = owner_client.get(reverse("delivery:settings"))
    assert b"tayori._domainkey.example.jp" in page.content
    assert b"tayori-ed._domainkey.example.jp" in page.content
    assert b"v=DKIM1; k=rsa; p=MIIB" in page.content
    assert b"PRIVATE KEY" not in page.content
    assert analyst_client.get(reverse("delivery:settings")).status_code == 403
