"""What the dashboards read (hourly rollups, breakdowns, per-delivery responses) is exactly what
the stored events say, however the hits arrived.

Hypothesis sends hits of every kind to three deliveries of a real send — people, privacy proxies,
scanners, HEAD requests, bots; times from seconds after sending to days later — through
``ingest.store`` in random batches, then recomputes every Rollup, Breakdown and Response from
the Event rows alone and compares. Hits arrive in time order, as one process's buffer holds
them. It runs on whichever database the suite runs on (SQLite by default, PostgreSQL in CI).
"""

import datetime as dt
from collections import defaultdict

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tayori.delivery.models import Delivery
from tayori.tracking import clients, ingest
from tayori.tracking.ingest import Hit
from tayori.tracking.models import Breakdown, Event, Kind, Response, Rollup, TrackingSettings

pytestmark = pytest.mark.django_db(transaction=True)

SENT_AT = dt.datetime(2026, 11, 30, 23, 40, tzinfo=dt.UTC)  # the next hour and day are near
AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36",
    "Microsoft Outlook 16.0.17328; Pro",
    "Mozilla/5.0",  # Apple Mail Privacy Protection
    "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
    "Mozilla/5.0 (compatible; Barracuda Sentinel)",
    "Mimecast URL Protect",
    "python-requests/2.31",
    "",
]
IPS = ["203.0.113.9", "198.51.100.7", "17.58.1.2", "17.120.0.4", "2001:db8::1", None]
KINDS = [Kind.OPEN, Kind.CLICK, Kind.CONVERSION, Kind.UNSUBSCRIBE]
# Seconds after sending: inside the scanner window, bursts within a few seconds, hours and days
# later, and past the conversion window.
offsets = st.one_of(st.integers(0, 15), st.sampled_from([3600, 3601, 3602, 7199, 7200]),
                    st.integers(0, 3 * 86400), st.integers(6 * 86400, 9 * 86400))


@st.composite
def hits(draw, delivery_ids: list[int]) -> list[Hit]:
    drawn = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(KINDS))
        at = SENT_AT + dt.timedelta(seconds=draw(offsets),
                                    milliseconds=draw(st.sampled_from([0, 0, 250, 999])))
        drawn.append(Hit(
            kind, draw(st.sampled_from(delivery_ids)), at, draw(st.sampled_from(IPS)),
            draw(st.sampled_from(AGENTS)), draw(st.booleans()) if kind in ("open", "click")
            else False,
            # 0 and 1 are the mail's links; 2 makes a scanner's burst over three links possible.
            link_index=draw(st.integers(0, 2)) if kind == Kind.CLICK else None,
            value=draw(st.one_of(st.none(), st.integers(0, 50_000)))
            if kind == Kind.CONVERSION else None))
    return sorted(drawn, key=lambda h: h.at)


def _batches(draw, items: list) -> list[list]:
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(items) - 1)), max_size=5)))
    return [items[a:b] for a, b in zip([0, *cuts], [*cuts, len(items)], strict=True) if a < b]


