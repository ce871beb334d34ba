"""The incident console at 3 a.m., in Chromium, in the Japanese UI: the owner creates the example
notice types with one button; a newly created operator with the Approver role signs in and,
by keyboard alone, sends a 障害発生 notice for two of five services — checking the exact count
and a sample first — within a minute; a worker sends it; exactly the affected merchants got it;
the operator starts the recovery notice from the outage's page with its fields filled in and
sends it; a merchant opens the link in their mail and reads both notices."""

import email
import email.policy
import re
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from conftest import PASSWORD, make_operator
from tayori.delivery import scheduler
from tayori.delivery.models import Delivery, DeliverySettings, OutboxMessage
from tayori.incidents.models import Notice
from tayori.incidents.tests.conftest import AFFECTED, MERCHANTS
from tayori.members.models import Member, Suppression
from tests.browser.test_sending import send_queued_mail
from tests.browser.test_walk import SCREENSHOTS, sign_in, sign_out

pytestmark = pytest.mark.django_db(transaction=True)
# MERCHANTS are the console's unit-test merchants: the outage hits 決済API and 送金API, so a, b
# and e (unsubscribed, still told) receive it (AFFECTED); f bounced and g is suppressed.
JST = ZoneInfo("Asia/Tokyo")

LINK = re.compile(r"https?://\S+/t/n/[0-9a-f]+")


@pytest.fixture
def merchants(workspace, live_server):
    for address, services, status in MERCHANTS:
        Member.objects.create(workspace=workspace, email=address, status=status,
                              attributes={"services": services} if services else {})
    Suppression.objects.create(workspace=workspace, value="g@merchant.example.jp",
                               reason="complaint")
    # Mail links (the notice history) point at this server.
    DeliverySettings.objects.create(workspace=workspace, tracking_host=live_server.url)


@pytest.fixture
def night_operator(workspace):
    """Joined the team today: the Approver role, which may send notices."""
    return make_operator(workspace, "night@sample.jp", "Approver")


def create_example_types(page: Page) -> None:
    page.goto("/notices/")
    starter = page.locator("[data-testid=starter]")
    expect(starter).to_be_visible()
    page.locator("#starter-from-address").fill("status@pay.example.jp")
    starter.locator("button[type=submit]").click()
    expect(page.locator("[data-testid=type-choice]")).to_have_count(4)


def sign_in_by_keyboard(page: Page, email_address: str) -> None:
    page.goto("/login/")
    page.locator("#id_email").focus()
    page.keyboard.type(email_address)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("aside.sidebar")).to_be_visible()


