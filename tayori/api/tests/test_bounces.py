"""Bounces and complaints over the API: filters, masking, address search refused without PII,
and a message's status telling its bounce."""

import pytest

from tayori.api.tests.helpers import error_of
from tayori.delivery.models import Delivery, Source
from tayori.inbound.consequences import Evidence, record_bounce, record_complaint
from tayori.members.models import Member

pytestmark = pytest.mark.django_db


@pytest.fixture
def came_back(workspace):
    source = Source.objects.create(workspace=workspace, kind="transactional", name="注文確認",
                                   status="done", from_address="shop@example.jp", subject="s",
                                   text="t")
    rows = {}
    for address in ("gone@example.co.jp", "k@docomo.ne.jp", "angry@example.co.jp"):
        member = Member.objects.create(workspace=workspace, email=address)
        rows[address] = Delivery.objects.create(workspace=workspace, source=source,
                                                member=member, address=address, status="sent")
    record_bounce(rows["gone@example.co.jp"], Evidence(
        "gone@example.co.jp", "userunknown", True, "5.1.1",
        "550 5.1.1 <gone@example.co.jp>: User unknown",
        "mx.example.co.jp"), workspace_id=workspace.pk)
    record_bounce(rows["k@docomo.ne.jp"], Evidence("k@docomo.ne.jp", "filtered", False, "5.0.0",
                                                   "550 Unknown user"), workspace_id=workspace.pk)
    record_complaint(rows["angry@example.co.jp"], workspace_id=workspace.pk,
                     address="angry@example.co.jp", reporter="ExampleFBL/1.0")
    return rows


def test_bounces_are_listed_with_their_reason_and_filtered(api, came_back):
    items = api.get("/api/v1/bounces").json()["items"]
    assert [(b["address"], b["reason"], b["hard"], b["counts"]) for b in items] == [
        ("gone@example.co.jp", "userunknown", True, True),
        ("k@docomo.ne.jp", "filtered", False, False)]
    assert items[0]["action"] and not items[1]["action"]  # only the unknown user suppressed
    hard = api.get("/api/v1/bounces?hard=true").json()["items"]
    assert [b["reason"] for b in hard] == ["userunknown"]
    by_address = api.get("/api/v1/bounces?address=k@docomo.ne.jp").json()["items"]
    assert [b["reason"] for b in by_address] == ["filtered"]
    one = api.get(f"/api/v1/bounces/{items[0]['id']}").json()
    assert one["status"] == "5.1.1" and one["remote_mta"] == "mx.example.co.jp"
    assert api.get("/api/v1/bounces?reason=nonsense").status_code == 422


def test_complaints_are_listed(api, came_back):
    items = api.get("/api/v1/complaints").json()["items"]
    assert [(c["address"], c["reporter"]) for c in items] == [
        ("angry@example.co.jp", "ExampleFBL/1.0")]


def test_addresses_are_masked_without_the_pii_right(analyst_api, came_back):
    items = analyst_api.get("/api/v1/bounces").json()["items"]
    assert all("gone@" not in b["address"] and "k@docomo" not in b["address"] for b in items)
    assert "gone@" not in items[0]["diagnostic"] and "go***@example.co.jp" in items[0]["diagnostic"]
    delivery = came_back["gone@example.co.jp"]
    events = analyst_api.get(f"/api/v1/messages/{delivery.pk}").json()["events"]
    assert all("gone@" not in (e.get("reply") or "") for e in events)
    refused = analyst_api.get("/api/v1/bounces?address=gone@example.co.jp")
    assert refused.status_code == 403 and "members.view_pii" in error_of(refused)["message"]


def test_a_message_status_tells_its_bounce(api, came_back):
    delivery = came_back["gone@example.co.jp"]
    events = api.get(f"/api/v1/messages/{delivery.pk}").json()["events"]
    bounced = [e for e in events if e["type"] == "bounced"]
    assert bounced and bounced[0]["reason"] == "userunknown" and bounced[0]["hard"] is True
