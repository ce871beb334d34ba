"""Analytics from seeded tracking events: a send's figures with machines kept apart, clicks per
link, audiences, the hours people read in JST, two periods, the response log as CSV (masked and
in CP932), link titles, and who may see which workspace's analytics."""

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import translation

from conftest import make_operator
from tayori.accounts.models import AuditEvent, Role
from tayori.delivery.models import Delivery, Source
from tayori.tracking import analytics
from tayori.tracking.ingest import Hit, store
from tayori.tracking.models import Link

pytestmark = pytest.mark.django_db(transaction=True)
JST = ZoneInfo("Asia/Tokyo")
UTC = dt.UTC
AT = dt.datetime(2025, 1, 6, 1, 30, tzinfo=UTC)  # Monday 10:30 in Tokyo
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
DESKTOP = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0 Safari/537.36")
LINKS = ["https://shop.example.jp/sale?from=mail&x=1", "https://shop.example.jp/guide"]


def minutes(n: float) -> dt.datetime:
    return AT + dt.timedelta(minutes=n)


@pytest.fixture
def seeded(sent):
    """taro (iPhone) opens twice, clicks the sale link twice and buys for 5,000 yen; hanako
    (docomo) is opened by Apple's proxy, clicks the guide on a desktop and has it checked by a
    HEAD request; jiro opts out, then opens on Tuesday. Sent an hour before, queued 1, 2 and 5
    minutes before that."""
    taro, hanako, jiro = (sent[f"{n}@example.jp"].delivery for n in ("taro", "hanako", "jiro"))
    for delivery, waited in ((taro, 1), (hanako, 2), (jiro, 5)):
        Delivery.objects.filter(pk=delivery.pk).update(
            sent_at=minutes(-60), queued_at=minutes(-60 - waited))
    Delivery.objects.filter(pk=hanako.pk).update(address="hanako@docomo.ne.jp")
    Link.objects.bulk_create([Link(source_id=taro.source_id, index=i, url=url)
                              for i, url in enumerate(LINKS)])
    store([
        Hit("open", taro.pk, minutes(0), "203.0.113.5", IPHONE),
        Hit("open", taro.pk, minutes(5), "203.0.113.5", IPHONE),
        Hit("click", taro.pk, minutes(6), "203.0.113.5", IPHONE, link_index=0),
        Hit("click", taro.pk, minutes(7), "203.0.113.5", IPHONE, link_index=0),
        Hit("open", hanako.pk, minutes(0), "17.58.1.1", "Mozilla/5.0"),  # Apple's proxy
        Hit("click", hanako.pk, minutes(20), "198.51.100.7", DESKTOP, link_index=1),
        Hit("click", hanako.pk, minutes(21), "198.51.100.9", DESKTOP, head=True, link_index=0),
    ])
    # A conversion counts only after a click already stored.
    store([Hit("conversion", taro.pk, minutes(10), value=5000),
           Hit("unsubscribe", jiro.pk, minutes(30)),
           Hit("open", jiro.pk, minutes(24 * 60), "198.51.100.8", DESKTOP)])
    return Source.objects.get(pk=taro.source_id)


def week():
    return dt.datetime(2025, 1, 1, tzinfo=JST), dt.datetime(2025, 1, 8, tzinfo=JST)


def test_a_sends_figures_count_people_and_keep_machines_apart(seeded):
    f = analytics.figures([seeded])[0]
    assert (f.sent, f.delivered, f.failed, f.skipped, f.pending) == (3, 3, 0, 0, 0)
    # taro twice and jiro once; the proxy's fetch is a machine's. hanako clicked with images
    # off: she counts as having opened.
    assert (f.opens, f.unique_opens, f.machine_opens) == (3, 3, 1)
    assert (f.clicks, f.unique_clicks, f.machine_clicks) == (3, 2, 1)
    assert (f.conversions, f.converters, f.value, f.optouts) == (1, 1, 5000, 1)
    assert [str(r) for r in (f.open_rate, f.ctr, f.cto, f.optout_rate)] == [
        "100.0%", "66.7%", "66.7%", "33.3%"]
    assert str(analytics.Rate(1, 0)) == "—" and analytics.Rate(1, 0).percent is None


def test_clicks_per_link_are_peoples_with_the_link_rows(seeded):
    rows = analytics.links(seeded, delivered=3)
    assert [(r.link.url, r.clicks, r.unique, str(r.ctr)) for r in rows] == [
        (LINKS[0], 2, 1, "33.3%"), (LINKS[1], 1, 1, "33.3%")]


