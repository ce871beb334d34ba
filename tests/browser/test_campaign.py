"""A campaign's whole path in Chromium, in the Japanese UI: the owner builds a template from
blocks (one shown only to Tokyo members, a subject variant for them, a shared footer), previews
it as two members, asks for two approvals; two other operators approve it in their own
browsers; the owner schedules it and reads each member's own variant in the sandbox outbox."""

import re

import pytest
from playwright.sync_api import Page, expect

from conftest import make_operator
from tayori.accounts.models import Role
from tayori.content.models import SenderIdentity
from tayori.delivery import scheduler
from tayori.members.models import Attribute, Member, Segment
from tests.browser.test_sending import send_queued_mail
from tests.browser.test_walk import SCREENSHOTS, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def audience(workspace):
    Attribute.objects.create(workspace=workspace, key="pref", label="都道府県")
    Member.objects.create(workspace=workspace, email="tokyo@example.jp",
                          attributes={"pref": "東京都"})
    Member.objects.create(workspace=workspace, email="osaka@example.jp",
                          attributes={"pref": "大阪府"})
    Segment.objects.create(workspace=workspace, name="全員",
                           definition={"op": "and", "conditions": []})
    Segment.objects.create(workspace=workspace, name="東京", definition={
        "op": "and", "conditions": [{"field": "pref", "operator": "equals", "value": "東京都"}]})
    SenderIdentity.objects.create(
        workspace=workspace, label="本社", from_name="サンプル商店",
        from_address="news@example.jp", organization="株式会社サンプル",
        postal_address="東京都千代田区1-1", contact="03-0000-0000")


@pytest.fixture
def approvers(workspace):
    for role in ("一次確認", "最終承認"):
        Role.objects.create(workspace=workspace, name=role,
                            permissions=["campaigns.approve", "campaigns.create"])
    return (make_operator(workspace, "check@sample.jp", "一次確認"),
            make_operator(workspace, "boss@sample.jp", "最終承認"))


def add_block(page: Page, kind: str) -> None:
    """Press "+ kind"; the page comes back with the new block last."""
    count = page.locator("fieldset.block").count()
    page.locator(f"button[name=action][value='add:{kind}']").click()
    expect(page.locator("fieldset.block")).to_have_count(count + 1)


def build_shared_footer(page: Page) -> None:
    page.goto("/content/shared/new/")
    page.locator("#name").fill("共通フッター")
    page.locator("button[name=b-0-kind][value=text]").click()
    page.locator("textarea[name=b-0-text]").fill("お問い合わせ: 0120-000-000（平日9時〜18時）")
    page.locator("button[name=save]").click()
    expect(page.locator(".errors")).to_have_count(0)


def build_template(page: Page) -> str:
    page.locator("aside.sidebar a[href='/content/templates/']").click()
    page.locator("a[href='/content/templates/new/']").click()
    page.locator("#name").fill("冬のお知らせ")
    page.locator("#subject").fill("冬のお知らせ")
    page.locator("button[name=action][value=add_variant]").click()
    page.locator("input[name=v-0-subject]").fill("東京のお客様へ冬のお知らせ")
    page.locator("select[name=v-0-cond-mode]").select_option("in_segment")
    page.locator("select[name=v-0-cond-ref]").select_option(label="東京")

    add_block(page, "text")
    page.locator("textarea[name=b-0-text]").fill("{{ member.pref }}のお客様へ")
    add_block(page, "text")
    page.locator("textarea[name=b-1-text]").fill("東京限定セールのご案内")
    page.locator("select[name=b-1-cond-mode]").select_option("field")
    page.locator("select[name=b-1-cond-field]").select_option("pref")
    page.locator("select[name=b-1-cond-operator]").select_option("equals")
    page.locator("input[name=b-1-cond-value]").fill("東京都")
    add_block(page, "shared")
    page.locator("select[name=b-2-shared_id]").select_option(label="共通フッター")
    add_block(page, "footer")
    # The live preview follows the edits as the first member would see them.
    live = page.frame_locator("#live-preview iframe").locator("body")
    expect(live).to_contain_text("お問い合わせ: 0120-000-000", timeout=20000)

    page.locator("button[name=action][value=save]").click()
    expect(page).to_have_url(re.compile(r"/content/templates/\d+/$"))
    expect(page.locator(".errors")).to_have_count(0)
    return page.url


def preview_as(page: Page, email: str) -> None:
    member = Member.objects.get(email=email)
    page.locator("select[name=member]").select_option(str(member.pk))
    expect(page.locator("select[name=member] option:checked")).to_contain_text(email)


def approve(chromium, live_server, campaign_url: str, email: str) -> None:
    """An approver signs in in a browser of their own and approves their stage."""
    context = chromium.new_context(base_url=live_server.url, locale="ja-JP",
                                   timezone_id="Asia/Tokyo")
    try:
        page = context.new_page()
        page.set_default_timeout(15000)
        sign_in(page, email)
        page.goto(campaign_url)
        expect(page.locator("#recipient-total")).to_contain_text("2")
        expect(page.frame_locator("iframe").first.locator("body")).to_contain_text("お客様へ")
        page.locator("button[name=decision][value=approve]").click()
        expect(page.locator(".errors")).to_have_count(0)
    finally:
        context.close()


