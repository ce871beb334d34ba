"""A send's analytics in Chromium: the overview lists it, its page shows people's figures with
machines apart, each chart is drawn with the stored numbers, a link gets a title, the response
log downloads, and two sends are compared in one chart."""

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tayori.delivery.models import Delivery, Source
from tayori.members.models import Member
from tayori.tracking.ingest import Hit, store
from tayori.tracking.models import Link
from tests.browser.test_walk import SCREENSHOTS, sign_in

pytestmark = pytest.mark.django_db(transaction=True)
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
DESKTOP = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0 Safari/537.36")


def a_send(workspace, name: str, people: list[str], sent_at: dt.datetime) -> list[Delivery]:
    source = Source.objects.create(
        workspace=workspace, name=name, from_address="news@example.jp", subject=name,
        status=Source.Status.DONE, started_at=sent_at - dt.timedelta(minutes=2),
        finished_at=sent_at)
    members = Member.objects.bulk_create([
        Member(workspace=workspace, email=f"{who}.{source.pk}@example.jp") for who in people])
    return Delivery.objects.bulk_create([
        Delivery(workspace=workspace, source=source, member=m, address=m.email, status="sent",
                 queued_at=sent_at - dt.timedelta(minutes=1), sent_at=sent_at) for m in members])


@pytest.fixture
def sends(workspace):
    """Five recipients of a winter sale, sent two hours ago: an hour later taro (iPhone)
    opens, clicks the sale link and buys for 12,800 yen; hanako opens and clicks the guide;
    jiro opens; Apple's proxy fetches saburo's pixel; shiro does nothing. A smaller spring
    send has one reader in two."""
    now = timezone.now()
    taro, hanako, jiro, saburo, _shiro = a_send(
        workspace, "冬のセール", ["taro", "hanako", "jiro", "saburo", "shiro"],
        now - dt.timedelta(hours=2))
    Link.objects.bulk_create([
        Link(source_id=taro.source_id, index=0, url="https://shop.example.jp/sale"),
        Link(source_id=taro.source_id, index=1, url="https://shop.example.jp/guide")])
    at = now - dt.timedelta(hours=1)
    store([Hit("open", taro.pk, at, "203.0.113.5", IPHONE),
           Hit("click", taro.pk, at + dt.timedelta(minutes=1), "203.0.113.5", IPHONE,
               link_index=0),
           Hit("open", hanako.pk, at, "198.51.100.7", DESKTOP),
           Hit("click", hanako.pk, at + dt.timedelta(minutes=3), "198.51.100.7", DESKTOP,
               link_index=1),
           Hit("open", jiro.pk, at, "198.51.100.8", DESKTOP),
           Hit("open", saburo.pk, at, "17.58.1.1", "Mozilla/5.0")])
    store([Hit("conversion", taro.pk, at + dt.timedelta(minutes=9), value=12800)])
    spring, _ = a_send(workspace, "春のご案内", ["ume", "sakura"], now - dt.timedelta(hours=3))
    store([Hit("open", spring.pk, now - dt.timedelta(hours=2), "198.51.100.9", DESKTOP)])
    return Source.objects.get(pk=taro.source_id), Source.objects.get(pk=spring.source_id)


def chart_data(page: Page, key: str, dataset: int = 0) -> list:
    return page.evaluate(
        "([key, i]) => Chart.getChart(document.querySelector(`canvas[data-chart=${key}]`))"
        ".data.datasets[i].data", [key, dataset])


def chart_labels(page: Page, key: str) -> list:
    return page.evaluate(
        "key => Chart.getChart(document.querySelector(`canvas[data-chart=${key}]`)).data.labels",
        key)


def test_a_sends_analytics_with_its_charts(page, owner, sends):
    winter, spring = sends
    sign_in(page, owner.email)
    page.locator("aside.sidebar a[href='/analytics/']").click()
    expect(page.locator("h1")).to_have_text(re.compile("Analytics|分析"))
    row = page.locator(f"[data-testid=sends] tr[data-source='{winter.pk}']")
    expect(row).to_contain_text("60.0%")  # open rate
    expect(row).to_contain_text("40.0%")  # CTR
    assert sum(chart_data(page, "volume")) == 7  # both sends' delivered mail
    # Three people opened the winter sale in one hour; the spring reader in another.
    cells = page.locator("[data-testid=heatmap-1] td[data-hour]")
    expect(cells.filter(has_text="3")).to_have_count(1)
    expect(cells.filter(has_text="1")).to_have_count(1)
    page.screenshot(path=str(SCREENSHOTS / "analytics-overview.png"), full_page=True)

    row.locator("a").click()
    expect(page).to_have_url(re.compile(rf"/analytics/sources/{winter.pk}/$"))
    for testid, shown in (("delivered", "5"), ("unique-opens", "3"), ("open-rate", "60.0%"),
                          ("unique-clicks", "2"), ("ctr", "40.0%"), ("cto", "66.7%"),
                          ("conversions", "1"), ("value", "¥12,800"), ("machine-opens", "1"),
                          ("machine-clicks", "0")):
        expect(page.locator(f"[data-testid={testid}]")).to_have_text(shown)
    opens, clicks, conversions = (chart_data(page, "timeline", i) for i in range(3))
    assert (sum(opens), sum(clicks), sum(conversions)) == (3, 2, 1)
    assert chart_data(page, "links") == [1, 1]
    expect(page.locator("[data-testid=breakdown-2] tbody tr")).to_have_count(2)  # phone, desktop

    links = page.locator("[data-testid=links] tbody tr")
    links.first.locator("input[name=title]").fill("セール会場")
    links.first.locator("button").click()
    expect(links.first.locator("input[name=title]")).to_have_value("セール会場")
    assert chart_labels(page, "links")[0] == "セール会場"

    with page.expect_download() as download:
        page.locator("form[action$='/responses.csv'] button").click()
    body = open(download.value.path(), "rb").read()
    assert body.startswith(b"\xef\xbb\xbf") and body.decode("utf-8-sig").count("\n") == 6
    page.screenshot(path=str(SCREENSHOTS / "analytics-source.png"), full_page=True)

    page.locator(".crumbs a").click()
    for send in (winter, spring):
        page.locator(f"[data-testid=sends] input[name=source][value='{send.pk}']").check()
    page.locator("form[action='/analytics/compare/'] button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/analytics/compare/\?"))
    assert chart_labels(page, "rates") == [winter.name, spring.name]
    assert chart_data(page, "rates") == [60, 50]  # open rates
    assert chart_data(page, "rates", 1) == [40, 0]  # click rates
    page.screenshot(path=str(SCREENSHOTS / "analytics-compare.png"), full_page=True)