def test_domains_name_carriers_and_devices_count_first_responses(seeded):
    domains = {s.value: (s.opens, s.clicks) for s in analytics.breakdown(seeded, "domain")}
    # The docomo recipient clicked with images off: the click is their open.
    assert domains == {"example.jp": (2, 1), "docomo.ne.jp (docomo)": (1, 1)}
    devices = {s.value: (s.opens, s.clicks) for s in analytics.breakdown(seeded, "device")}
    assert devices == {"phone": (1, 1), "desktop": (2, 1)}
    tail = analytics.breakdown(seeded, "domain", top=1)
    assert [(s.value, s.opens, s.clicks) for s in tail] == [(analytics.OTHERS, 3, 2)]


def test_the_heatmap_puts_people_in_their_weekday_and_hour_in_tokyo(seeded, workspace):
    grids = analytics.heatmap(workspace, *week(), JST)
    monday, tuesday = 0, 1
    assert grids["open"][monday][10] == 2 and grids["open"][tuesday][10] == 1
    assert grids["click"][monday][10] == 3
    assert sum(map(sum, grids["open"])) == 3 and sum(map(sum, grids["click"])) == 3
    # The same hours in UTC would be 01:00.
    assert analytics.heatmap(workspace, *week(), UTC)["open"][monday][1] == 2


def test_the_timeline_is_hourly_in_tokyo(seeded):
    series = analytics.timeline(seeded, JST)
    assert series.labels[0] == "01/06 10:00" and series.labels[-1] == "01/07 10:00"
    assert len(series.labels) == 25
    assert (series.values["opens"][0], series.values["clicks"][0],
            series.values["conversions"][0]) == (2, 3, 1)
    assert series.values["opens"][-1] == 1 and sum(series.values["clicks"]) == 3


def test_how_long_mail_waited_in_the_queue(seeded):
    took = analytics.durations(seeded, delivered=3)
    assert took.median_wait == dt.timedelta(minutes=2)
    assert took.p90_wait == dt.timedelta(minutes=5)


def test_two_periods_and_the_volume_of_mail(seeded, workspace):
    current = analytics.period_figures(workspace, *week())
    before = analytics.period_figures(workspace, dt.datetime(2024, 12, 1, tzinfo=JST),
                                      dt.datetime(2025, 1, 1, tzinfo=JST))
    # First opens in the period, from rollups: two pixels and one click with images off.
    assert (current.delivered, current.unique_opens, current.unique_clicks,
            current.value, current.optouts) == (3, 3, 2, 5000, 1)
    assert before.delivered == 0
    rows = {row.key: row for row in analytics.compare_periods(current, before)}
    assert rows["delivered"].change is None and str(rows["open_rate"].current) == "100.0%"
    daily = analytics.volume(workspace, "day", minutes(2 * 24 * 60), JST)
    assert len(daily.labels) == 30 and daily.labels[-1] == "01/08"
    assert dict(zip(daily.labels, daily.values["delivered"], strict=True))["01/06"] == 3
    hourly = analytics.volume(workspace, "hour", AT, JST)
    assert dict(zip(hourly.labels, hourly.values["delivered"], strict=True))["01/06 09:00"] == 3
    monthly = analytics.volume(workspace, "month", AT, JST)
    assert monthly.labels[-1] == "2025-01" and monthly.values["delivered"][-1] == 3


def test_the_source_page_shows_the_figures_and_charts(owner_client, seeded):
    page = owner_client.get(reverse("analytics:source", args=[seeded.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="cto">66.7%<' in html and "¥5,000" in html
    assert 'data-testid="machine-opens">1<' in html
    charts = page.context["charts"]
    assert charts["timeline"]["datasets"][1]["data"][0] == 3
    assert charts["links"]["datasets"][0]["data"] == [1, 1]
    assert 'id="analytics-charts" type="application/json"' in html
    assert page.context["median_wait"] == "0:02:00"


def test_the_overview_lists_sends_compares_periods_and_maps_hours(owner_client, seeded):
    page = owner_client.get(reverse("analytics:index"), {
        "a_from": "2025-01-01", "a_to": "2025-01-07", "b_from": "2024-12-01",
        "b_to": "2024-12-31", "unit": "month"})
    assert page.status_code == 200
    row = page.context["rows"][0]
    assert (row.source, row.delivered, str(row.ctr)) == (seeded, 3, "66.7%")
    _title, opens = page.context["heatmaps"][0]
    monday = opens[0][1]
    assert monday[10][0] == 2 and monday[10][2]  # the busiest cell is dark
    compared = {row.key: row for row in page.context["comparison"]}
    assert compared["delivered"].current == 3
    assert page.context["charts"]["volume"]["labels"][-1].count("-") == 1  # months
    # A bad period falls back to the last 30 days, with the reason shown.
    bad = owner_client.get(reverse("analytics:index"), {"a_from": "2025-02-01",
                                                        "a_to": "2025-01-01"})
    assert bad.status_code == 200 and bad.context["form"].errors


def test_compare_shows_the_chosen_sends_of_this_workspace_only(owner_client, seeded,
                                                               other_workspace):
    theirs = Source.objects.create(workspace=other_workspace, name="theirs",
                                   from_address="x@other.example", subject="x")
    page = owner_client.get(reverse("analytics:compare"),
                            {"source": [seeded.pk, theirs.pk, "junk"]})
    assert [row.source for row in page.context["rows"]] == [seeded]
    rates = page.context["charts"]["rates"]
    assert rates["labels"] == [seeded.name] and rates["datasets"][0]["data"] == [100.0]


def _csv(response, encoding):
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode(encoding))))


