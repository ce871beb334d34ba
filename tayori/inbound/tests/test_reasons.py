"""The classifier: status codes, reply words, carriers' filters, hard and soft, synchronous replies."""

from __future__ import annotations

import pytest
from django.utils import translation
from django.utils.functional import Promise

from tayori.inbound.reasons import (
    CARRIER_DOMAINS,
    HARD,
    LABELS,
    REASONS,
    Verdict,
    classify,
    classify_reply,
    is_carrier,
    status_in,
)


def test_every_reason_has_a_translatable_label():
    assert set(LABELS) == set(REASONS) and len(REASONS) == 21
    assert all(isinstance(label, Promise) for label in LABELS.values())
    with translation.override("en"):
        assert str(LABELS["userunknown"]) == "Unknown user"
    with translation.override("ja"):
        assert str(LABELS["userunknown"]) == "ユーザー不明"


def test_only_reasons_about_the_address_itself_are_hard():
    assert HARD == {"userunknown", "hostunknown", "hasmoved", "notaccept"}
    assert not HARD & {"mailboxfull", "filtered", "expired", "networkerror", "toomanyconn",
                       "systemerror", "blocked", "spamdetected", "authfailure"}


@pytest.mark.parametrize(("status", "reason", "hard"), [
    ("5.1.1", "userunknown", True),
    ("5.1.2", "hostunknown", True),
    ("5.4.4", "hostunknown", True),
    ("5.1.6", "hasmoved", True),
    ("5.1.10", "notaccept", True),  # RFC 7505 null MX
    ("5.2.1", "suspend", False),
    ("5.2.2", "mailboxfull", False),
    ("4.2.2", "mailboxfull", False),
    ("5.2.3", "mesgtoobig", False),
    ("5.3.4", "mesgtoobig", False),
    ("5.3.0", "systemerror", False),
    ("4.4.1", "networkerror", False),
    ("4.4.2", "networkerror", False),
    ("4.4.7", "expired", False),
    ("5.5.3", "exceedlimit", False),
    ("5.6.0", "contenterror", False),
    ("5.7.1", "rejected", False),
    ("5.7.0", "spamdetected", False),
    ("5.7.26", "authfailure", False),
    ("5.7.25", "authfailure", False),
    ("5.7.27", "authfailure", False),
    ("5.0.0", "undefined", True),
    ("4.0.0", "undefined", False),
])
def test_a_status_code_alone(status, reason, hard):
    assert classify(status=status) == Verdict(reason, hard)


@pytest.mark.parametrize(("diagnostic", "reason"), [
    ("550 5.0.0 <a@example.jp>... User unknown", "userunknown"),
    ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient a@contoso.co.jp not found by SMTP "
     "address lookup", "userunknown"),
    ("550-5.1.1 The email account that you tried to reach does not exist. Please try", "userunknown"),
    ("550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", "userunknown"),
    ("550 5.7.1 Message rejected as spam by Content Filtering.", "spamdetected"),
    ("554 5.7.1 Message rejected: virus found (Eicar-Test-Signature)", "virusdetected"),
    ("550 5.7.1 Email rejected per SPF policy: 198.51.100.7 is not allowed", "authfailure"),
    ("550 5.7.509 Access denied, sending domain example.jp does not pass DMARC verification "
     "and has a DMARC policy of reject.", "authfailure"),
    ("550 5.7.1 DKIM signature verification failed", "authfailure"),
    ("421 4.7.0 Too many concurrent SMTP connections from this IP address", "toomanyconn"),
    ("450 4.7.1 Rate limit exceeded, try again later", "exceedlimit"),
    ("550 5.7.1 Too many messages from your domain today", "exceedlimit"),
    ("554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked using zen.spamhaus.org",
     "blocked"),
    ("550 5.7.1 Your IP 198.51.100.7 is listed in our blacklist", "blocked"),
    ("550 5.7.606 Access denied, banned sending IP [198.51.100.7]", "blocked"),
    ("550 5.7.1 ... part of their network is on our block list (S3150).", "blocked"),
    ("552 5.2.2 Quota exceeded", "mailboxfull"),
    ("452 4.2.2 The email account that you tried to reach is over quota", "mailboxfull"),
    ("452 4.3.1 Insufficient system storage", "mailboxfull"),
    ("554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException", "mailboxfull"),
    ("550 5.2.1 The email account that you tried to reach is disabled.", "suspend"),
    ("554 delivery error: dd This mailbox is disabled (554.30)", "suspend"),
    ("550 5.1.2 Host not found", "hostunknown"),
    ("Host or domain name not found. Name service error for name=x.example type=A", "hostunknown"),
    ("550 no such domain", "hostunknown"),
    ("retry timeout exceeded", "expired"),
    ("Message expired after 5 days", "expired"),
    ("556 5.1.10 Domain nomail.example.com does not accept mail (nullMX)", "notaccept"),
    ("552 5.3.4 Message size exceeds fixed limit", "mesgtoobig"),
    ("552 Message too large", "mesgtoobig"),
    ("554 5.7.1 <a@example.jp>: Relay access denied", "rejected"),
    ("551 5.1.6 User has moved; please try b@example.jp", "hasmoved"),
    ("554 5.7.9 Message not accepted for policy reasons.", "policyviolation"),
    ("500 Line Too Long", "contenterror"),
    ("550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302).", "userunknown"),
])
def test_words_name_the_reason(diagnostic, reason):
    assert classify(diagnostic=diagnostic).reason == reason


