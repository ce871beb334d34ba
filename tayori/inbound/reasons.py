"""Why a recipient failed: the reason vocabulary (Sisimai's names), its labels, and the classifier
that turns an enhanced status code, an SMTP reply and its text into a reason and hard/soft.

Pure functions and pattern tables, no database: reports (`dsn`), provider feeds and the
delivery engine's synchronous replies all go through `classify`, so one reply means one thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

REASONS: tuple[str, ...] = (
    "userunknown", "hostunknown", "hasmoved", "mailboxfull", "suspend", "filtered",
    "rejected", "blocked", "spamdetected", "virusdetected", "policyviolation", "authfailure",
    "contenterror", "mesgtoobig", "exceedlimit", "toomanyconn", "expired", "networkerror",
    "systemerror", "notaccept", "undefined")

LABELS: dict[str, str] = {
    "userunknown": _("Unknown user"),
    "hostunknown": _("Unknown domain"),
    "hasmoved": _("Address has moved"),
    "mailboxfull": _("Mailbox full"),
    "suspend": _("Mailbox disabled"),
    "filtered": _("Refused by the recipient's filter"),
    "rejected": _("Rejected by the receiving server"),
    "blocked": _("Sending IP blocked"),
    "spamdetected": _("Judged to be spam"),
    "virusdetected": _("Virus detected"),
    "policyviolation": _("Against the receiver's policy"),
    "authfailure": _("Sender authentication failed"),
    "contenterror": _("Invalid message content"),
    "mesgtoobig": _("Message too large"),
    "exceedlimit": _("Sending rate limit exceeded"),
    "toomanyconn": _("Too many connections"),
    "expired": _("Delivery time expired"),
    "networkerror": _("Network error"),
    "systemerror": _("Receiving system error"),
    "notaccept": _("Domain accepts no mail"),
    "undefined": _("Unknown reason"),
}

# Hard means "this address will never work": the mailbox or its domain does not exist, has
# moved, or declares it takes no mail. Everything else is about the moment (a full mailbox),
# about us (our IP, content, authentication) or about the recipient's own settings, and must
# not count against the address on its own.
HARD: frozenset[str] = frozenset({"userunknown", "hostunknown", "hasmoved", "notaccept"})

# Japanese mobile carrier mail domains; their subdomains count too (see is_carrier).
CARRIER_DOMAINS: frozenset[str] = frozenset({
    "docomo.ne.jp", "dwmail.jp",                                    # NTT docomo
    "ezweb.ne.jp", "biz.ezweb.ne.jp", "au.com", "biz.au.com",       # au (KDDI)
    "uqmobile.jp",
    "softbank.ne.jp", "i.softbank.jp", "vodafone.ne.jp",            # SoftBank
    "disney.ne.jp", "ymobile.ne.jp", "y-mobile.ne.jp",
    "pdx.ne.jp", "willcom.com", "wcm.ne.jp", "emnet.ne.jp", "emobile.ne.jp",  # ex-Willcom/EMOBILE
    "rakumail.jp",                                                  # Rakuten Mobile
})


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: str
    hard: bool


def _p(*alternatives: str) -> re.Pattern[str]:
    # The text is lower-cased once and every alternative starts with a literal character: the
    # regex engine then skips ahead to candidate characters in C instead of trying each
    # alternative at every position: several times faster than re.IGNORECASE on the same text.
    return re.compile("|".join(alternatives))


_NO = r"(?:does not|doesn't|did not) exist"
_OFF = r"\b(?:disabled|suspended|inactive|deactivated|locked|frozen|expired)"

# Diagnostic text, most specific first; the first table entry that matches decides. Words beat
# any status code: servers reuse codes loosely (Microsoft's 5.1.10 means "recipient not found",
# RFC 7505's means null MX) while their words say what happened.
_STRONG: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("virusdetected", _p("virus", "malware", "infected", "trojan", "eicar")),
    ("authfailure", _p(
        r"spf\b[^.;]{0,80}\b(?:fail|invalid|not pass|policy|reject)",
        r"dkim\b[^.;]{0,80}\b(?:fail|invalid|not pass|policy|reject)",
        r"dmarc\b[^.;]{0,80}\b(?:fail|invalid|not pass|policy|reject)",
        r"fail[^.;]{0,40}\b(?:spf|dkim|dmarc)\b", r"not pass[^.;]{0,40}\b(?:spf|dkim|dmarc)\b",
        "unauthenticated", r"authentication (?:check|information|requirement|level)",
        "sender is not authenticated", r"reverse (?:dns|hostname)", "ptr record", r"no ptr\b")),
    ("blocked", _p(
        "blacklist", "blocklist", "block list", "black list", "dnsbl", r"rbl\b", "spamhaus",
        "spamcop", "sorbs", "barracudacentral", r"listed (?:in|on|at|by)\b", r"is listed\b",
        "banned sending ip", r"\(s31(?:50|40|14)\)", r"\[bl2\d\]", "poor reputation",
        "ip reputation", "sender reputation", "blocked using", r"client host \S+ blocked")),
    ("spamdetected", _p(
        r"spam\b", "unsolicited", "junk mail", "spamassassin", "bulk mail",
        r"as (?:junk|bulk)\b")),
    ("toomanyconn", _p(
        r"too many (?:concurrent |simultaneous |smtp )*(?:connections|sessions)",
        r"connection (?:rate )?limit", r"max(?:imum)? (?:number of )?connections")),
    ("exceedlimit", _p(
        r"rate[- ]?limit", r"too many (?:messages|mails|e-?mails|recipients)",
        r"sending (?:rate|limit)", "receiving mail at a rate", "unexpected volume",
        r"\[tss0\d\]", r"daily (?:sending )?limit", r"hourly (?:sending )?limit",
        r"exceeded (?:the )?(?:rate|daily|hourly|sending) ")),
    ("mailboxfull", _p(
        r"mailbox (?:is )?full", r"mail ?box.{0,20}(?:over|exceed\w*) (?:its |the )?quota",
        r"over ?quota", r"quota ?(?:exceeded|exceeds|full)", r"exceeded (?:storage|quota)",
        r"insufficient (?:system )?storage", "out of storage", r"storage (?:space|allocation)",
        "no space left", "disk quota", "mailbox size limit", "too much mail data",
        r"mail ?folder is (?:full|over)", "容量超過", "容量オーバー")),
    ("mesgtoobig", _p(
        r"message (?:size|length) exceeds", r"message (?:is )?too (?:large|big)",
        r"exceeds (?:the )?(?:maximum|allowed|fixed)[^.;]{0,20}size",
        r"message size (?:limit|exceeded)", "size limit exceeded",
        r"maximum (?:message )?size")),
    ("notaccept", _p(r"does not accept (?:e-?)?mail", "null ?mx", "accepts no mail")),
    ("hostunknown", _p(
        r"host (?:or domain name )?not found", "host unknown", "unknown host", "no such domain",
        "nxdomain", f"domain {_NO}", r"domain (?:name )?not found",
        r"unrouteable (?:mail )?domain", "unrouteable address", "name service error",
        "no route to domain", "domain is not valid")),
    ("hasmoved", _p("has moved", "user not local", r"mailbox (?:has been )?moved")),
    ("suspend", _p(
        rf"account\b.{{0,40}}{_OFF}", rf"mailbox\b.{{0,20}}{_OFF}", rf"user\b.{{0,20}}{_OFF}",
        rf"recipient\b.{{0,20}}{_OFF}", "temporarily limited",
        r"inactive (?:user|account|mailbox)")),
    ("filtered", _p(
        "domain filter", r"recipient'?s? (?:filter|settings|preferences)",
        r"user'?s (?:filter|settings)", r"rejected by (?:the )?recipient",
        r"blocked by (?:the )?recipient", "refused due to recipient",
        "only accepting mail from specific", "受信拒否", "指定受信")),
    ("userunknown", _p(
        "user ?unknown", r"unknown (?:user|recipient|mailbox|local[- ]?part|address|alias)",
        r"no such (?:user|mailbox|recipient|account|address|local user)", "no mailbox",
        rf"user\b[^.;]{{0,40}}{_NO}", rf"mailbox\b[^.;]{{0,40}}{_NO}",
        rf"recipient\b[^.;]{{0,40}}{_NO}", rf"account\b[^.;]{{0,40}}{_NO}",
        rf"address\b[^.;]{{0,40}}{_NO}", rf"addressee\b[^.;]{{0,40}}{_NO}",
        r"user (?:not found|unknown)", r"mailbox (?:not found|unknown)",
        r"recipient (?:not found|unknown)", r"account (?:not found|unknown)",
        "addressee unknown", r"recip(?:ient)?notfound", r"invalid (?:recipient|mailbox|user)",
        r"not a valid (?:recipient|mailbox|user)", "bad recipient",
        r"user doesn't have a \S+ account", r"as\(201806281\)",
        "ユーザ.{0,11}(?:存在しません|見つかりません)", "アカウント.{0,10}(?:存在しません|見つかりません)",
        "宛先.{0,10}(?:存在しません|見つかりません)", "メールボックス.{0,10}(?:存在しません|見つかりません)")),
    ("rejected", _p(
        r"relay (?:access )?denied", "relaying denied", "relay not permitted",
        "not permitted to relay", "unable to relay", "we do not relay",
        r"sender (?:address )?(?:rejected|denied|refused|not allowed)", "sender verify failed",
        "domain of sender address")),
    ("policyviolation", _p(
        r"policy (?:reasons|violation|restriction)", r"violat\w*[^.;]{0,30}polic",
        "administrative prohibition", "prohibited", r"requires? (?:tls|encryption|starttls)")),
    ("contenterror", _p(
        "line too long", "malformed", r"invalid (?:header|mime|message)", r"bare (?:lf|cr)",
        r"header (?:is )?too", r"attachment[^.;]{0,30}(?:not allowed|blocked|prohibited)",
        r"file type[^.;]{0,30}(?:not allowed|blocked|prohibited)", "content rejected")),
    ("expired", _p(
        "retry timeout exceeded", "message expired", "delivery time expired", "expired after",
        r"could not be delivered (?:for|within|in) \d", r"was not delivered (?:for|within|in) \d",
        r"has not been delivered (?:for|within|in) \d", "timed out in queue")),
    ("networkerror", _p(
        r"connection (?:refused|reset|timed out|closed|lost)", "timed? ?out",
        r"network (?:is )?unreachable", "no route to host", "lost connection",
        "could not connect", "unable to connect", r"connect to \S+ failed", "host unreachable",
        "broken pipe", r"tls (?:handshake|negotiation) failed", "name resolution",
        r"dns (?:lookup|query) fail")),
    ("systemerror", _p(
        "local error", r"internal (?:server )?error", r"system (?:error|problem|failure)",
        "mail loop", "loops back to myself", "routing loop", "too many hops",
        "configuration error", "out of memory", "resources temporarily unavailable")),
)

# Words too common to beat a specific status code, consulted after it.
_WEAK: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("userunknown", _p(r"mailbox (?:is )?(?:unavailable|not available)", "invalid address",
                       "bad address")),
    ("blocked", _p("blocked")),
    ("rejected", _p("reject", "denied", "refused", "not allowed", "not permitted")),
    ("exceedlimit", _p("exceed")),
    ("systemerror", _p("temporar", "try again later", "unavailable", "busy", "deferred")),
)

# RFC 3463 (and its registry) subject.detail -> reason, for codes that name one cause.
_STATUS: dict[str, str] = {
    "1.1": "userunknown", "1.2": "hostunknown", "1.3": "userunknown", "1.6": "hasmoved",
    "1.7": "rejected", "1.8": "rejected", "1.10": "notaccept",
    "2.1": "suspend", "2.2": "mailboxfull", "2.3": "mesgtoobig", "2.4": "systemerror",
    "3.1": "mailboxfull", "3.2": "systemerror", "3.3": "contenterror", "3.4": "mesgtoobig",
    "3.5": "systemerror",
    "4.1": "networkerror", "4.2": "networkerror", "4.3": "networkerror", "4.4": "hostunknown",
    "4.5": "toomanyconn", "4.6": "systemerror", "4.7": "expired",
    "5.1": "contenterror", "5.2": "contenterror", "5.3": "exceedlimit", "5.4": "contenterror",
    "5.5": "contenterror", "5.6": "contenterror",
    "6.1": "contenterror", "6.2": "contenterror", "6.3": "contenterror", "6.4": "contenterror",
    "6.5": "contenterror", "6.6": "contenterror", "6.7": "contenterror", "6.8": "contenterror",
    "6.9": "contenterror", "6.10": "contenterror",
    "7.2": "policyviolation", "7.4": "policyviolation", "7.5": "authfailure",
    "7.7": "contenterror", "7.8": "authfailure", "7.10": "policyviolation",
    "7.11": "policyviolation", "7.13": "suspend", "7.14": "authfailure", "7.16": "mesgtoobig",
    "7.17": "hasmoved", "7.18": "hasmoved", "7.20": "authfailure", "7.21": "authfailure",
    "7.22": "authfailure", "7.23": "authfailure", "7.24": "authfailure", "7.25": "authfailure",
    "7.26": "authfailure", "7.27": "authfailure", "7.28": "exceedlimit", "7.29": "authfailure",
    "7.30": "policyviolation",
}
# Codes that only name a class of trouble: used when neither a specific code nor any words
# said more. x.7.0 and x.7.1 are what receivers answer for spam and block decisions.
_GENERIC_STATUS: dict[str, str] = {"7.0": "spamdetected", "7.1": "rejected"}
_GENERIC_SUBJECT: dict[str, str] = {
    "3": "systemerror", "4": "networkerror", "6": "contenterror", "7": "rejected"}
# RFC 5321 reply texts, the last resort.
_REPLY: dict[int, str] = {
    421: "systemerror", 451: "systemerror", 452: "mailboxfull", 551: "hasmoved",
    552: "mailboxfull"}

# Japanese mobile carriers apply the subscriber's own filters (受信拒否設定, 指定受信,
# なりすまし規制) in SMTP and answer with the words they use for a missing mailbox: docomo
# says "550 Unknown user x@docomo.ne.jp" (at RCPT for "mobile mail only", after DATA for
# address and domain filters), au "550 <x@ezweb.ne.jp>: User unknown" or "550 : User unknown",
# SoftBank "550 Invalid recipient: <x>". A member who has not yet allowed our domain would lose
# their address if we believed them, and their next sign-up mail would vanish; so from a
# carrier an "unknown", "rejected" or unexplained permanent refusal is `filtered` and soft, and
# only words that say the mailbox itself does not exist stay `userunknown`. The price: a carrier
# address that is really gone keeps being tried, since the carrier says it in the same words.
_CARRIER_AMBIGUOUS = frozenset({"userunknown", "rejected", "undefined"})
_MAILBOX_GONE = re.compile(
    rf"(?:user|mailbox|account|recipient|address) {_NO}|no such (?:user|mailbox|account)|存在しません")
# An address can only be unknown in answer to RCPT TO: refused at MAIL FROM, the trouble is our
# sender (SoftBank's "553 <domain> does not exist" for an envelope domain without DNS); refused
# after DATA, the recipient exists and something filtered the message.
_AT_MAIL_FROM = re.compile(r"(?:in reply to|after) mail from")
# The same when the reply names our sender (x.1.7 and x.1.8 are the sender's address and
# domain): "Sender address rejected: Domain not found" says our bounce domain has no DNS, not
# that the recipient's is gone, and must never suppress the recipient.
_OUR_SENDER = re.compile(
    r"sender address|sender (?:denied|refused|not allowed|rejected)|sender verify"
    r"|domain of sender|sender domain|mail from\b[^.;]{0,40}(?:rejected|refused|denied)")
_SENDER_STATUS = frozenset({"1.7", "1.8"})
_AFTER_DATA = re.compile(r"in reply to end of data|after end of data|after data\b")
# A temporary failure the sending MTA finally gave up on is "expired" when the cause was the
# path to the server; a cause the server named (a full mailbox) is more useful and stays.
_TRANSIENT_PATH = frozenset({"networkerror", "systemerror", "toomanyconn", "undefined"})

_QUOTED = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+"
                     r"|\bhost \S+\[[0-9a-f.:]+\]")
_STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\d|\.\d)")
_REPLY_RE = re.compile(r"\s*[#(]?([245]\d\d)(?:[ -]|$)")
_HOST_RE = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+")
_SCAN = 2000  # characters of a diagnostic worth reading; the cause comes first


def status_in(text: str) -> str:
    """The first enhanced status code (RFC 3463) in a text, '' if none."""
    found = _STATUS_RE.search(text or "")
    return ".".join(found.groups()) if found else ""


def is_carrier(address_or_host: str) -> bool:
    """Whether an address or host belongs to a Japanese mobile carrier (subdomains included)."""
    found = _HOST_RE.search((address_or_host or "").lower().rpartition("@")[2])
    labels = found.group(0).split(".") if found else []
    return any(".".join(labels[i:]) in CARRIER_DOMAINS for i in range(len(labels) - 1))


def classify(*, status: str = "", reply_code: int | None = None, diagnostic: str = "",
             recipient: str = "", remote_mta: str = "", action: str = "") -> Verdict:
    """status: enhanced status code like '5.1.1' ('' if unknown); reply_code: SMTP basic reply
    code (550) if known; diagnostic: the diagnostic text / SMTP reply text; recipient: the failed
    address (its domain matters for carriers); action: DSN Action ('failed', 'delayed', '').
    Never raises; unknown -> Verdict('undefined', hard by the first digit: 5 -> hard, 4 -> soft,
    none -> soft)."""
    text = diagnostic[:_SCAN].lower() if isinstance(diagnostic, str) else ""
    # Addresses say nothing of the cause ("<spam@example.jp>: User unknown"), and neither does
    # the name of the host that answered ("host mx.antispam.example.jp[192.0.2.1] said").
    text = _QUOTED.sub(" ", text)
    action = action.strip().lower() if isinstance(action, str) else ""
    if not isinstance(reply_code, int) or not 200 <= reply_code < 600:
        found = _REPLY_RE.match(text)
        reply_code = int(found.group(1)) if found else None
    given = _STATUS_RE.search(status) if isinstance(status, str) else None
    said = _STATUS_RE.search(text)
    # "Status: 5.0.0" from an MTA that could not map the reply; the reply's own code knows more.
    code = said if said and (not given or given.group(2, 3) == ("0", "0")) else given or said
    klass = code.group(1) if code else str(reply_code)[0] if reply_code else None
    key = f"{code.group(2)}.{code.group(3)}" if code else ""

    reason = (_first(_STRONG, text) or _STATUS.get(key) or _first(_WEAK, text)
              or _GENERIC_STATUS.get(key) or _GENERIC_SUBJECT.get(key.partition(".")[0])
              or _REPLY.get(reply_code or 0) or "undefined")

    if _AT_MAIL_FROM.search(text) or key in _SENDER_STATUS or _OUR_SENDER.search(text):
        if reason in ("userunknown", "filtered", "hostunknown", "undefined"):
            reason = "rejected"
    elif reason == "userunknown" and _AFTER_DATA.search(text):
        reason = "filtered"
    elif (klass != "4" and reason in _CARRIER_AMBIGUOUS and not _MAILBOX_GONE.search(text)
            and (is_carrier(recipient) or is_carrier(remote_mta))):
        reason = "filtered"
    if action == "failed" and klass == "4" and reason in _TRANSIENT_PATH:
        reason = "expired"

    if action == "delayed" or klass != "5":
        hard = False
    else:
        hard = reason == "undefined" or reason in HARD
    return Verdict(reason, hard)


def classify_reply(reply: str, *, recipient: str = "") -> Verdict:
    """A synchronous SMTP reply as stored by the delivery engine, e.g. '550 5.1.1 <a@b.jp>:
    Recipient address rejected: User unknown' or '452 4.2.2 Mailbox full' or free text like
    'connection refused' / 'timed out' (-> networkerror, soft). Parses the reply code and an
    enhanced status if present and calls classify."""
    text = " ".join(reply.split()) if isinstance(reply, str) else ""
    found = _REPLY_RE.match(text)
    return classify(status=status_in(text), reply_code=int(found.group(1)) if found else None,
                    diagnostic=text, recipient=recipient)


def _first(table: tuple[tuple[str, re.Pattern[str]], ...], text: str) -> str:
    for reason, pattern in table:
        if pattern.search(text):
            return reason
    return ""
