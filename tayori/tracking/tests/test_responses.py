"""Segments on responses: received, opened, clicked (any link or one) and converted, of one mail
or any mail, within the last N days; machines never count; the builder's pickers; the words on
segment pages. Events are stored through ingest as the endpoints store them, and every
selection is checked on the SQL query and on the Python evaluator."""

import asyncio
import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone, translation

from tayori.delivery import queue, sending
from tayori.delivery.engine import Worker
from tayori.delivery.models import Delivery, Source
from tayori.members import segments
from tayori.members.models import Member, Segment
from tayori.members.tests.test_segments_browser import count_is, signed_in  # noqa: F401
from tayori.tracking import ingest
from tayori.tracking.ingest import Hit
from tayori.tracking.responses import FIELD, response_condition
from tayori.tracking.tests.conftest import HTML

pytestmark = pytest.mark.django_db(transaction=True)
BROWSER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/126.0 Safari/537.36")
# "Within the last N days" counts calendar days in Tokyo, so a hit 1.9 days ago falls inside
# "1 day" late in the evening: the tests run at the last noon in Tokyo, whatever the clock says.
_TOKYO = ZoneInfo("Asia/Tokyo")
_NOON = timezone.now().astimezone(_TOKYO).replace(hour=12, minute=0, second=0, microsecond=0)
NOW = _NOON if _NOON <= timezone.now() else _NOON - dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def mails(sent, workspace):
    """Two mails to taro, hanako and jiro — 冬のセール (winter) and 春のセール (spring) — sent
    forty days ago."""
    spring = sending.create_bulk(workspace, sending.Content(
        subject="春のセール", html=HTML, text="本文", from_address="news@example.jp"),
        name="春のセール", segment=Segment.objects.get(workspace=workspace, name="all"))
    queue.start(spring)
    asyncio.run(Worker(name="test").drain())
    Delivery.objects.update(sent_at=NOW - dt.timedelta(days=40))
    winter = Source.objects.get(workspace=workspace, name="冬のセール")
    return winter, spring


def delivery(source, name) -> Delivery:
    return Delivery.objects.get(source=source, address=f"{name}@example.jp")


def hit(source, name, kind, *, days_ago=1.0, link=None, agent=BROWSER, head=False, value=None):
    at = NOW - dt.timedelta(days=days_ago)
    ingest.store([Hit(kind, delivery(source, name).pk, at, "203.0.113.5", agent, head, link,
                      value)])


def selected(workspace, *conditions, now=NOW) -> set[str]:
    definition = {"op": "and", "conditions": list(conditions)}
    sql = set(segments.segment_queryset(workspace, definition, now=now)
              .values_list("email", flat=True))
    members = list(Member.objects.filter(workspace=workspace))
    python = {m.email for m in segments.Evaluator(workspace, now=now).select(members, definition)}
    assert sql == python
    return {email.split("@")[0] for email in sql}


def test_opened_or_not_one_mail_or_any_and_a_click_is_an_open(workspace, mails):
    winter, spring = mails
    hit(winter, "taro", "open")
    hit(spring, "hanako", "click", link=1)  # images blocked: the click says she read it
    hit(winter, "jiro", "open", head=True)  # a link checker, not jiro
    hit(winter, "jiro", "open", agent="Mozilla/5.0")  # Apple's privacy proxy, not jiro
    assert selected(workspace, response_condition("opened", winter.pk)) == {"taro"}
    assert selected(workspace, response_condition("not_opened", winter.pk)) == {"hanako", "jiro"}
    assert selected(workspace, response_condition("opened", spring.pk)) == {"hanako"}
    assert selected(workspace, response_condition("opened")) == {"taro", "hanako"}
    assert selected(workspace, response_condition("not_opened")) == {"jiro"}
    # One mail and any mail in one definition: the evaluator reads both, and keeps them apart.
    assert selected(workspace, response_condition("opened"),
                    response_condition("opened", winter.pk)) == {"taro"}
    # With a day count the events answer, and say the same.
    assert selected(workspace, response_condition("opened", spring.pk, days=7)) == {"hanako"}
    assert selected(workspace, response_condition("not_opened", days=7)) == {"jiro"}


def test_clicks_on_any_link_or_one_link_and_conversions(workspace, mails):
    winter, spring = mails
    hit(spring, "hanako", "click", link=1)
    hit(winter, "taro", "click", link=0, days_ago=2)
    hit(winter, "taro", "conversion", days_ago=1.9, value=12800)
    hit(winter, "jiro", "click", link=0, agent="Mimecast Link Scanner")  # a security gateway
    hit(winter, "jiro", "conversion")  # no click of his before it: not credited to the mail
    assert selected(workspace, response_condition("clicked", spring.pk, link=1)) == {"hanako"}
    assert selected(workspace, response_condition("clicked", spring.pk, link=0)) == set()
    assert selected(workspace, response_condition("clicked", winter.pk)) == {"taro"}
    assert selected(workspace, response_condition("clicked", winter.pk, link=0)) == {"taro"}
    assert selected(workspace, response_condition("not_clicked")) == {"jiro"}
    assert selected(workspace, response_condition("not_clicked", spring.pk, link=1)) == {
        "taro", "jiro"}
    assert selected(workspace, response_condition("converted", winter.pk)) == {"taro"}
    assert selected(workspace, response_condition("converted", days=1)) == set()
    assert selected(workspace, response_condition("converted", days=2)) == {"taro"}
    assert selected(workspace, response_condition("not_converted")) == {"hanako", "jiro"}


