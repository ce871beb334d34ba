"""Sending by API: transactional messages and batches, bulk sends and their control, the log."""

import asyncio
import email
import email.policy

import pytest

from tayori.delivery.engine import Worker
from tayori.delivery.models import Delivery, OutboxMessage, Source
from tayori.members.models import Member, Segment, Suppression

MESSAGE = {"to": "taro@example.jp", "from_address": "support@example.jp",
           "subject": "【障害】{{ data.service }}の停止", "text": "{{ data.service }}: {{ data.since }}",
           "data": {"service": "決済API", "since": "03:12"}, "priority": "urgent"}


@pytest.fixture
def segment(workspace):
    Member.objects.bulk_create([Member(workspace=workspace, email=f"m{i}@example.jp")
                                for i in range(4)])
    return Segment.objects.create(workspace=workspace, name="all",
                                  definition={"op": "and", "conditions": []})


def test_an_urgent_message_is_queued_sent_and_read_back(api, workspace, transactional_db):
    response = api.post("/api/v1/messages", MESSAGE)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued" and body["address"] == "taro@example.jp"
    assert Delivery.objects.get(pk=body["id"]).priority == 9
    asyncio.run(Worker(name="api").drain())
    sent = api.get(f"/api/v1/messages/{body['id']}").json()
    assert sent["status"] == "sent" and sent["smtp_reply"].startswith("250")
    caught = OutboxMessage.objects.get()
    message = email.message_from_bytes(bytes(caught.raw), policy=email.policy.default)
    assert message["Subject"] == "【障害】決済APIの停止"
    assert message.get_content() == "決済API: 03:12"


def test_field_errors_name_the_field(api):
    bad = api.post("/api/v1/messages", {**MESSAGE, "text": "{% if %}", "to": "not an address"})
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["error"]["errors"]}
    assert fields == {"text", "to"}
    assert api.post("/api/v1/messages", {**MESSAGE, "to": None}).json()["error"]["field"] == "to"
    unknown = api.post("/api/v1/messages", {**MESSAGE, "to": None, "member_id": 999999})
    assert unknown.json()["error"]["field"] == "member_id"


def test_a_suppressed_recipient_is_skipped_with_the_reason(api, workspace):
    Suppression.objects.create(workspace=workspace, value="taro@example.jp", reason="complaint")
    body = api.post("/api/v1/messages", MESSAGE).json()
    assert (body["status"], body["skip_reason"]) == ("skipped", "suppressed")


def test_a_batch_answers_per_item(api):
    response = api.post("/api/v1/messages/batch", {"messages": [
        MESSAGE, {**MESSAGE, "to": "broken"}, {**MESSAGE, "to": "hanako@example.jp"}]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["queued", "error", "queued"]
    assert results[1]["error"]["field"] == "to" and results[1]["id"] is None
    assert Delivery.objects.count() == 2


def test_a_bulk_send_is_created_started_paused_and_refused_when_it_cannot(api, segment):
    created = api.post("/api/v1/sends", {"name": "冬", "segment_id": segment.pk,
                                         "from_address": "news@example.jp",
                                         "subject": "お知らせ", "text": "本文"})
    assert created.status_code == 201, created.content
    send_id = created.json()["id"]
    started = api.post(f"/api/v1/sends/{send_id}/start", {}).json()
    assert started["status"] == "running" and started["progress"]["queued"] == 4
    assert api.post(f"/api/v1/sends/{send_id}/resume", {}).status_code == 409
    paused = api.post(f"/api/v1/sends/{send_id}/pause", {}).json()
    assert paused["status"] == "paused" and paused["progress"]["held"] == 4
    listed = api.get("/api/v1/sends", {"kind": "bulk"}).json()["items"]
    assert [s["id"] for s in listed] == [send_id]
    assert api.post("/api/v1/sends", {"name": "x", "segment_id": 999999,
                                      "from_address": "news@example.jp", "subject": "s",
                                      "text": "t"}).json()["error"]["field"] == "segment_id"


def test_the_log_masks_addresses_for_keys_without_pii_rights(api, analyst_api, segment):
    send_id = api.post("/api/v1/sends", {"name": "冬", "segment_id": segment.pk,
                                         "from_address": "news@example.jp", "subject": "s",
                                         "text": "t"}).json()["id"]
    api.post(f"/api/v1/sends/{send_id}/start", {})
    rows = analyst_api.get("/api/v1/deliveries", {"source_id": send_id}).json()["items"]
    assert len(rows) == 4 and all(r["address"].startswith("m") and "***@" in r["address"]
                                  for r in rows)
    assert analyst_api.get("/api/v1/deliveries", {"address": "m1@example.jp"}).status_code == 403
    found = api.get("/api/v1/deliveries", {"address": "m1@example.jp"}).json()["items"]
    assert [r["address"] for r in found] == ["m1@example.jp"]
    assert analyst_api.post("/api/v1/messages", MESSAGE).status_code == 403
    assert Source.objects.filter(kind="transactional").count() == 0
