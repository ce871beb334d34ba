"""The public endpoints as mail clients, browsers and mailbox providers call them: tokens
tampered with, unknown links, repeats, and RFC 8058 one-click unsubscribe."""

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from tayori.delivery.models import Delivery
from tayori.members.models import ConsentRecord, ListMembership, Member, MemberList
from tayori.tracking import ingest
from tayori.tracking.models import Event, Link, Response, Rollup
from tayori.tracking.views import PIXEL

pytestmark = pytest.mark.django_db(transaction=True)
BROWSER = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")


@pytest.fixture
def read_later(sent):
    """The mails were sent an hour ago: a click now is not a scanner's seconds after delivery."""
    Delivery.objects.update(sent_at=timezone.now() - dt.timedelta(hours=1))
    return sent


def test_a_click_redirects_only_to_the_link_that_was_in_the_mail(client, read_later):
    taro = read_later["taro@example.jp"]
    response = client.get(taro.clicks[0], HTTP_USER_AGENT=BROWSER)
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert (target.netloc, target.path) == ("shop.example.jp", "/sale")
    query = parse_qs(target.query)
    assert query["from"] == ["mail"] and query["x"] == ["1"] and query["tayori_c"]
    assert ingest.flush() == 1
    event = Event.objects.get()
    assert (event.kind, event.link_index, event.machine) == ("click", 0, "")
    assert event.delivery_id == taro.delivery.pk and event.member_id == taro.delivery.member_id
    assert sorted(Link.objects.values_list("index", "url")) == [
        (0, "https://shop.example.jp/sale?from=mail&x=1"), (1, "https://shop.example.jp/guide")]


def test_forged_tampered_and_unknown_click_tokens_are_refused(client, sent):
    token = sent["taro@example.jp"].clicks[0]
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert client.get(tampered).status_code == 404
    assert client.get("/t/c/zz-not-hex").status_code == 404
    # A valid token for a link index the message never had.
    from tayori.delivery import tokens

    delivery = sent["taro@example.jp"].delivery.pk
    assert client.get(f"/t/c/{tokens.make(tokens.CLICK, delivery, 7)}").status_code == 404
    # An open token is not a click token: each purpose has its own key.
    assert client.get(f"/t/c/{tokens.make(tokens.OPEN, delivery, 0)}").status_code == 404
    assert ingest.flush() == 0


def test_opens_repeat_in_totals_but_count_once_per_recipient(client, read_later):
    taro, hanako = read_later["taro@example.jp"], read_later["hanako@example.jp"]
    for mail in (taro, taro, hanako):
        response = client.get(mail.open, HTTP_USER_AGENT=BROWSER)
        assert response.status_code == 200 and response.content == PIXEL
        assert response["Cache-Control"].startswith("no-store")
    # A forged pixel still gets an image, and nothing is counted.
    assert client.get(taro.open.replace(".gif", "00.gif")).status_code == 200
    ingest.flush()
    rollup = Rollup.objects.get(kind="open")
    assert (rollup.total, rollup.unique, rollup.machine) == (3, 2, 0)
    assert Response.objects.get(delivery=taro.delivery).opens == 2


def test_one_click_unsubscribe_as_a_mailbox_provider_posts_it(client, sent, workspace):
    taro = sent["taro@example.jp"]
    member = Member.objects.get(email="taro@example.jp")
    ConsentRecord.objects.create(workspace=workspace, member=member, address=member.email,
                                 method="web form")
    # RFC 8058 §3.2: a POST without cookies, form-encoded, to the List-Unsubscribe URL.
    for _attempt in range(2):  # providers may retry; the answer stays the same
        response = client.post(taro.unsubscribe, "List-Unsubscribe=One-Click",
                               content_type="application/x-www-form-urlencoded")
        assert response.status_code == 200
    member.refresh_from_db()
    assert member.status == "unsubscribed"
    consent = ConsentRecord.objects.filter(member=member, method="web form").get()
    assert consent.withdrawn_at is not None and consent.withdrawn_method == "one-click"
    ingest.flush()
    assert Rollup.objects.get(kind="unsubscribe").unique == 1
    assert Member.objects.get(email="hanako@example.jp").status == "active"


