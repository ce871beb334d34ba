"""Who read the mail with what: the mail client or browser and the device from a user agent,
and the recipient's domain with Japanese carriers named (their filters and habits differ)."""

from __future__ import annotations

import re
from functools import lru_cache

# Checked in order: the first match names the client.
_CLIENTS = [
    ("Outlook", re.compile(r"Microsoft Outlook|MSOffice|ms-office|Outlook-", re.I)),
    ("Thunderbird", re.compile(r"Thunderbird", re.I)),
    ("Gmail", re.compile(r"GoogleImageProxy|via ggpht\.com", re.I)),
    ("Yahoo!メール", re.compile(r"YahooMailProxy|Yahoo", re.I)),
    ("Apple Mail", re.compile(r"AppleWebKit(?!.*(Safari|Chrome|CriOS|Line|FBAN))", re.I)),
    ("LINE", re.compile(r"\bLine/", re.I)),
    ("Edge", re.compile(r"Edg/|Edge/", re.I)),
    ("Chrome", re.compile(r"Chrome/|CriOS/", re.I)),
    ("Firefox", re.compile(r"Firefox/|FxiOS/", re.I)),
    ("Safari", re.compile(r"Safari/", re.I)),
]
_TABLET = re.compile(r"iPad|Tablet|Android(?!.*Mobile)", re.I)
_PHONE = re.compile(r"iPhone|iPod|Android.*Mobile|Mobile|DoCoMo|KDDI|SoftBank", re.I)

# Carrier and large free-mail domains, as operators know them.
CARRIERS = {
    "docomo.ne.jp": "docomo", "au.com": "au", "ezweb.ne.jp": "au",
    "softbank.ne.jp": "SoftBank", "i.softbank.jp": "SoftBank", "disney.ne.jp": "SoftBank",
    "ymobile.ne.jp": "Y!mobile", "y-mobile.ne.jp": "Y!mobile", "rakuten.jp": "楽天モバイル",
    "uqmobile.jp": "UQ mobile",
}
WEBMAIL = {
    "gmail.com": "Gmail", "googlemail.com": "Gmail", "yahoo.co.jp": "Yahoo!メール",
    "ymail.ne.jp": "Yahoo!メール", "outlook.jp": "Outlook.com", "outlook.com": "Outlook.com",
    "hotmail.com": "Outlook.com", "hotmail.co.jp": "Outlook.com", "live.jp": "Outlook.com",
    "icloud.com": "iCloud", "me.com": "iCloud", "mac.com": "iCloud",
}


@lru_cache(maxsize=4096)
def client_of(user_agent: str) -> tuple[str, str]:
    """(client, device) for a user agent; device is desktop, phone or tablet."""
    client = next((name for name, pattern in _CLIENTS if pattern.search(user_agent)), "other")
    device = ("tablet" if _TABLET.search(user_agent)
              else "phone" if _PHONE.search(user_agent) else "desktop")
    return client, device


def domain_group(address: str) -> str:
    """The domain of an address, named when it is a carrier's or a large webmail's."""
    domain = address.rpartition("@")[2].lower()
    name = CARRIERS.get(domain) or WEBMAIL.get(domain)
    return f"{domain} ({name})" if name else domain


def is_carrier(address: str) -> bool:
    return address.rpartition("@")[2].lower() in CARRIERS
