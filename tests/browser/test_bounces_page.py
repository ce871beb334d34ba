"""Bounces in Chromium, in the Japanese UI: the analysis page draws its charts from the stored
bounces and names each reason, and a member's page loads that member's bounce history."""

import datetime as dt
import re

import pytest
from django.utils import timezone, translation
from playwright.sync_api import expect

from tayori.delivery.models import Delivery, Source
from tayori.inbound.models import Bounce
from tayori.inbound.reasons import LABELS
from tayori.members.models import Member
from tests.browser.test_walk import SCREENSHOTS, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bounced(workspace):
    """A winter sale that came back: two unknown users (one at docomo) yesterday and a full
    mailbox today."""
    source = Source.objects.create(workspace=workspace, name="冬のセール", status="done",
                                   from_address="news@example.jp", subject="冬のセール")
    now = timezone.now()
    rows = []
    for address, reason, hard, at in (
            ("taro@docomo.ne.jp", "userunknown", True, now - dt.timedelta(days=1)),
            ("hanako@example.jp", "userunknown", True, now - dt.timedelta(days=1)),
            ("jiro@example.jp", "mailboxfull", False, now)):
        member = Member.objects.create(workspace=workspace, email=address)
        delivery = Delivery.objects.create(workspace=workspace, source=source, member=member,
                                           address=address, status="sent")
        rows.append(Bounce.objects.create(
            workspace=workspace, delivery=delivery, source=source, member=member,
            address=address, domain=address.rpartition("@")[2], reason=reason, hard=hard,
            status="5.1.1" if hard else "4.2.2", received_at=at,
            diagnostic=f"550 5.1.1 <{address}>: User unknown" if hard else "452 Mailbox full"))
    return rows


def chart(page, key: str) -> dict:
    return page.evaluate(
        "key => { const c = Chart.getChart(document.querySelector(`canvas[data-chart=${key}]`));"
        " return c && {labels: c.data.labels, data: c.data.datasets.map(d => d.data)}; }", key)


def test_the_bounce_page_draws_its_charts_and_a_member_shows_its_history(page, owner,
                                                                         bounced):
    with translation.override("ja"):
        unknown_user, mailbox_full = str(LABELS["userunknown"]), str(LABELS["mailboxfull"])
    sign_in(page, owner.email)
    page.locator("aside.sidebar a[href='/mail/inbound/bounces/']").click()
    expect(page).to_have_url(re.compile(r"/mail/inbound/bounces/$"))
    expect(page.locator("html")).to_have_attribute("lang", "ja")

    expect(page.locator("[data-testid=bounce-total]")).to_have_text("3")
    expect(page.locator("[data-testid=bounce-reasons] tr[data-reason=userunknown]")
           ).to_contain_text(unknown_user)
    reasons = chart(page, "reasons")
    assert reasons["labels"] == [unknown_user, mailbox_full] and reasons["data"] == [[2, 1]]
    days = chart(page, "days")
    assert len(days["labels"]) == 30 and [sum(d) for d in days["data"]] == [3, 0]
    assert days["data"][0][-2:] == [2, 1]  # yesterday and today
    expect(page.locator("[data-testid=bounce-domains] tr[data-domain='docomo.ne.jp'] "
                        "[data-testid=carrier]")).to_have_text("docomo")
    page.screenshot(path=str(SCREENSHOTS / "bounces.png"), full_page=True)

    taro = bounced[0]
    page.locator(f"[data-testid=bounce-list] a[href='/members/{taro.member_id}/']").click()
    expect(page).to_have_url(re.compile(rf"/members/{taro.member_id}/$"))
    history = page.locator("[data-testid=member-bounces]")
    expect(history.locator("tr[data-kind=bounce]")).to_have_count(1)
    expect(history).to_contain_text(unknown_user)
    expect(history).to_contain_text("5.1.1")
    page.screenshot(path=str(SCREENSHOTS / "member-bounces.png"), full_page=True)