def test_the_response_log_downloads_one_row_per_recipient(owner_client, seeded):
    url = reverse("analytics:responses-csv", args=[seeded.pk])
    response = owner_client.get(url)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 with a BOM
    rows = {row[0]: row for row in csv.reader(io.StringIO(body.decode("utf-8-sig")))}
    taro = rows["taro@example.jp"]
    member = Delivery.objects.get(address="taro@example.jp").member_id
    assert taro[1] == str(member)
    assert taro[3:] == ["2025-01-06 09:30:00", "2025-01-06 10:30:00", "2", "2025-01-06 10:36:00",
                        "2", "2025-01-06 10:40:00", "5000", "", "0", "0"]
    assert rows["hanako@docomo.ne.jp"][-2:] == ["1", "1"]
    assert rows["jiro@example.jp"][10] == "2025-01-06 11:00:00"
    assert AuditEvent.objects.filter(action="analytics.responses_exported",
                                     detail__masked=False).count() == 1


def test_a_role_without_personal_information_gets_masked_addresses_in_cp932(
        analyst_client, seeded):
    response = analyst_client.get(reverse("analytics:responses-csv", args=[seeded.pk]),
                                  {"encoding": "cp932"})
    assert response["Content-Type"] == "text/csv; charset=Shift_JIS"
    rows = _csv(response, "cp932")
    assert sorted(row[0] for row in rows[1:]) == [
        "ha***@docomo.ne.jp", "ji***@example.jp", "ta***@example.jp"]
    with translation.override("ja"):
        sent = str(Delivery.Status.SENT.label)
    assert any(not ch.isascii() for ch in sent)  # a Japanese label that CP932 carries
    assert {row[2] for row in rows[1:]} == {sent}


def test_a_link_title_is_saved_and_audited(owner_client, seeded):
    url = reverse("analytics:link-title", args=[seeded.pk])
    response = owner_client.post(url, {"index": "1", "title": "ご利用ガイド"})
    assert response.status_code == 302
    assert Link.objects.get(source=seeded, index=1).title == "ご利用ガイド"
    event = AuditEvent.objects.get(action="analytics.link_titled")
    assert event.detail == {"index": 1, "title": "ご利用ガイド", "before": ""}
    assert owner_client.post(url, {"index": "9", "title": "x"}).status_code == 404
    assert owner_client.get(url).status_code == 405


def test_a_role_without_analytics_is_refused(client, workspace, seeded):
    Role.objects.create(workspace=workspace, name="Desk", permissions=["members.view"])
    client.force_login(make_operator(workspace, "desk@sample.jp", "Desk"))
    for url in (reverse("analytics:index"), reverse("analytics:compare"),
                reverse("analytics:source", args=[seeded.pk]),
                reverse("analytics:responses-csv", args=[seeded.pk])):
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("analytics:link-title", args=[seeded.pk]),
                       {"index": "0", "title": "x"}).status_code == 403


def test_another_workspaces_send_is_not_found(owner_client, other_workspace):
    theirs = Source.objects.create(workspace=other_workspace, name="theirs",
                                   from_address="x@other.example", subject="x")
    Link.objects.create(source=theirs, index=0, url="https://other.example/")
    for name in ("analytics:source", "analytics:responses-csv"):
        assert owner_client.get(reverse(name, args=[theirs.pk])).status_code == 404
    response = owner_client.post(reverse("analytics:link-title", args=[theirs.pk]),
                                 {"index": "0", "title": "taken"})
    assert response.status_code == 404
    assert Link.objects.get(source=theirs).title == ""
