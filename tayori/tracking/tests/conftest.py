"""A campaign-like send already in the sandbox outbox, and the tracking links its mails carry."""

import asyncio
import email
import email.policy
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from tayori.delivery import queue, sending
from tayori.delivery.engine import Worker
from tayori.delivery.models import Delivery, DeliverySettings, OutboxMessage
from tayori.members.models import Member, Segment

HTML = """<html><body><p>{{ member.name }}様</p>
<p><a href="https://shop.example.jp/sale?from=mail&amp;x=1">セール会場へ</a></p>
<p><a href="https://shop.example.jp/guide">ご利用ガイド</a></p>
<p><a href="{{ tayori.web }}">ブラウザで見る</a></p></body></html>"""


@dataclass
class Mail:
    delivery: Delivery
    clicks: list[str]  # paths, by link index
    open: str
    web: str
    unsubscribe: str


def _path(url: str) -> str:
    return urlsplit(url).path


def mails_of(workspace) -> dict[str, Mail]:
    found = {}
    for row in OutboxMessage.objects.filter(workspace=workspace).select_related("delivery"):
        message = email.message_from_bytes(bytes(row.raw), policy=email.policy.default)
        html = message.get_body(("html",)).get_content()
        hrefs = re.findall(r'href="([^"]+)"', html)
        pixel = re.search(r'<img src="([^"]+/t/o/[^"]+)"', html).group(1)
        unsubscribe = re.search(r"<(https?://[^>]+/t/u/[^>]+)>", message["List-Unsubscribe"])
        found[row.recipient] = Mail(
            row.delivery, [_path(h) for h in hrefs if "/t/c/" in h], _path(pixel),
            next(_path(h) for h in hrefs if "/t/w/" in h), _path(unsubscribe.group(1)))
    return found


@pytest.fixture
def sent(workspace) -> dict[str, Mail]:
    """Three members' mails with two tracked links each, sent through the real engine."""
    DeliverySettings.objects.create(workspace=workspace, tracking_host="t.example.jp")
    Member.objects.bulk_create([
        Member(workspace=workspace, email=f"{name}@example.jp", attributes={"name": name})
        for name in ("taro", "hanako", "jiro")])
    everyone = Segment.objects.create(workspace=workspace, name="all",
                                      definition={"op": "and", "conditions": []})
    source = sending.create_bulk(workspace, sending.Content(
        subject="冬のセール", html=HTML, text="{{ member.name }}様", from_address="news@example.jp",
        tracking=True), name="冬のセール", segment=everyone)
    queue.start(source)
    asyncio.run(Worker(name="test").drain())
    return mails_of(workspace)
