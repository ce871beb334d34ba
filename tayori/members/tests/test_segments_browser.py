"""The condition builder in Chromium: an operator builds a segment from form rows, watches the
live count change, sees a bad value reported on its row, and saves it — without writing any
JSON. A row just added is not counted (nor reported) until it has a value; saving names it."""

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

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
    Attribute.objects.create(workspace=workspace, key="name", label="氏名", type="text", pii=True)
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
    inner.get_by_label("Combine conditions").select_option("or")
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

    # A row whose value is cleared is left out of the count, quietly, until it has one again.
    row.get_by_label("Value").fill("")
    count_is(page, 2)  # gold or more than 60 points: taro and jiro
    assert page.locator('#segment-live [data-skipped="1"]').is_visible()
    assert page.locator("#segment-live .errors, .seg-row.has-error").count() == 0
    row.get_by_label("Value").fill("東京都")
    count_is(page, 1)
    assert page.locator("#segment-live [data-skipped]").count() == 0

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


def test_a_new_row_waits_for_its_value_and_errors_show_on_their_row(signed_in, audience, workspace):
    page = signed_in
    page.goto("/members/segments/new/")
    count_is(page, 3)
    expect(page.locator("#segment-mirror strong")).to_have_text("3")

    # A new row starts on the first attribute that is not personal information, and the count
    # ignores it (saying so) while it has no value: no error before anything was typed.
    page.get_by_role("button", name="+ Add condition").click()
    row = page.locator('.seg-row[data-path="1"]')
    assert row.get_by_label("Field").input_value() == "prefecture"
    page.locator('#segment-live [data-skipped="1"]').wait_for()
    count_is(page, 3)
    assert page.locator("#segment-live .errors, .seg-row.has-error").count() == 0

    # A range that cannot be right is reported on the row itself, not only beside the count.
    row.get_by_label("Field").select_option(label="ポイント")
    row.get_by_label("Operator").select_option("between")
    values = row.get_by_label("Value")
    values.nth(0).fill("50")
    values.nth(1).fill("10")
    row.locator("small.error").wait_for()
    assert "start of the range is after its end" in row.locator("small.error").inner_text()
    assert "Condition 1" in page.locator("#segment-live .errors").inner_text()
    expect(page.locator("#segment-mirror strong")).to_have_text("—")
    values.nth(1).fill("100")
    count_is(page, 2)  # hana (50) and jiro (70)
    assert row.locator("small.error").count() == 0
    expect(page.locator("#segment-mirror strong")).to_have_text("2")

    # Saving with a row still empty: the page comes back with the problem on that row.
    page.get_by_role("button", name="+ Add condition").click()
    page.get_by_label("Name").fill("途中")
    page.get_by_role("button", name="Save segment").click()
    second = page.locator('.seg-row[data-path="2"]')
    second.locator("small.error").wait_for()
    assert "A value is required" in second.inner_text()
    assert "has-error" in second.get_attribute("class")
    assert not Segment.objects.exists()
    count_is(page, 2)  # the live count still leaves the empty row out
    assert page.locator('.seg-row[data-path="1"] small.error').count() == 0

    # Typing the value clears the row's error at once; then it saves.
    second.get_by_label("Value").fill("東京都")
    assert second.locator("small.error").count() == 0
    count_is(page, 1)  # hana
    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url("**/members/segments/*/")
    assert Segment.objects.get(name="途中").definition["conditions"][1] == {
        "field": "prefecture", "operator": "equals", "value": "東京都"}


def test_the_preview_has_room_for_its_columns(signed_in, audience, workspace):
    page = signed_in
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/members/segments/new/")
    count_is(page, 3)
    table = page.locator("#segment-live table")
    headers = table.locator("thead th").all_inner_texts()
    assert headers[:2] == ["Email", "Status"] and "Phone" not in headers  # nobody has one
    assert {"氏名", "都道府県", "ポイント", "プラン"} <= set(headers)
    # No sideways scrolling: the whole table fits the card below the builder.
    box = page.locator("#segment-live .seg-preview-box")
    assert box.evaluate("b => b.scrollWidth <= b.clientWidth")
    assert table.bounding_box()["width"] > 900