def test_words_beat_a_generic_code_but_not_a_specific_one():
    assert classify(status="5.0.0", diagnostic="550 Mailbox unavailable").reason == "userunknown"
    # "unavailable" is too common to overrule a code that names the cause.
    assert classify(status="5.2.2", diagnostic="552 Mailbox unavailable").reason == "mailboxfull"


def test_the_code_in_the_reply_refines_a_generic_status():
    assert classify(status="5.0.0", diagnostic="550 5.1.2 Bad destination system address") \
        == Verdict("hostunknown", True)


@pytest.mark.parametrize(("reply", "recipient"), [
    ("550 Unknown user hiro@docomo.ne.jp", "hiro@docomo.ne.jp"),
    ("550 <ken@ezweb.ne.jp>: User unknown", "ken@ezweb.ne.jp"),
    ("550 : User unknown", "sales@biz.ezweb.ne.jp"),
    ("550 5.1.1 <mei@au.com>: Recipient address rejected", "mei@au.com"),
    ("550 Invalid recipient: <daichi@softbank.ne.jp>", "daichi@softbank.ne.jp"),
    ("550 Invalid recipient: <haruka@i.softbank.jp>", "haruka@i.softbank.jp"),
    ("550 Invalid recipient: <mitsuki@h.vodafone.ne.jp>", "mitsuki@h.vodafone.ne.jp"),
    ("550 5.7.1 Message rejected", "yui@docomo.ne.jp"),
])
def test_a_carrier_refusal_is_a_soft_filter(reply, recipient):
    assert classify_reply(reply, recipient=recipient) == Verdict("filtered", False)


def test_the_same_words_from_anyone_else_mean_unknown_user():
    assert classify_reply("550 Unknown user hiro@example.co.jp", recipient="hiro@example.co.jp") \
        == Verdict("userunknown", True)


def test_a_carrier_is_recognised_by_its_receiving_host_too():
    verdict = classify(status="5.1.1", diagnostic="550 Unknown user x@example.jp",
                       recipient="x@example.jp", remote_mta="mfsmax.docomo.ne.jp")
    assert verdict == Verdict("filtered", False)


def test_a_carrier_saying_the_mailbox_does_not_exist_is_believed():
    verdict = classify(status="5.1.1", diagnostic="550 5.1.1 <a@docomo.ne.jp>: mailbox does not exist",
                       recipient="a@docomo.ne.jp")
    assert verdict == Verdict("userunknown", True)


def test_other_carrier_reasons_keep_their_meaning():
    assert classify_reply("552 Too much mail data m@docomo.ne.jp", recipient="m@docomo.ne.jp") \
        == Verdict("mailboxfull", False)
    assert classify_reply("421 4.7.0 Too many connections", recipient="t@ezweb.ne.jp") \
        == Verdict("toomanyconn", False)
    assert classify_reply("450 4.1.1 User unknown", recipient="t@ezweb.ne.jp") \
        == Verdict("userunknown", False)


@pytest.mark.parametrize(("value", "carrier"), [
    ("a@docomo.ne.jp", True), ("a@DOCOMO.NE.JP", True), ("a@ezweb.ne.jp", True),
    ("a@biz.ezweb.ne.jp", True), ("a@au.com", True), ("a@i.softbank.jp", True),
    ("a@t.vodafone.ne.jp", True), ("a@x.softbank.ne.jp", True), ("a@disney.ne.jp", True),
    ("lsean.ezweb.ne.jp", True), ("dns; mfsmax.docomo.ne.jp [203.138.181.112]", True),
    ("a@mydocomo.ne.jp", False), ("a@docomo.ne.jp.example.com", False), ("a@ne.jp", False),
    ("a@gmail.com", False), ("", False),
])
def test_carrier_domains_match_whole_labels(value, carrier):
    assert is_carrier(value) is carrier


def test_the_carrier_list_names_the_big_three():
    assert {"docomo.ne.jp", "ezweb.ne.jp", "au.com", "softbank.ne.jp", "i.softbank.jp"} \
        <= CARRIER_DOMAINS