def test_within_the_last_n_days_counts_days_in_the_workspace_zone(workspace, mails):
    winter, _spring = mails
    # 00:30 on 15 June in Tokyo is still the 14th in UTC.
    now = dt.datetime(2024, 6, 14, 15, 30, tzinfo=dt.UTC)
    Delivery.objects.update(sent_at=now - dt.timedelta(days=40))
    start_of_13th = dt.datetime(2024, 6, 12, 15, 0, tzinfo=dt.UTC)  # 13 June 00:00 JST
    for name, at in (("taro", start_of_13th), ("hanako", start_of_13th - dt.timedelta(seconds=1)),
                     ("jiro", now - dt.timedelta(days=30))):
        ingest.store([Hit("open", delivery(winter, name).pk, at, "203.0.113.5", BROWSER)])
    assert selected(workspace, response_condition("opened", winter.pk, days=2),
                    now=now) == {"taro"}
    assert selected(workspace, response_condition("opened", days=3), now=now) == {
        "taro", "hanako"}
    assert selected(workspace, response_condition("opened", days=30), now=now) == {
        "taro", "hanako", "jiro"}
    assert selected(workspace, response_condition("not_opened", days=0), now=now) == {
        "taro", "hanako", "jiro"}


def test_received_means_sent_and_the_non_openers_are_those_who_received_it(workspace, mails):
    winter, spring = mails
    Delivery.objects.filter(pk=delivery(spring, "jiro").pk).update(status="failed", sent_at=None)
    hit(spring, "taro", "open")
    assert selected(workspace, response_condition("received", spring.pk)) == {"taro", "hanako"}
    assert selected(workspace, response_condition("not_received", spring.pk)) == {"jiro"}
    assert selected(workspace, response_condition("received", spring.pk),
                    response_condition("not_opened", spring.pk)) == {"hanako"}
    assert selected(workspace, response_condition("received", days=39)) == set()
    assert selected(workspace, response_condition("received", days=40)) == {
        "taro", "hanako", "jiro"}


def test_values_are_checked_against_the_workspace_and_the_mail(workspace, other_workspace, mails):
    winter, _spring = mails
    theirs = Source.objects.create(workspace=other_workspace, name="theirs",
                                   from_address="a@example.jp", subject="s")

    def error(operator, value):
        with pytest.raises(segments.SegmentError) as caught:
            segments.validate(workspace, {"op": "and", "conditions": [
                {"field": FIELD, "operator": operator, "value": value}]})
        return str(caught.value)

    assert "does not exist in this workspace" in error("opened", {"source": theirs.pk})
    assert "Only a click" in error("opened", {"source": winter.pk, "link": 0})
    assert "Choose the mail" in error("clicked", {"link": 0})
    assert "no link 3" in error("clicked", {"source": winter.pk, "link": 2})
    assert "Unknown setting" in error("opened", {"mail": winter.pk})
    assert "days" in error("opened", {"days": -1})
    assert "Choose a mail" in error("opened", [winter.pk])
    normalized = segments.validate(workspace, {"op": "and", "conditions": [
        {"field": FIELD, "operator": "clicked",
         "value": {"source": str(winter.pk), "link": "1", "days": "7"}}]})
    assert normalized["conditions"][0]["value"] == {"source": winter.pk, "link": 1, "days": 7}
    # An empty value means any mail, at any time.
    assert segments.validate(workspace, {"op": "and", "conditions": [
        {"field": FIELD, "operator": "opened"}]})["conditions"][0]["value"] == {}


def test_segment_pages_say_it_in_words(workspace, mails):
    winter, _spring = mails
    definition = {"op": "and", "conditions": [
        response_condition("clicked", winter.pk, link=1, days=7),
        response_condition("not_opened")]}
    rows = segments.describe(workspace, definition, allow_pii=False)["items"]
    assert (rows[0]["field"], rows[0]["operator"]) == ("Mail", "clicked")
    assert rows[0]["value"] == ("“冬のセール”, link 2 (https://shop.example.jp/guide), "
                                "within the last 7 days")
    assert (rows[1]["operator"], rows[1]["value"]) == ("did not open", "any mail")


def test_the_evaluator_reads_a_batch_of_members_in_one_query_per_table(
        workspace, mails, django_assert_num_queries):
    winter, spring = mails
    hit(winter, "taro", "click", link=0)
    evaluator = segments.Evaluator(workspace, now=NOW)
    prepared = evaluator.prepare({"op": "or", "conditions": [
        response_condition("received", spring.pk), response_condition("opened", winter.pk),
        response_condition("clicked", winter.pk, link=0, days=3)]})
    members = list(Member.objects.filter(workspace=workspace).order_by("email"))
    with django_assert_num_queries(4):  # list memberships, deliveries, responses, events
        evaluator.load([m.pk for m in members])
    with django_assert_num_queries(0):
        assert [evaluator.test(prepared, m) for m in members] == [True, True, True]


