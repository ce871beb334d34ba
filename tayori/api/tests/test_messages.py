"""Transactional messages by API: recipients by member id, email or phone, templates and sender
identities, attachments, sending later and cancelling, and the status with its event history."""

import asyncio
import base64
import datetime as dt
import email
import email.policy

import pytest
from django.utils import timezone

from tayori.accounts.models import AuditEvent
from tayori.api.tests.helpers import Api, error_of
from tayori.content.models import SenderIdentity, Template, TemplateFile
from tayori.delivery.engine import Worker
from tayori.delivery.models import Delivery, OutboxMessage
from tayori.members.models import Member
from tayori.tracking.models import Event, Link

INLINE = {"from_address": "support@example.jp", "subject": "ご注文 {{ data.order }}",
          "text": "{% for item in data['items'] %}{{ item.name }} ×{{ item.qty }}\n{% endfor %}",
          "data": {"order": "A-1", "items": [{"name": "緑茶", "qty": 2}]}}
PDF = base64.b64encode(b"%PDF-1.4 receipt").decode()


@pytest.fixture
def hanako(workspace):
    return Member.objects.create(workspace=workspace, email="hanako@example.jp",
                                 phone="+819012345678", attributes={"name": "花子"})


def sent_message(to: str):
    asyncio.run(Worker(name="api").drain())
    caught = OutboxMessage.objects.get(recipient=to)
    return email.message_from_bytes(bytes(caught.raw), policy=email.policy.default)


def test_a_member_is_reached_by_id_or_phone(api, hanako, transactional_db):
    by_id = api.post("/api/v1/messages", {**INLINE, "member_id": hanako.pk})
    by_phone = api.post("/api/v1/messages", {**INLINE, "phone": "090-1234-5678"})
    assert by_id.status_code == by_phone.status_code == 201
    assert by_id.json()["member_id"] == by_phone.json()["member_id"] == hanako.pk
    assert by_phone.json()["address"] == "hanako@example.jp"


def test_recipient_errors_name_the_field(api, hanako):
    cases = [({"to": "hanako@example.jp", "member_id": hanako.pk}, "member_id"),
             ({}, "to"), ({"phone": "03-0000-0000"}, "phone"), ({"phone": "abc"}, "phone"),
             ({"member_id": 10**12}, "member_id")]
    for recipient, field in cases:
        response = api.post("/api/v1/messages", {**INLINE, **recipient})
        assert response.status_code == 422, recipient
        assert error_of(response)["field"] == field, recipient


def test_external_addresses_need_their_own_permission(client, issue_key, hanako):
    _key, raw = issue_key({"messages.send", "deliveries.view"})
    members_only = Api(client, raw)
    outside = members_only.post("/api/v1/messages", {**INLINE, "to": "stranger@example.org"})
    assert outside.status_code == 403 and error_of(outside)["field"] == "to"
    inside = members_only.post("/api/v1/messages", {**INLINE, "to": "hanako@EXAMPLE.JP"})
    assert inside.status_code == 201
    assert Delivery.objects.count() == 1


def test_a_template_with_a_sender_identity(api, workspace, hanako, transactional_db):
    identity = SenderIdentity.objects.create(
        workspace=workspace, label="shop", from_address="shop@example.jp", from_name="茶舗",
        organization="株式会社サンプル", postal_address="東京都千代田区1-1")
    template = Template.objects.create(
        workspace=workspace, name="receipt", subject="{{ member.name }}様 領収書",
        blocks=[{"kind": "text", "text": "ご注文 {{ data.order }} の領収書です。"},
                {"kind": "footer"}])
    TemplateFile.objects.create(template=template, filename="terms.pdf",
                                content_type="application/pdf", data=b"%PDF terms", size=10)
    response = api.post("/api/v1/messages", {
        "member_id": hanako.pk, "template_id": template.pk, "sender_id": identity.pk,
        "data": {"order": "A-9"},
        "attachments": [{"filename": "領収書.pdf", "content": PDF}]})
    assert response.status_code == 201, response.content
    message = sent_message("hanako@example.jp")
    assert message["Subject"] == "花子様 領収書"
    assert "茶舗" in message["From"] and "shop@example.jp" in message["From"]
    assert "A-9" in message.get_body(("plain",)).get_content()
    assert "株式会社サンプル" in message.get_body(("html",)).get_content()
    files = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    assert files == {"terms.pdf": b"%PDF terms", "領収書.pdf": b"%PDF-1.4 receipt"}


def test_template_errors(api, workspace, other_workspace, hanako):
    theirs = Template.objects.create(workspace=other_workspace, name="x", subject="x")
    for body, field in [({"template_id": theirs.pk}, "template_id"),
                        ({"template_id": theirs.pk, "subject": "x"}, "template_id"),
                        ({"sender_id": 999999, "subject": "x", "text": "x"}, "sender_id")]:
        response = api.post("/api/v1/messages", {"member_id": hanako.pk, **body})
        assert response.status_code == 422 and error_of(response)["field"] == field, body
    no_sender = api.post("/api/v1/messages", {"member_id": hanako.pk, "subject": "x",
                                              "text": "x"})
    assert error_of(no_sender)["field"] == "from_address"