def _hour(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def recount(source_id: int) -> tuple[dict, dict, dict]:
    """Rollups, breakdowns and responses as the Event rows of a source say they should be."""
    addresses = dict(Delivery.objects.filter(source_id=source_id).values_list("pk", "address"))
    rollups = defaultdict(lambda: [0, 0, 0, 0])
    breakdowns = defaultdict(lambda: [0, 0])
    responses = defaultdict(_empty_response)
    firsts, links = set(), set()
    for event in Event.objects.filter(source_id=source_id).order_by("at", "pk"):
        row = rollups[(_hour(event.at), event.kind)]
        response = responses[event.delivery_id]
        row[0] += 1
        if event.machine:
            row[2] += 1
            response[f"machine_{event.kind}s"] += 1
            continue
        first = (event.delivery_id, event.kind) not in firsts
        if event.kind == Kind.OPEN and response["opened_at"] is not None:
            first = False  # a click before it was the recipient's first open
        implied = event.kind == Kind.CLICK and response["opened_at"] is None
        firsts.add((event.delivery_id, event.kind))
        row[1] += first
        row[3] += event.value or 0
        _count(response, event, first)
        cells = []
        if event.kind == Kind.CLICK:
            cells.append(("link", str(event.link_index),
                          (event.delivery_id, event.link_index) not in links))
            links.add((event.delivery_id, event.link_index))
        if event.kind == Kind.CONVERSION:  # credited to the link the person clicked last
            assert event.link_index == response["last_link"] is not None
            cells.append(("link", str(event.link_index), first))
        if event.kind in (Kind.OPEN, Kind.CLICK):
            client, device = clients.client_of(event.user_agent)
            domain = clients.domain_group(addresses[event.delivery_id])[:100]
            cells += [("client", client, first), ("device", device, first),
                      ("domain", domain, first)]
        for dimension, value, unique in cells:
            cell = breakdowns[(event.kind, dimension, value)]
            cell[0] += 1
            cell[1] += unique
            if implied and dimension != "link":  # the click is the mail's first open
                breakdowns[(Kind.OPEN, dimension, value)][1] += 1
        if implied:
            rollups[(_hour(event.at), Kind.OPEN)][1] += 1
    return ({k: tuple(v) for k, v in rollups.items()},
            {k: tuple(v) for k, v in breakdowns.items()}, dict(responses))


def _empty_response() -> dict:
    return {"opens": 0, "clicks": 0, "conversions": 0, "value": 0, "machine_opens": 0,
            "machine_clicks": 0, "opened_at": None, "clicked_at": None,
            "last_clicked_at": None, "last_link": None, "converted_at": None,
            "unsubscribed_at": None}


def _count(response: dict, event: Event, first: bool) -> None:
    at = event.at
    if event.kind == Kind.UNSUBSCRIBE:
        response["unsubscribed_at"] = response["unsubscribed_at"] or at
        return
    response[f"{event.kind}s"] += 1
    if event.kind == Kind.CONVERSION:
        response["value"] += event.value or 0
        response["converted_at"] = response["converted_at"] or at
        return
    response["opened_at"] = response["opened_at"] or at  # a click means the mail was read
    if event.kind == Kind.CLICK:
        response["clicked_at"] = response["clicked_at"] or at
        response["last_clicked_at"], response["last_link"] = at, event.link_index


def stored(source_id: int) -> tuple[dict, dict, dict]:
    rollups = {(_hour(hour), kind): counts for hour, kind, *counts in
               Rollup.objects.filter(source_id=source_id).values_list(
                   "hour", "kind", "total", "unique", "machine", "value")}
    breakdowns = {(kind, dimension, value): (total, unique)
                  for kind, dimension, value, total, unique in
                  Breakdown.objects.filter(source_id=source_id).values_list(
                      "kind", "dimension", "value", "total", "unique")}
    fields = list(_empty_response())
    responses = {row[0]: dict(zip(fields, row[1:], strict=True))
                 for row in Response.objects.filter(source_id=source_id).values_list(
                     "delivery_id", *fields)}
    return ({k: tuple(v) for k, v in rollups.items()}, breakdowns, responses)


def _assert_matches(source_id: int) -> None:
    expected_rollups, expected_breakdowns, expected_responses = recount(source_id)
    rollups, breakdowns, responses = stored(source_id)
    assert rollups == expected_rollups
    assert breakdowns == expected_breakdowns
    # A delivery whose only hits were unattributed conversions keeps an empty response row.
    assert expected_responses.keys() <= responses.keys()
    assert responses == {pk: expected_responses.get(pk, _empty_response()) for pk in responses}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_rollups_breakdowns_and_responses_are_what_the_events_say(sent, workspace, data):
    delivery_ids = sorted(mail.delivery.pk for mail in sent.values())
    source_id = sent["taro@example.jp"].delivery.source_id
    arrived = data.draw(hits(delivery_ids), label="hits")
    batches = _batches(data.draw, arrived)
    with transaction.atomic():
        Delivery.objects.filter(pk__in=delivery_ids).update(sent_at=SENT_AT)
        TrackingSettings.objects.update_or_create(workspace=workspace, defaults={
            "ip_mode": data.draw(st.sampled_from(["full", "truncated", "none"])),
            "conversion_days": data.draw(st.sampled_from([1, 7])),
            "scanner_seconds": data.draw(st.sampled_from([0, 10]))})
        for batch in batches:
            ingest.store(batch)
        _assert_matches(source_id)
        transaction.set_rollback(True)


# Found by the test above; ingest.py belongs to the tracking issue. Each is strict: a fix turns
# it into a failure that asks for the marker (and the matching line in ``recount``) to go.
UA = AGENTS[0]
T = SENT_AT + dt.timedelta(hours=1)


@pytest.fixture
def delivery(sent):
    Delivery.objects.update(sent_at=SENT_AT)
    return sent["taro@example.jp"].delivery


def test_a_click_before_any_open_is_the_recipients_open(delivery):
    """Mail read with images off gets clicked: the click counts as the first open, and the
    pixel loaded later is not a second one."""
    ingest.store([Hit(Kind.CLICK, delivery.pk, T, "203.0.113.9", UA, link_index=0)])
    ingest.store([Hit(Kind.OPEN, delivery.pk, T + dt.timedelta(minutes=5), "203.0.113.9", UA)])
    opens = Rollup.objects.filter(kind=Kind.OPEN)
    assert sum(opens.values_list("unique", flat=True)) == 1
    assert sum(opens.values_list("total", flat=True)) == 1


def test_a_conversion_stored_with_its_click_counts(delivery):
    ingest.store([Hit(Kind.CLICK, delivery.pk, T, "203.0.113.9", UA, link_index=0),
                  Hit(Kind.CONVERSION, delivery.pk, T + dt.timedelta(seconds=5), value=100)])
    assert Event.objects.filter(kind=Kind.CONVERSION).count() == 1


def test_the_writer_holds_clicks_back_so_a_scanners_burst_is_judged_whole(delivery):
    second = dt.timedelta(seconds=1)
    for offset, link in ((second * 0, 0), (second / 2, 1)):
        ingest.add(Hit(Kind.CLICK, delivery.pk, T + offset, "203.0.113.9", UA, link_index=link))
    assert ingest.flush(hold=2, now=T + second) == 0  # too young: they wait
    ingest.add(Hit(Kind.CLICK, delivery.pk, T + second, "203.0.113.9", UA, link_index=2))
    assert ingest.flush(hold=2, now=T + 10 * second) == 3
    assert set(Event.objects.values_list("machine", flat=True)) == {"scanner"}
