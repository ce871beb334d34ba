"""Machines told from people, on the user agents and habits seen in real tracking logs."""

import datetime as dt

import pytest

from tayori.tracking.clients import client_of, domain_group
from tayori.tracking.machines import anonymize, bursts, classify

SENT = dt.datetime(2026, 11, 30, 0, 0, tzinfo=dt.UTC)
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Mobile/15E148")
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/124.0.0.0 Safari/537.36")
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"

CASES = [
    # kind, user agent, ip, seconds after sending, HEAD, expected
    ("open", IPHONE, "203.0.113.9", 3600, False, ""),
    ("open", GMAIL, "66.249.84.1", 3600, False, ""),  # Gmail fetches when the mail is opened
    ("open", "Mozilla/5.0", "17.58.1.2", 5, False, "proxy"),  # Apple Mail Privacy Protection
    ("open", IPHONE, "17.120.0.4", 60, False, "proxy"),
    ("open", "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
     "98.136.1.1", 30, False, "proxy"),
    ("click", CHROME, "203.0.113.9", 3600, False, ""),
    ("click", CHROME, "203.0.113.9", 3, False, "scanner"),  # seconds after delivery
    ("click", "Mozilla/5.0 (compatible; Barracuda Sentinel)", "64.235.1.1", 3600, False,
     "scanner"),
    ("click", "Mimecast URL Protect", "205.139.110.1", 3600, False, "scanner"),
    ("click", CHROME, "203.0.113.9", 3600, True, "head"),
    ("click", "python-requests/2.31", "198.51.100.7", 3600, False, "bot"),
    ("click", "curl/8.5.0", "198.51.100.7", 3600, False, "bot"),
    ("click", "", "198.51.100.7", 3600, False, "bot"),
    ("open", "Googlebot/2.1 (+http://www.google.com/bot.html)", "66.249.66.1", 3600, False,
     "bot"),
]


@pytest.mark.parametrize(("kind", "agent", "ip", "after", "head", "expected"), CASES)
def test_classify(kind, agent, ip, after, head, expected):
    at = SENT + dt.timedelta(seconds=after)
    assert classify(kind, head=head, ip=ip, user_agent=agent, at=at, sent_at=SENT,
                    scanner_seconds=10) == expected


def test_a_scanner_walking_every_link_within_seconds_is_a_burst():
    t = SENT + dt.timedelta(hours=1)
    clicks = [(t, 0), (t + dt.timedelta(seconds=1), 1), (t + dt.timedelta(seconds=1.5), 2),
              (t + dt.timedelta(minutes=5), 0)]
    assert bursts(clicks) == {0, 1, 2}
    # A person clicking the same link twice, and two links a minute apart, is not a burst.
    assert bursts([(t, 0), (t, 0), (t + dt.timedelta(seconds=60), 1)]) == set()


@pytest.mark.parametrize(("ip", "mode", "kept"), [
    ("203.0.113.77", "full", "203.0.113.77"),
    ("203.0.113.77", "truncated", "203.0.113.0"),
    ("2001:db8:1234:5678::1", "truncated", "2001:db8:1234::"),
    ("203.0.113.77", "none", None),
    ("not an ip", "full", None),
])
def test_ip_addresses_are_kept_as_the_workspace_chose(ip, mode, kept):
    assert anonymize(ip, mode) == kept


def test_clients_devices_and_carrier_domains():
    assert client_of(IPHONE) == ("Apple Mail", "phone")
    assert client_of(CHROME) == ("Chrome", "desktop")
    assert client_of(GMAIL)[0] == "Gmail"
    assert domain_group("taro@docomo.ne.jp") == "docomo.ne.jp (docomo)"
    assert domain_group("hanako@ezweb.ne.jp") == "ezweb.ne.jp (au)"
    assert domain_group("x@i.softbank.jp") == "i.softbank.jp (SoftBank)"
    assert domain_group("x@example.co.jp") == "example.co.jp"
