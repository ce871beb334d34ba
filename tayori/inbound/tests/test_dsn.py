"""Reading reports at their edges: garbage, missing parts, several recipients, Japanese text in
every charset, oversized input, and the fields a report hands on."""

from __future__ import annotations

import os

import pytest

from tayori.inbound import dsn

TOKEN = "00c88f3c1a9e5d7b2c4e6f80a1b2"
ORIGINAL = (
    f"Return-Path: <bounce+{TOKEN}@bounce.example.jp>\n"
    "From: news@shop.example.jp\nTo: taro@example.co.jp\nSubject: hello\n"
    f"Message-ID: <{TOKEN}@shop.example.jp>\n\nbody\n")


def report(*blocks: str, original: str | None = ORIGINAL, notice: str = "It failed.",
           headers: str = "") -> bytes:
    parts = [f"Content-Type: text/plain\n\n{notice}\n",
             "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx1.example.net\n\n"
             + "\n\n".join(blocks) + "\n"]
    if original is not None:
        parts.append(f"Content-Type: message/rfc822\n\n{original}")
    text = ("From: MAILER-DAEMON@mx1.example.net\nTo: bounce+x@bounce.example.jp\n"
            f"Subject: Undelivered Mail Returned to Sender\n{headers}MIME-Version: 1.0\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
            + "".join(f"--b\n{part}\n" for part in parts) + "--b--\n")
    return text.replace("\n", "\r\n").encode()


def failed(recipient: str, status: str = "5.1.1", diagnostic: str = "550 5.1.1 User unknown",
           action: str = "failed") -> str:
    return (f"Final-Recipient: rfc822; {recipient}\nAction: {action}\nStatus: {status}\n"
            f"Remote-MTA: dns; mx.example.co.jp\nDiagnostic-Code: smtp; {diagnostic}")


@pytest.mark.parametrize("raw", [
    b"", b"\x00" * 100, os.urandom(4096), b"\xff\xfe" * 5000, b"Content-Type: multipart/report\n",
    b"From: x\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"q\"\n\n"
    b"--q\nContent-Type: message/delivery-status\n\n\xff\xff: \xfe\n--q",
    "not bytes at all",
])
def test_garbage_is_other_and_never_raises(raw):
    result = dsn.parse(raw)
    assert result.kind == "other" and result.failures == []


def test_it_hands_on_the_fields_of_a_report():
    result = dsn.parse(report(failed(
        "taro@Example.CO.JP", diagnostic="550 5.1.1 <taro@example.co.jp>: Recipient address\n"
        "    rejected: User unknown in virtual mailbox table")))
    assert result.kind == "bounce" and result.reporting_mta == "mx1.example.net"
    assert result.sender == "MAILER-DAEMON@mx1.example.net"
    [failure] = result.failures
    assert failure == dsn.Failure(
        recipient="taro@example.co.jp", status="5.1.1", reply_code=550,
        diagnostic="550 5.1.1 <taro@example.co.jp>: Recipient address rejected: User unknown in "
                   "virtual mailbox table",
        remote_mta="mx.example.co.jp", action="failed", reason="userunknown", hard=True)
    assert result.original_message_id == f"{TOKEN}@shop.example.jp"
    assert result.original_return_path == f"bounce+{TOKEN}@bounce.example.jp"
    assert result.original_recipients == ["taro@example.co.jp"]


def test_a_report_without_the_original_still_names_who_failed():
    result = dsn.parse(report(failed("jiro@example.co.jp"), original=None))
    assert [(f.recipient, f.reason) for f in result.failures] == [("jiro@example.co.jp", "userunknown")]
    assert result.original_message_id == "" and result.original_return_path == ""


def test_several_recipients_each_get_their_own_verdict():
    result = dsn.parse(report(
        failed("a@example.jp"),
        failed("b@docomo.ne.jp", status="5.0.0", diagnostic="550 Unknown user b@docomo.ne.jp"),
        failed("c@example.jp", status="2.0.0", diagnostic="250 ok", action="delivered"),
        failed("d@example.jp", status="4.2.2", diagnostic="452 4.2.2 Mailbox full", action="delayed")))
    assert [(f.recipient, f.reason, f.hard, f.action) for f in result.failures] == [
        ("a@example.jp", "userunknown", True, "failed"),
        ("b@docomo.ne.jp", "filtered", False, "failed"),
        ("d@example.jp", "mailboxfull", False, "delayed")]
    assert result.kind == "bounce"
    assert result.original_recipients[:4] == ["a@example.jp", "b@docomo.ne.jp", "c@example.jp",
                                              "d@example.jp"]


