"""Telling machines from people. Mail privacy proxies fetch every image when mail arrives (Apple
Mail Privacy Protection), security gateways follow every link seconds after delivery, and link
checkers send HEAD requests; counting them as opens and clicks would make every campaign look
read. Each event gets a reason (``Machine``) or "" for a person; the dashboards show machines
apart and leave them out of the human rates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re

from tayori.tracking.models import Kind, Machine

# Apple's privacy proxy fetches from Apple's own network (17.0.0.0/8) with a bare user agent.
_APPLE = ipaddress.ip_network("17.0.0.0/8")
_BARE_MOZILLA = "Mozilla/5.0"
# Pre-fetching proxies that load images on arrival, not on reading.
_PREFETCH = re.compile(r"YahooMailProxy|Yahoo! Slurp|Outlook-iOS-Android.*prefetch", re.I)
# Security gateways, link checkers and HTTP libraries: none of them is a person reading mail.
_SCANNERS = re.compile(
    r"barracuda|mimecast|proofpoint|symantec|messagelabs|trend ?micro|fortinet|fortiguard|"
    r"sophos|cisco|ironport|forcepoint|zscaler|paloalto|checkpoint|safelinks|microsoft office"
    r"|ms-office|bitdefender|kaspersky|mailscanner|linkscan|urldefense", re.I)
_BOTS = re.compile(r"bot\b|crawler|spider|curl/|wget/|python-requests|python-urllib|"
                   r"go-http-client|java/|okhttp|libwww|httpclient|headless|phantomjs|"
                   r"^$", re.I)
# Several links of one message followed within this many seconds: a scanner walking them.
BURST_SECONDS = 2
BURST_LINKS = 3


def classify(kind: str, *, head: bool, ip: str | None, user_agent: str, at: dt.datetime,
             sent_at: dt.datetime | None, scanner_seconds: int) -> str:
    """The machine reason for one open or click, or "" for a person."""
    if head:
        return Machine.HEAD
    agent = user_agent.strip()
    if _SCANNERS.search(agent):
        return Machine.SCANNER
    if kind == Kind.OPEN and (_PREFETCH.search(agent) or _from_apple(ip, agent)):
        return Machine.PROXY
    if _BOTS.search(agent):
        return Machine.BOT
    if (kind == Kind.CLICK and sent_at is not None
            and (at - sent_at).total_seconds() < scanner_seconds):
        return Machine.SCANNER
    return Machine.HUMAN


def _from_apple(ip: str | None, agent: str) -> bool:
    if agent == _BARE_MOZILLA:
        return True
    try:
        return ip is not None and ipaddress.ip_address(ip) in _APPLE
    except ValueError:
        return False


def bursts(clicks: list[tuple[dt.datetime, int]]) -> set[int]:
    """Positions in ``clicks`` (one delivery's (time, link index), any order) that belong to a
    burst: BURST_LINKS or more different links within BURST_SECONDS."""
    order = sorted(range(len(clicks)), key=lambda i: clicks[i][0])
    flagged: set[int] = set()
    start = 0
    for end in range(len(order)):
        while (clicks[order[end]][0] - clicks[order[start]][0]).total_seconds() > BURST_SECONDS:
            start += 1
        window = order[start:end + 1]
        if len({clicks[i][1] for i in window}) >= BURST_LINKS:
            flagged.update(window)
    return flagged


def anonymize(ip: str | None, mode: str) -> str | None:
    """An event's IP address as the workspace keeps it: full, its network only, or none."""
    if not ip or mode == "none":
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if mode == "full":
        return str(address)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
