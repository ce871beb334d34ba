"""A newcomer's first send, in Chromium: a personalized mail to a segment, started from its page,
watched while a worker sends it, then read in the sandbox outbox and found in the delivery log."""

import asyncio
import re
import threading

import pytest
from playwright.sync_api import expect

from tayori.delivery.engine import Worker
from tayori.members.models import Attribute, Member, Segment
from tests.browser.test_walk import SCREENSHOTS, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def send_queued_mail() -> None:
    """Run a worker until the queue is empty, in a thread of its own: Playwright's loop owns
    this one."""
    thread = threading.Thread(target=lambda: asyncio.run(Worker(name="browser").drain()))
    thread.start()
    thread.join(timeout=60)


def test_a_first_send_lands_in_the_sandbox_outbox(page, owner, workspace):
    Attribute.objects.create(workspace=workspace, key="name", label="氏名", pii=True)
    Member.objects.bulk_create([
        Member(workspace=workspace, email="taro@example.jp", attributes={"name": "山田太郎"}),
        Member(workspace=workspace, email="hanako@example.jp", attributes={"name": "佐藤花子"}),
        Member(workspace=workspace, email="gone@example.jp", status="unsubscribed",
               attributes={"name": "退会者"})])
    Segment.objects.create(workspace=workspace, name="全員",
                           definition={"op": "and", "conditions": []})
    sign_in(page, owner.email)

    page.locator("aside.sidebar a[href='/mail/sends/']").click()
    page.locator("a[href='/mail/sends/new/']").click()
    page.locator("#id_name").fill("冬のセールのお知らせ")
    page.locator("#id_segment").select_option(label="全員")
    page.locator("#id_from_address").fill("news@example.jp")
    page.locator("#id_from_name").fill("便りストア")
    page.locator("#id_subject").fill("{{ member.name }}様 冬のセールのご案内")
    page.locator("#id_html").fill("<p>{{ member.name }}様</p><p>髙島屋で冬のセールを開催します。</p>")
    page.locator("form button[type=submit].primary").click()
    expect(page).to_have_url(re.compile(r"/mail/sends/\d+/$"))
    expect(page.locator("[data-testid=send-status]")).to_have_text("下書き")

    page.locator("form[action$='/start/'] button").click()
    expect(page.locator("[data-testid=send-status]")).to_have_text("配信中")
    send_queued_mail()
    page.reload()
    expect(page.locator("[data-testid=send-sent]")).to_have_text("2")
    expect(page.locator("#send-progress")).to_contain_text("配信停止")  # skipped, with reason
    page.screenshot(path=str(SCREENSHOTS / "send-progress.png"), full_page=True)

    page.locator("aside.sidebar a[href='/mail/outbox/']").click()
    rows = page.locator("[data-testid=outbox] tbody tr")
    expect(rows).to_have_count(2)
    page.locator("[data-testid=outbox] tbody tr", has_text="taro@example.jp").locator("a").first.click()
    expect(page.locator("h1")).to_have_text("山田太郎様 冬のセールのご案内")
    frame = page.frame_locator("iframe.mail-preview")
    expect(frame.locator("body")).to_contain_text("髙島屋で冬のセールを開催します。")
    page.screenshot(path=str(SCREENSHOTS / "outbox-message.png"), full_page=True)

    page.locator("aside.sidebar a[href='/mail/deliveries/']").click()
    page.locator("input[name=q]").fill("gone@example.jp")
    page.locator("form.filters button[type=submit]").click()
    log = page.locator("[data-testid=delivery-log] tbody tr")
    expect(log).to_have_count(1)
    expect(log.first).to_contain_text("配信停止")
