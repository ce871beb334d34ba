"""The condition builder in Chromium: an operator builds a segment from form rows, watches the
live count change, sees a bad value reported, and saves it — without writing any JSON."""

import pytest
from django.conf import settings
from django.test import Client

from tayori.members.models import Attribute, Member, Segment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def signed_in(page, owner, workspace, live_server):
    workspace.language = "en"
    workspace.save()
    client = Client()
    client.force_login(owner)
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME,
                               "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                               "url": live_server.url}])
    return page


@pytest.fixture
def audience(workspace):
    Attribute.objects.create(workspace=workspace, key="prefecture", label="都道府県", type="text")
    Attribute.objects.create(workspace=workspace, key="points", label="ポイント", type="number")
    Attribute.objects.create(workspace=workspace, key="plan", label="プラン", type="choice",
                             choices=["free", "gold"])
    for email, prefecture, points, plan in [("taro@example.jp", "東京都", 10, "gold"),
                                            ("hana@example.jp", "東京都", 50, "free"),
                                            ("jiro@example.jp", "大阪府", 70, "gold")]:
        Member.objects.create(workspace=workspace, email=email, attributes={
            "prefecture": prefecture, "points": points, "plan": plan})


def count_is(page, n: int):
    page.locator(f'#segment-live .num[data-count="{n}"]').wait_for()


def test_it_builds_a_segment_with_a_live_count_and_saves_it(signed_in, audience, workspace):
    page = signed_in
    page.goto("/members/segments/new/")
    count_is(page, 3)

    page.get_by_role("button", name="+ Add condition").click()
    row = page.locator(".seg-row").nth(0)
    row.get_by_label("Field").select_option(label="都道府県")
    row.get_by_label("Value").fill("東京都")
    count_is(page, 2)

    # An OR group inside: plan is gold, or points greater than 40.
    page.get_by_role("button", name="+ Add group").first.click()
    inner = page.locator(".seg-group .seg-group")
    inner.get_by_label("Operator").first.select_option("or")
    first = inner.locator(".seg-row").nth(0)
    first.get_by_label("Field").select_option(label="プラン")
    first.get_by_label("Value").select_option("gold")
    inner.get_by_role("button", name="+ Add condition").click()
    second = inner.locator(".seg-row").nth(1)
    second.get_by_label("Field").select_option(label="ポイント")
    second.get_by_label("Operator").select_option("gt")
    second.get_by_label("Value").fill("40")
    count_is(page, 2)  # taro (gold) and hana (50 points)
    second.get_by_label("Value").fill("60")
    count_is(page, 1)  # taro only

    # A value the server cannot read is named in the live panel instead of a count.
    row.get_by_label("Value").fill("")
    page.locator("#segment-live .errors").wait_for()
    assert "A value is required" in page.locator("#segment-live .errors").inner_text()
    row.get_by_label("Value").fill("東京都")
    count_is(page, 1)

    page.get_by_label("Name").fill("東京の上得意")
    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url("**/members/segments/*/")
    segment = Segment.objects.get(workspace=workspace, name="東京の上得意")
    assert segment.definition == {"op": "and", "conditions": [
        {"field": "prefecture", "operator": "equals", "value": "東京都"},
        {"op": "or", "conditions": [
            {"field": "plan", "operator": "equals", "value": "gold"},
            {"field": "points", "operator": "gt", "value": 60},
        ]},
    ]}
    assert page.locator("#segment-live .num").inner_text() == "1"

    # Editing shows the saved rows again, ready to change.
    page.get_by_role("link", name="Edit").click()
    count_is(page, 1)
    assert page.locator(".seg-row").count() == 3
    page.locator(".seg-group .seg-group").get_by_role("button", name="✕ Remove group").click()
    count_is(page, 2)