def tab_to(page: Page, selector: str, limit: int = 40) -> None:
    """Press Tab until the focused element matches ``selector`` (as a person would)."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def pick_service(page: Page, words: str) -> None:
    """Type in the filter until one service is left; Enter ticks it."""
    page.keyboard.type(words)
    expect(page.locator(".service-picker label[data-text]:visible")).to_have_count(1)
    page.keyboard.press("Enter")


def sent_to(notice: Notice) -> set[str]:
    return set(Delivery.objects.filter(source=notice.source, status="sent").values_list(
        "address", flat=True))


def test_a_new_operator_tells_exactly_the_affected_merchants_and_then_of_the_recovery(
        page, live_server, owner, night_operator, merchants):
    sign_in(page, owner.email)
    create_example_types(page)
    sign_out(page)

    sign_in_by_keyboard(page, night_operator.email)
    began = time.monotonic()
    page.goto("/notices/")
    # Screen 1: the first type has the focus; its number key opens it.
    expect(page.locator("html[data-console=ready]")).to_have_count(1)
    expect(page.locator("[data-testid=type-choice]").first).to_be_focused()
    expect(page.locator("[data-testid=type-choice]").first).to_contain_text("障害発生")
    page.keyboard.press("1")

    # Screen 2: the service filter has the focus; the start time is now, in JST.
    expect(page).to_have_url(re.compile(r"/notices/new/\d+/$"))
    expect(page.locator("input[data-filter]")).to_be_focused()
    started = datetime.strptime(page.locator("input[name=f-started_at]").input_value(),
                                "%Y-%m-%dT%H:%M").replace(tzinfo=JST)
    assert abs(started - datetime.now(JST)) < timedelta(minutes=2)
    pick_service(page, "決済API")
    pick_service(page, "送金")
    expect(page.locator("input[name=f-services]:checked")).to_have_count(2)
    expect(page.locator("#recipient-count")).to_contain_text("3")  # counted as ticked
    tab_to(page, "input[name=f-impact]")
    page.keyboard.press("Space")
    expect(page.locator("input[name=f-impact][value=全面停止]")).to_be_checked()
    tab_to(page, "input[name=f-next_update]")
    page.keyboard.type("1時間後を目途に")
    page.screenshot(path=str(SCREENSHOTS / "incident-form.png"), full_page=True)
    page.keyboard.press("Control+Enter")

    # Screen 3: the mail as it will read, the exact count and a sample; Enter confirms.
    expect(page).to_have_url(re.compile(r"/notices/\d+/$"))
    expect(page.locator("#recipient-total")).to_have_attribute("data-count", "3")
    expect(page.locator("#notice-subject")).to_have_text(
        "【障害発生】決済API、送金APIに障害が発生しています")
    expect(page.locator("#notice-text")).to_contain_text("■ 次回のご案内: 1時間後を目途に")
    sample = page.locator("[data-testid=sample] tbody tr")
    expect(sample).to_have_count(3)
    expect(sample.first).to_contain_text("a***@merchant.example.jp")  # no PII right: masked
    page.screenshot(path=str(SCREENSHOTS / "incident-confirm.png"), full_page=True)
    confirm = page.locator("[data-testid=confirm-send]")
    expect(confirm).to_be_focused()
    page.keyboard.press("Enter")

    # Screen 4: sent, on the urgent lane.
    expect(page.locator("[data-testid=progress]")).to_be_visible()
    clicking = time.monotonic() - began
    print(f"\nincident console: outage notice confirmed {clicking:.1f} s after opening it")
    assert clicking < 60
    outage = Notice.objects.get(type__name="障害発生")
    assert outage.status == "sent" and outage.source.priority == 9
    assert outage.created_by == night_operator

    send_queued_mail()
    scheduler.tick()  # marks the finished send done
    assert sent_to(outage) == AFFECTED
    assert {m.recipient for m in OutboxMessage.objects.all()} == AFFECTED
    skipped = dict(Delivery.objects.filter(source=outage.source, status="skipped")
                   .values_list("address", "skip_reason"))
    assert skipped == {"f@merchant.example.jp": "bounced", "g@merchant.example.jp": "suppressed"}
    page.reload()
    expect(page.locator("[data-testid=sent]")).to_have_text("3")
    expect(page.locator("[data-testid=delivery-log] tbody tr")).to_have_count(5)
    page.screenshot(path=str(SCREENSHOTS / "incident-sent.png"), full_page=True)

    # The recovery starts from the outage's page with its services and start time filled in.
    follow_up = page.locator("[data-testid=follow-up]")
    expect(follow_up).to_contain_text("障害復旧")
    expect(follow_up).to_be_focused()
    recovery_began = time.monotonic()
    page.keyboard.press("Enter")
    expect(page.locator("[data-testid=follows]")).to_be_visible()
    expect(page.locator("input[name=f-services]:checked")).to_have_count(2)
    expect(page.locator("input[name=f-services][value=payment_api]")).to_be_checked()
    expect(page.locator("input[name=f-services][value=transfer]")).to_be_checked()
    expect(page.locator("input[name=f-started_at]")).to_have_value(
        started.strftime("%Y-%m-%dT%H:%M"))
    expect(page.locator("#recipient-count")).to_contain_text("3")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#recipient-total")).to_have_attribute("data-count", "3")
    expect(page.locator("#notice-subject")).to_have_text("【復旧】決済API、送金APIの障害は復旧しました")
    expect(page.locator("[data-testid=confirm-send]")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("[data-testid=progress]")).to_be_visible()
    print(f"incident console: recovery notice confirmed {time.monotonic() - recovery_began:.1f} s "
          "after starting it")
    recovery = Notice.objects.get(type__name="障害復旧")
    assert recovery.incident_id == outage.incident_id and recovery.status == "sent"
    send_queued_mail()
    assert sent_to(recovery) == AFFECTED

    # A merchant follows the link in the mail to the notices sent to them.
    raw = OutboxMessage.objects.filter(recipient="b@merchant.example.jp").order_by("-id")[0].raw
    text = email.message_from_bytes(bytes(raw), policy=email.policy.default).get_body(
        ("plain",)).get_content()
    page.goto(LINK.search(text).group(0))
    notices = page.locator("[data-testid=history-notice] h2")
    expect(notices).to_have_count(2)
    expect(notices.first).to_have_text("【復旧】決済API、送金APIの障害は復旧しました")
    expect(notices.nth(1)).to_have_text("【障害発生】決済API、送金APIに障害が発生しています")
    page.screenshot(path=str(SCREENSHOTS / "incident-history.png"), full_page=True)