def test_a_refusal_at_mail_from_is_about_the_sender_not_the_recipient():
    verdict = classify(diagnostic="553 bounce.example.jp does not exist (in reply to MAIL FROM "
                                  "command)", recipient="t@softbank.ne.jp", action="failed")
    assert verdict == Verdict("rejected", False)


def test_an_unknown_user_after_data_is_a_filter():
    verdict = classify(diagnostic="550 5.1.1 User unknown (in reply to end of DATA command)")
    assert verdict == Verdict("filtered", False)


@pytest.mark.parametrize(("kwargs", "verdict"), [
    ({"status": "5.1.1", "action": "delayed"}, Verdict("userunknown", False)),
    ({"diagnostic": "450 4.1.1 <a@b.jp>: Recipient address rejected: unverified address"},
     Verdict("userunknown", False)),
    ({"diagnostic": "user unknown"}, Verdict("userunknown", False)),  # no code: cannot tell
    ({"status": "4.4.1", "diagnostic": "connect to mx.example.jp: Connection timed out",
      "action": "failed"}, Verdict("expired", False)),
    ({"status": "4.2.2", "diagnostic": "452 4.2.2 Mailbox full", "action": "failed"},
     Verdict("mailboxfull", False)),
    ({"reply_code": 554}, Verdict("undefined", True)),
    ({"reply_code": 451, "diagnostic": "451 whatever"}, Verdict("systemerror", False)),
    ({"diagnostic": "something odd happened"}, Verdict("undefined", False)),
    ({}, Verdict("undefined", False)),
])
def test_hard_needs_a_permanent_code(kwargs, verdict):
    assert classify(**kwargs) == verdict


@pytest.mark.parametrize(("reply", "verdict"), [
    ("550 5.1.1 <a@b.jp>: Recipient address rejected: User unknown", Verdict("userunknown", True)),
    ("452 4.2.2 Mailbox full", Verdict("mailboxfull", False)),
    ("connection refused", Verdict("networkerror", False)),
    ("timed out", Verdict("networkerror", False)),
    ("550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
     "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
     "550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser - gsmtp",
     Verdict("userunknown", True)),
    ("421 4.7.0 [TSS04] Messages from 198.51.100.7 temporarily deferred due to unexpected volume "
     "or user complaints - 4.16.55.1", Verdict("exceedlimit", False)),
    ("550 5.7.26 Unauthenticated email from shop.example.jp is not accepted due to domain's "
     "DMARC policy.", Verdict("authfailure", False)),
    ("554 5.7.1 <a@b.jp>: Relay access denied", Verdict("rejected", False)),
    ("550 5.7.1 Unfortunately, messages from [198.51.100.7] weren't sent. Please contact your "
     "Internet service provider since part of their network is on our block list (S3150).",
     Verdict("blocked", False)),
    ("554 Transaction failed", Verdict("undefined", True)),
    ("", Verdict("undefined", False)),
])
def test_a_synchronous_reply(reply, verdict):
    assert classify_reply(reply, recipient="a@b.jp") == verdict


def test_it_never_raises_on_odd_input():
    assert classify(status=None, reply_code="550", diagnostic=None, recipient=None,  # type: ignore[arg-type]
                    remote_mta=None, action=None) == Verdict("undefined", False)
    assert classify(reply_code=999, diagnostic="x" * 100_000).reason == "undefined"
    assert classify_reply(None) == Verdict("undefined", False)  # type: ignore[arg-type]


def test_status_in_skips_ip_addresses():
    assert status_in("host 10.5.1.1 said: 550 5.1.1 no") == "5.1.1"
    assert status_in("[203.0.113.25] (#5.2.2)") == "5.2.2"
    assert status_in("554.30 and 192.0.2.4") == ""


@pytest.mark.parametrize("reply", [
    "550 5.1.0 <bounce+0a1b@bounce.example.jp>: Sender address rejected: User unknown in "
    "virtual mailbox table",
    "553 5.1.8 <bounce+0a1b@bounce.example.jp>: Sender address rejected: Domain not found",
    "550 5.1.8 Domain of sender address bounce+0a1b@bounce.example.jp does not exist",
])
def test_a_refusal_of_our_sender_is_never_the_recipients_fault(reply):
    assert classify_reply(reply, recipient="taro@example.co.jp") == Verdict("rejected", False)


@pytest.mark.parametrize("quoted", ["spam@example.jp", "taro@antispam.example.jp",
                                    "antivirus@example.jp", "herbl@example.jp"])
def test_an_address_in_the_reply_never_decides_the_reason(quoted):
    reply = f"550 5.1.1 <{quoted}>: Recipient address rejected: User unknown"
    assert classify_reply(reply, recipient=quoted) == Verdict("userunknown", True)
    relayed = f"host mx.antispam.example.jp[192.0.2.1] said: {reply}"
    assert classify(status="5.1.1", diagnostic=relayed, recipient=quoted) == Verdict(
        "userunknown", True)