def test_only_delayed_recipients_is_a_delay_and_only_delivered_ones_is_other():
    assert dsn.parse(report(failed("d@example.jp", "4.4.1", "421 timeout", "delayed"))).kind == "delay"
    success = dsn.parse(report(failed("c@example.jp", "2.0.0", "250 2.0.0 Ok", "delivered")))
    assert success.kind == "other" and success.failures == []


def test_original_recipient_is_preferred_to_final_recipient():
    block = ("Final-Recipient: rfc822; taro.alias@mail.example.co.jp\n"
             "Original-Recipient: rfc822;Taro@Example.co.jp\nAction: failed\nStatus: 5.2.2")
    [failure] = dsn.parse(report(block)).failures
    assert (failure.recipient, failure.reason) == ("Taro@example.co.jp", "mailboxfull")


def test_the_diagnostic_is_capped():
    [failure] = dsn.parse(report(failed("a@example.jp", diagnostic="550 5.1.1 " + "x" * 5000))).failures
    assert len(failure.diagnostic) == 1000


def test_a_delivery_report_marked_auto_replied_is_still_a_bounce():
    # Postfix and Exim put Auto-Submitted: auto-replied on their reports.
    result = dsn.parse(report(failed("a@example.jp"), headers="Auto-Submitted: auto-replied\n"))
    assert result.kind == "bounce"


def test_crlf_and_lf_read_the_same():
    raw = report(failed("a@example.jp"))
    assert dsn.parse(raw) == dsn.parse(raw.replace(b"\r\n", b"\n"))


def prose(body: bytes, *, charset: str | None, extra: str = "", subject: str = "failure notice") -> bytes:
    content_type = f"text/plain; charset={charset}" if charset else "text/plain"
    return (f"From: MAILER-DAEMON@mail.example.ne.jp\nTo: bounce+{TOKEN}@bounce.example.jp\n"
            f"Subject: {subject}\n{extra}MIME-Version: 1.0\nContent-Type: {content_type}\n"
            "Content-Transfer-Encoding: 8bit\n\n").encode() + body


JAPANESE_NOTICE = ("以下のアドレスへメールを配信できませんでした。\n\n"
                   "<hanako@example.ne.jp>:\n宛先のメールアドレスは存在しません。 (#5.1.1)\n\n"
                   "--- Below this line is a copy of the message.\n\n" + ORIGINAL)


@pytest.mark.parametrize(("charset", "codec"), [
    ("iso-2022-jp", "iso2022_jp"), ("shift_jis", "cp932"), ("utf-8", "utf-8"), (None, "cp932"),
    ("euc-jp", "euc_jp"),
])
def test_a_japanese_notice_reads_in_every_charset(charset, codec):
    result = dsn.parse(prose(JAPANESE_NOTICE.encode(codec), charset=charset,
                             extra="X-Failed-Recipients: hanako@example.ne.jp\n"))
    assert result.kind == "bounce"
    [failure] = result.failures
    assert (failure.recipient, failure.status, failure.reason, failure.hard) == (
        "hanako@example.ne.jp", "5.1.1", "userunknown", True)
    assert "存在しません" in failure.diagnostic
    assert result.original_message_id == f"{TOKEN}@shop.example.jp"


def test_our_own_addresses_in_the_quoted_message_are_not_failures():
    result = dsn.parse(prose(JAPANESE_NOTICE.encode(), charset="utf-8"))
    assert [f.recipient for f in result.failures] == ["hanako@example.ne.jp"]


def test_an_8bit_utf8_subject_is_decoded():
    result = dsn.parse(prose(b"Hello", charset="utf-8", subject="不在のお知らせ").replace(
        b"MAILER-DAEMON", b"hanako"))
    assert result.subject == "不在のお知らせ" and result.kind == "autoreply"


def test_an_exim_bounce_marked_auto_replied_is_a_bounce_not_an_auto_reply():
    body = (b"This message was created automatically by mail delivery software.\n\n"
            b"A message that you sent could not be delivered to one or more of its\n"
            b"recipients. This is a permanent error. The following address(es) failed:\n\n"
            b"  ichiro@example.ne.jp\n    Unrouteable address\n")
    result = dsn.parse(prose(body, charset="us-ascii", subject="Mail delivery failed",
                             extra="Auto-Submitted: auto-replied\n"
                                   "X-Failed-Recipients: ichiro@example.ne.jp\n"))
    assert result.kind == "bounce"
    assert [(f.recipient, f.reason) for f in result.failures] == [("ichiro@example.ne.jp", "hostunknown")]