def test_a_conditional_campaign_is_approved_twice_and_reaches_each_member(
        page, chromium, live_server, owner, audience, approvers):
    sign_in(page, owner.email)
    build_shared_footer(page)
    template_url = build_template(page)

    # Preview as two members: the Tokyo block and subject for one, not the other.
    page.goto(template_url)
    page.locator(f"a[href='{template_url.removeprefix(live_server.url)}preview/']").click()
    preview_as(page, "osaka@example.jp")
    expect(page.locator("#preview-subject")).to_have_text("冬のお知らせ")
    expect(page.locator("#reasons tr.hidden-block")).to_contain_text("テキスト 東京限定")
    osaka = page.frame_locator("#preview-desktop").locator("body")
    expect(osaka).to_contain_text("大阪府のお客様へ")
    expect(osaka).not_to_contain_text("東京限定セール")
    expect(osaka).to_contain_text("お問い合わせ: 0120-000-000")
    preview_as(page, "tokyo@example.jp")
    expect(page.locator("#preview-subject")).to_have_text("東京のお客様へ冬のお知らせ")
    expect(page.frame_locator("#preview-phone").locator("body")).to_contain_text(
        "東京限定セールのご案内")
    page.screenshot(path=str(SCREENSHOTS / "template-preview.png"), full_page=True)

    # Two approval stages, each held by a role the owner does not have.
    page.goto("/campaigns/settings/")
    page.locator("#id_stage1").select_option(label="一次確認")
    page.locator("#id_stage2").select_option(label="最終承認")
    page.locator("#id_test_addresses").fill("qa@example.jp")
    page.locator("form.card button[type=submit].primary").click()
    expect(page.locator(".errors")).to_have_count(0)

    page.locator("aside.sidebar a[href='/campaigns/']").click()
    page.locator("a[href='/campaigns/new/']").click()
    page.locator("#id_name").fill("冬のお知らせ 12月")
    page.locator("#id_identity").select_option(str(SenderIdentity.objects.get().pk))
    page.locator("#id_template").select_option(label="冬のお知らせ")
    page.locator("#id_include_segments").select_option(label="全員")
    expect(page.locator("#recipient-count")).to_contain_text("2")  # counted as it changes
    page.locator("form.card button[type=submit].primary").click()
    expect(page).to_have_url(re.compile(r"/campaigns/\d+/$"))
    campaign_url = page.url.removeprefix(live_server.url)
    expect(page.locator("#campaign-status")).to_have_text("下書き")
    page.locator(f"form[action='{campaign_url}submit/'] button").click()
    expect(page.locator("#campaign-status")).to_have_text("承認待ち")
    # The owner created it: no approve button for them.
    expect(page.locator("button[name=decision]")).to_have_count(0)

    first, second = approvers
    approve(chromium, live_server, campaign_url, first.email)
    approve(chromium, live_server, campaign_url, second.email)

    page.reload()
    expect(page.locator("#campaign-status")).to_have_text("承認済み")
    page.locator(f"form[action='{campaign_url}schedule/'] button").click()
    expect(page.locator("#campaign-status")).to_have_text("配信中")
    send_queued_mail()
    scheduler.tick()  # the scheduler's next turn marks the finished send
    page.reload()
    expect(page.locator("#campaign-status")).to_have_text("完了")
    timeline = page.locator("#timeline li")
    expect(timeline).to_have_count(5)
    expect(timeline.nth(2)).to_contain_text(first.email)
    expect(timeline.nth(3)).to_contain_text(second.email)
    expect(timeline.nth(4)).to_contain_text("予約済み")
    page.screenshot(path=str(SCREENSHOTS / "campaign-finished.png"), full_page=True)

    page.locator("aside.sidebar a[href='/mail/outbox/']").click()
    rows = page.locator("[data-testid=outbox] tbody tr")
    expect(rows).to_have_count(2)
    rows.filter(has_text="tokyo@example.jp").locator("a").first.click()
    expect(page.locator("h1")).to_have_text("東京のお客様へ冬のお知らせ")
    tokyo = page.frame_locator("iframe.mail-preview").locator("body")
    expect(tokyo).to_contain_text("東京限定セールのご案内")
    expect(tokyo).to_contain_text("お問い合わせ: 0120-000-000")
    expect(tokyo).to_contain_text("株式会社サンプル")
    page.go_back()
    page.locator("[data-testid=outbox] tbody tr", has_text="osaka@example.jp").locator(
        "a").first.click()
    expect(page.locator("h1")).to_have_text("冬のお知らせ")
    osaka = page.frame_locator("iframe.mail-preview").locator("body")
    expect(osaka).to_contain_text("大阪府のお客様へ")
    expect(osaka).not_to_contain_text("東京限定セール")
