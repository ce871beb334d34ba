"""The page a notice mail links to: the recipient's own notices, newest first, reached only by
the signed link in their mail, for 180 days."""

import asyncio
import datetime as dt
import email
import email.policy
import re

import pytest
from django.test import Client

from tayori.delivery import tokens
from tayori.delivery.engine import Worker
from tayori.delivery.models import Delivery, DeliverySettings, OutboxMessage, Source
from tayori.incidents import notices
from tayori.incidents.tests.conftest import outage_fields, request_by

pytestmark = pytest.mark.django_db(transaction=True)
LINK = re.compile(r"https?://\S+/t/n/[0-9a-f]+")


@pytest.fixture
def told(workspace, owner, starter, merchants):
    """An outage for payment_api and transfer, then its recovery for transfer alone, sent."""
    DeliverySettings.objects.create(workspace=workspace, tracking_host="http://testserver")
    outage = notices.confirm(notices.draft(starter["障害発生"], outage_fields(),
                                           request=request_by(owner)), request=request_by(owner))
    recovery = notices.draft(starter["障害復旧"], {
        "services": ["transfer"], "started_at": "2026-11-30T03:12",
        "recovered_at": "2026-11-30T04:40"}, request=request_by(owner), incident=outage.incident)
    notices.confirm(recovery, request=request_by(owner))
    asyncio.run(Worker(name="history").drain())
    return outage


def link_in_mail(address: str) -> str:
    raw = OutboxMessage.objects.filter(recipient=address).order_by("-id").first().raw
    text = email.message_from_bytes(bytes(raw), policy=email.policy.default).get_body(
        ("plain",)).get_content()
    return LINK.search(text).group(0).removeprefix("http://testserver")


def test_the_mail_links_to_the_recipient_s_notices(told):
    page = Client().get(link_in_mail("b@merchant.example.jp"))
    assert page.status_code == 200
    body = page.content.decode()
    subjects = re.findall(r"<h2>(.*?)</h2>", body)
    assert subjects == ["【復旧】送金APIの障害は復旧しました",
                        "【障害発生】決済API、送金APIに障害が発生しています"]
    assert "b***@merchant.example.jp" in body and "■ 復旧日時: 2026年11月30日（月）04:40" in body
    assert page["X-Robots-Tag"] == "noindex"


def test_it_shows_only_that_recipient_s_notices(told, other_workspace):
    # The same merchant's address in another workspace, told of something else there.
    theirs = Source.objects.create(workspace=other_workspace, kind="notice", name="theirs",
                                   from_address="x@other.example", subject="他社のお知らせ",
                                   text="secret", status="done")
    Delivery.objects.create(workspace=other_workspace, source=theirs, address="a@merchant.example.jp",
                            status="sent", sent_at=theirs.created_at)
    body = Client().get(link_in_mail("a@merchant.example.jp")).content.decode()
    assert len(re.findall(r"<h2>", body)) == 1  # a uses payment_api only: no recovery
    assert "他社" not in body and "b@merchant" not in body and "b***" not in body


def test_a_forged_altered_or_old_link_is_not_found(told):
    path = link_in_mail("e@merchant.example.jp")
    token = path.rsplit("/", 1)[1]
    client = Client()
    assert client.get(path[:-2] + ("00" if not path.endswith("00") else "11")).status_code == 404
    other_purpose = tokens.make(tokens.WEB, Delivery.objects.first().pk)
    assert client.get(f"/t/n/{other_purpose}").status_code == 404
    assert client.get("/t/n/not-hex").status_code == 404
    delivery_id = tokens.read(tokens.NOTICES, token)[0]
    Delivery.objects.filter(pk=delivery_id).update(
        queued_at=Delivery.objects.get(pk=delivery_id).queued_at - dt.timedelta(days=181))
    assert client.get(path).status_code == 404


def test_a_notice_not_yet_sent_is_not_listed(told, owner, starter):
    notices.draft(starter["障害発生"], outage_fields(), request=request_by(owner))  # a draft
    body = Client().get(link_in_mail("e@merchant.example.jp")).content.decode()
    assert len(re.findall(r"<h2>", body)) == 2