def test_x_failed_recipients_alone_is_enough():
    result = dsn.parse(prose(b"Something went wrong.", charset="us-ascii",
                             extra="X-Failed-Recipients: a@example.jp, b@example.jp\n"))
    assert result.kind == "bounce"
    assert {f.recipient for f in result.failures} == {"a@example.jp", "b@example.jp"}
    assert {f.reason for f in result.failures} == {"undefined"}


def test_a_huge_header_and_a_huge_attachment_are_cut_not_scanned():
    raw = report(failed("a@example.jp"), headers="X-Junk: " + "a" * 2_000_000 + "\n")
    assert dsn.parse(raw).kind in ("bounce", "other")  # cut inside the header: no report left
    big = report(failed("a@example.jp"), original=ORIGINAL + "x" * 5_000_000 + "\n")
    result = dsn.parse(big)
    assert [(f.recipient, f.reason) for f in result.failures] == [("a@example.jp", "userunknown")]
    assert result.original_message_id == f"{TOKEN}@shop.example.jp"


def test_a_huge_subject_is_kept_short():
    result = dsn.parse(report(failed("a@example.jp")).replace(
        b"Subject: Undelivered", b"Subject: " + b"=?utf-8?B?44GC?= " * 5_000 + b"Undelivered"))
    assert result.kind == "bounce" and len(result.subject) <= 2000


def test_a_text_plain_report_with_delivery_status_fields():
    raw = prose(b"Reporting-MTA: dns; gw.example.com\n\nFinal-Recipient: rfc822; i@example.com\n"
                b"Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 No such user\n",
                charset="us-ascii")
    result = dsn.parse(raw)
    assert result.reporting_mta == "gw.example.com"
    assert [(f.recipient, f.reason, f.hard) for f in result.failures] == [
        ("i@example.com", "userunknown", True)]


def test_outlooks_older_complaint_format_is_a_complaint():
    original = ORIGINAL.replace("To: taro", "X-HmXmrOriginalRecipient: <rena@hotmail.com>\nTo: taro")
    raw = ("From: staff@hotmail.com\nTo: abuse@bounce.example.jp\nSubject: complaint about message\n"
           'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="m"\n\n'
           "--m\nContent-Type: text/plain\n\nThis is a complaint.\n"
           f"--m\nContent-Type: message/rfc822\n\n{original}--m--\n").encode()
    result = dsn.parse(raw)
    assert (result.kind, result.feedback_type) == ("complaint", "abuse")
    assert result.original_recipients[0] == "rena@hotmail.com"
    assert result.original_return_path == f"bounce+{TOKEN}@bounce.example.jp"


def test_a_human_reply_is_other_even_when_it_quotes_a_bounce():
    raw = (b"From: taro@example.co.jp\nTo: news@shop.example.jp\nSubject: Re: hello\n\n"
           b"I got this, what does it mean?\n> 550 5.1.1 <jiro@example.co.jp>: User unknown\n")
    result = dsn.parse(raw)
    assert result.kind == "other" and result.failures == []


def test_a_success_report_is_other_not_an_auto_reply():
    raw = report(failed("c@example.jp", "2.0.0", "250 2.0.0 Ok", "delivered"),
                 headers="Auto-Submitted: auto-replied\n")
    assert dsn.parse(raw).kind == "other"


def test_a_bounce_naming_no_one_is_other_not_an_auto_reply():
    raw = prose(b"Something went wrong with your message.", charset="us-ascii",
                subject="Mail delivery failed", extra="Auto-Submitted: auto-replied\n")
    result = dsn.parse(raw)
    assert (result.kind, result.failures) == ("other", [])


def test_an_inner_boundary_that_begins_with_the_outer_one_is_left_alone():
    raw = (b'From: MAILER-DAEMON@mx.example.jp\r\nSubject: Undelivered Mail\r\n'
           b'MIME-Version: 1.0\r\n'
           b'Content-Type: multipart/report; report-type=delivery-status; boundary="AAA"\r\n\r\n'
           b'--AAA\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n'
           b'--AAA\r\nContent-Type: message/delivery-status\r\n\r\n'
           b'Reporting-MTA: dns; mx.example.jp\r\n\r\n'
           b'Final-Recipient: rfc822; taro@example.jp\r\nAction: failed\r\nStatus: 5.1.1\r\n'
           b'Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n'
           b'--AAA\r\nContent-Type: message/rfc822\r\n\r\n'
           b'Subject: hi\r\nContent-Type: multipart/alternative; boundary="AAA.1"\r\n\r\n'
           b'--AAA.1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--AAA.1--\r\n'
           b'\r\n--AAA--\r\n')
    report = dsn.parse(raw)
    assert report.kind == "bounce"
    assert [(f.recipient, f.reason) for f in report.failures] == [("taro@example.jp",
                                                                   "userunknown")]