def test_the_builder_offers_mails_newest_first_and_the_links_of_one(
        owner_client, workspace, other_workspace, mails):
    winter, spring = mails
    page = owner_client.get("/members/segments/new/")
    catalog = page.context["catalog"]
    kind = catalog["kinds"]["response"]
    assert [m["id"] for m in kind["mails"]] == [spring.pk, winter.pk]
    assert any(f["name"] == FIELD and f["kind"] == "response" for f in catalog["fields"])
    links = owner_client.get(f"{kind['options']}&source={winter.pk}").json()["links"]
    assert links == [{"index": 0, "label": "https://shop.example.jp/sale?from=mail&x=1"},
                     {"index": 1, "label": "https://shop.example.jp/guide"}]
    theirs = Source.objects.create(workspace=other_workspace, name="theirs", subject="s",
                                   from_address="a@example.jp", html=HTML)
    assert owner_client.get(f"{kind['options']}&source={theirs.pk}").json() == {"links": []}
    assert owner_client.get("/members/segments/options/", {"kind": "nope"}).status_code == 404
    # Saved from the builder, the condition counts and is shown in words.
    hit(winter, "taro", "open")
    response = owner_client.post("/members/segments/new/", {
        "name": "冬を開封", "description": "", "definition": json.dumps({
            "op": "and", "conditions": [
                {"field": FIELD, "operator": "opened", "value": {"source": winter.pk}}]})})
    assert response.status_code == 302
    segment = Segment.objects.get(workspace=workspace, name="冬を開封")
    assert segments.segment_members(segment).get().email == "taro@example.jp"
    assert "冬のセール" in owner_client.get(f"/members/segments/{segment.pk}/").content.decode()


@pytest.fixture
def written(workspace):
    """The winter mail, sent to three members without the engine (whose event loop the
    browser's would collide with)."""
    winter = Source.objects.create(workspace=workspace, name="冬のセール", subject="冬のセール",
                                   from_address="news@example.jp", html=HTML)
    for name in ("taro", "hanako", "jiro"):
        member = Member.objects.create(workspace=workspace, email=f"{name}@example.jp")
        Delivery.objects.create(workspace=workspace, source=winter, member=member,
                                address=member.email, status="sent",
                                sent_at=NOW - dt.timedelta(days=40))
    return winter

def test_a_block_for_those_who_opened_a_mail_reaches_only_them(workspace, mails):
    """A conditional block on a response, as the engine sends it: the responses are read for
    the whole batch before rendering."""
    from tayori.delivery.models import OutboxMessage
    from tayori.tracking.responses import response_condition

    winter, _spring = mails
    hit(winter, "taro", "open")
    OutboxMessage.objects.all().delete()
    follow_up = sending.create_bulk(workspace, sending.Content(
        subject="ご案内", html="<p>{% if shown[0] %}ご覧いただきありがとうございます{% endif %}</p>",
        text="本文", from_address="news@example.jp"),
        name="ご案内", segment=Segment.objects.get(workspace=workspace, name="all"))
    follow_up.conditions = [{"op": "and", "conditions": [
        response_condition("opened", winter.pk)]}]
    follow_up.save(update_fields=["conditions"])
    queue.start(follow_up)
    asyncio.run(Worker(name="test").drain())
    thanked = {m.recipient.split("@")[0] for m in OutboxMessage.objects.all()
               if "ありがとうございます" in _html(m)}
    assert thanked == {"taro"}


def _html(message) -> str:
    import email
    import email.policy

    parsed = email.message_from_bytes(bytes(message.raw), policy=email.policy.default)
    return parsed.get_body(("html",)).get_content()



@pytest.mark.browser
@pytest.mark.usefixtures("signed_in")
def test_an_operator_picks_a_mail_a_link_and_days_in_the_builder(workspace, written, page):
    winter = written
    hit(winter, "taro", "click", link=1, days_ago=3)
    hit(winter, "hanako", "click", link=0, days_ago=3)
    page.goto("/members/segments/new/")
    count_is(page, 3)
    page.get_by_role("button", name="+ Add condition").click()
    row = page.locator(".seg-row").nth(0)
    row.get_by_label("Field").select_option(label="Mail")
    row.get_by_label("Operator").select_option("clicked")
    count_is(page, 2)  # any mail, any link, any time
    row.get_by_label("Mail").select_option(str(winter.pk))
    row.get_by_label("Link").select_option(label="2. https://shop.example.jp/guide")
    count_is(page, 1)
    row.get_by_label("within the last").fill("2")
    count_is(page, 0)
    row.get_by_label("within the last").fill("")
    count_is(page, 1)
    page.get_by_label("Name").fill("ガイドを見た")
    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url("**/members/segments/*/")
    segment = Segment.objects.get(workspace=workspace, name="ガイドを見た")
    assert segment.definition["conditions"] == [response_condition("clicked", winter.pk, link=1)]
    assert "link 2 (https://shop.example.jp/guide)" in page.content()