@pytest.mark.parametrize("attachment, field", [
    ({"filename": "a.pdf", "content": "not base64!"}, "attachments[0].content"),
    ({"filename": "setup.exe", "content": PDF}, "attachments[0].filename"),
    ({"filename": "../a.pdf", "content": PDF}, "attachments[0].filename"),
    ({"filename": "setup.exe. ", "content": PDF}, "attachments[0].filename"),
    ({"filename": "a.png", "content": PDF, "content_id": "x>\r\nX-Injected: yes\r\n\r\n.<y"},
     "attachments[0].content_id"),
    ({"filename": "a.pdf", "content": PDF, "content_type": "application/\tpdf"},
     "attachments[0].content_type"),
    ({"filename": "a.pdf", "content": PDF, "content_type": "pdf"},
     "attachments[0].content_type"),
    ({"filename": "big.bin", "content": base64.b64encode(b"x" * (10 * 2**20 + 1)).decode()},
     "attachments[0].content"),
])
def test_attachment_errors(api, hanako, attachment, field):
    response = api.post("/api/v1/messages", {**INLINE, "member_id": hanako.pk,
                                             "attachments": [attachment]})
    assert response.status_code == 422 and error_of(response)["field"] == field
    assert not Delivery.objects.exists()


def test_a_message_for_later_can_be_cancelled(api, hanako):
    later = (timezone.now() + dt.timedelta(hours=2)).isoformat()
    created = api.post("/api/v1/messages", {**INLINE, "member_id": hanako.pk, "send_at": later})
    assert created.status_code == 201 and created.json()["status"] == "held"
    status = api.get(f"/api/v1/messages/{created.json()['id']}").json()
    assert status["send_at"] and [e["type"] for e in status["events"]] == ["queued", "scheduled"]
    cancelled = api.post(f"/api/v1/messages/{created.json()['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = api.post(f"/api/v1/messages/{created.json()['id']}/cancel")
    assert again.status_code == 409
    assert AuditEvent.objects.filter(action="message.cancelled").count() == 1
    too_late = (timezone.now() + dt.timedelta(days=31)).isoformat()
    refused = api.post("/api/v1/messages", {**INLINE, "member_id": hanako.pk,
                                            "send_at": too_late})
    assert error_of(refused)["field"] == "send_at"


def test_the_status_tells_the_messages_story(api, workspace, hanako, transactional_db):
    created = api.post("/api/v1/messages", {**INLINE, "member_id": hanako.pk}).json()
    asyncio.run(Worker(name="api").drain())
    delivery = Delivery.objects.get(pk=created["id"])
    Link.objects.create(source=delivery.source, index=0, url="https://shop.example.jp/a")
    later = delivery.sent_at + dt.timedelta(minutes=5)
    for kind, extra in [("open", {"machine": "proxy"}), ("open", {}),
                        ("click", {"link_index": 0}), ("conversion", {"value": 3200})]:
        later += dt.timedelta(seconds=1)
        Event.objects.create(workspace=workspace, source=delivery.source, delivery=delivery,
                             member=hanako, kind=kind, at=later, **extra)
    status = api.get(f"/api/v1/messages/{delivery.pk}").json()
    story = [(e["type"], e.get("machine"), e.get("url"), e.get("value"))
             for e in status["events"]]
    assert story == [("queued", None, None, None), ("sent", None, None, None),
                     ("opened", "proxy", None, None), ("opened", None, None, None),
                     ("clicked", None, "https://shop.example.jp/a", None),
                     ("converted", None, None, 3200)]
    assert status["events"][1]["reply"].startswith("250")


def test_a_skipped_message_says_why_in_its_story(api, hanako):
    hanako.status = "bounced"
    hanako.save()
    created = api.post("/api/v1/messages", {**INLINE, "member_id": hanako.pk}).json()
    events = api.get(f"/api/v1/messages/{created['id']}").json()["events"]
    assert events[-1]["type"] == "skipped" and events[-1]["reason"] == "bounced"


def test_a_batch_carries_each_items_error_code(api, hanako):
    response = api.post("/api/v1/messages/batch", {"messages": [
        {**INLINE, "member_id": hanako.pk},
        {**INLINE, "to": "x@example.org", "attachments": [{"filename": "a.exe", "content": PDF}]},
    ]})
    results = response.json()["results"]
    assert results[0]["status"] == "queued"
    assert results[1]["error"]["field"] == "attachments[0].filename"
    assert results[1]["error"]["code"] == "validation_error"


def test_a_batch_costs_a_few_statements_whatever_its_size(api, hanako, django_assert_max_num_queries):
    messages = [{**INLINE, "to": f"buyer{i}@example.org", "data": {"order": f"A-{i}", "items": []}}
                for i in range(200)] + [{**INLINE, "member_id": hanako.pk}]
    with django_assert_max_num_queries(25):
        response = api.post("/api/v1/messages/batch", {"messages": messages})
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["queued"] * 201
    assert len({r["id"] for r in results}) == 201
    assert Delivery.objects.filter(member=hanako).count() == 1
    assert Delivery.objects.get(address="buyer7@example.org").data["order"] == "A-7"


def test_a_message_a_worker_has_claimed_cannot_be_cancelled(api, hanako):
    created = api.post("/api/v1/messages", {**INLINE, "member_id": hanako.pk}).json()
    Delivery.objects.filter(pk=created["id"]).update(status="claimed")
    refused = api.post(f"/api/v1/messages/{created['id']}/cancel")
    assert refused.status_code == 409 and error_of(refused)["field"] == "status"
    assert Delivery.objects.get(pk=created["id"]).source.status == "running"