def test_the_unsubscribe_page_and_the_preference_center(client, sent, workspace):
    taro = sent["taro@example.jp"]
    member = Member.objects.get(email="taro@example.jp")
    news = MemberList.objects.create(workspace=workspace, name="新着情報", public=True)
    sale = MemberList.objects.create(workspace=workspace, name="セール情報", public=True)
    MemberList.objects.create(workspace=workspace, name="社内用")  # not offered
    ListMembership.objects.create(member_list=news, member=member)
    page = client.get(taro.unsubscribe).content.decode()
    assert "ta***@example.jp" in page and "社内用" not in page and "セール情報" in page
    client.post(taro.unsubscribe, {"action": "lists", "list": [str(sale.pk)]})
    assert set(ListMembership.objects.filter(member=member).values_list(
        "member_list__name", flat=True)) == {"セール情報"}
    response = client.post(taro.unsubscribe, {"action": "unsubscribe"})
    assert 'id="unsubscribed"' in response.content.decode()
    member.refresh_from_db()
    assert member.status == "unsubscribed"
    assert client.get("/t/u/00" + taro.unsubscribe[5:]).status_code == 404


def test_the_web_version_shows_that_recipients_own_mail(client, sent):
    response = client.get(sent["hanako@example.jp"].web)
    assert response.status_code == 200
    assert "hanako様" in response.content.decode()
    assert "sandbox" in response["Content-Security-Policy"]
    assert client.get(sent["hanako@example.jp"].web + "0").status_code == 404


def test_a_conversion_counts_after_a_click_within_the_window(client, read_later):
    taro, jiro = read_later["taro@example.jp"], read_later["jiro@example.jp"]
    landing = client.get(taro.clicks[1], HTTP_USER_AGENT=BROWSER)["Location"]
    token = parse_qs(urlsplit(landing).query)["tayori_c"][0]
    ingest.flush()
    assert client.get(f"/t/v/{token}.gif", {"value": "12,800"}).status_code == 200
    # Jiro never clicked: his conversion token (had he one) is not attributed.
    from tayori.delivery import tokens

    client.get(f"/t/v/{tokens.make(tokens.CONVERSION, jiro.delivery.pk)}.gif")
    ingest.flush()
    assert Event.objects.filter(kind="conversion").count() == 1
    response = Response.objects.get(delivery=taro.delivery)
    assert (response.conversions, response.value) == (1, 12800)
    # Eight days later, past the 7-day window: the click was long ago.
    Response.objects.filter(delivery=taro.delivery).update(
        last_clicked_at=timezone.now() - dt.timedelta(days=8))
    client.get(f"/t/v/{token}.gif")
    ingest.flush()
    assert Event.objects.filter(kind="conversion").count() == 1
    assert client.get("/t/tag.js")["Content-Type"].startswith("text/javascript")


def test_one_click_over_http_exactly_as_gmail_sends_it(live_server, sent):
    """A real HTTP POST to the List-Unsubscribe URL: form-encoded body, no cookies, no
    Referer, no CSRF token — and a quick 2xx."""
    import urllib.request

    taro = sent["taro@example.jp"]
    request = urllib.request.Request(
        live_server.url + taro.unsubscribe, data=b"List-Unsubscribe=One-Click", method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "User-Agent": "Mozilla/5.0 (compatible; Google-List-Unsubscribe)"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    assert Member.objects.get(email="taro@example.jp").status == "unsubscribed"


def test_a_conversion_is_credited_to_the_link_clicked_last(client, read_later):
    from tayori.tracking.models import Breakdown

    taro = read_later["taro@example.jp"]
    client.get(taro.clicks[0], HTTP_USER_AGENT=BROWSER)
    ingest.flush()  # the next click comes later than the writer's second
    landing = client.get(taro.clicks[1], HTTP_USER_AGENT=BROWSER)["Location"]
    ingest.flush()
    token = parse_qs(urlsplit(landing).query)["tayori_c"][0]
    client.get(f"/t/v/{token}.gif", {"value": "5000"})
    ingest.flush()
    assert Event.objects.get(kind="conversion").link_index == 1
    row = Breakdown.objects.get(kind="conversion", dimension="link")
    assert (row.value, row.total, row.unique) == ("1", 1, 1)
