"""`tayori bench inbound`: bounce reports processed per second by `tayori mx` over real SMTP.

The bench prepares its own database — a temporary SQLite file, or the PostgreSQL database named
by ``--database-url`` — migrated, with a scratch workspace whose bounce domain is BOUNCE_DOMAIN,
N members and one sent bulk source with a delivery to each. For every delivery it writes the
report a remote server would send back to its VERP address (made with ``delivery.tokens`` as
rendering does), quoting the headers of the message as Tayori renders it: a mix of Postfix
RFC 3464 reports (unknown user, docomo's domain filter), Sendmail-style reports from a Japanese
ISP (mailbox full, Japanese text in ISO-2022-JP), Exim and qmail bounces in prose, and
auto-replies, which are not bounces.

``tayori mx`` runs as a subprocess; a minimal asyncio SMTP client keeps C connections open and
sends one transaction (MAIL, RCPT, DATA) per report, as a sending MTA does. tayori mx answers
250 only once the report was acted on, so a 250 is a bounce processed. Rounds alternate with
two ceilings measured in the same run: the same client into Debian's smtp-sink (SMTP acceptance
with no work at all), and ``dsn.parse`` alone over the same reports in this process. Afterwards
the database must hold a Bounce row for every report answered 250 but the auto-replies. Prints
one JSON document (``--json``) or a summary.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import email.utils
import hashlib
import json
import logging
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from email.header import Header
from pathlib import Path
from typing import Annotated

import typer

from tayori.cli.bench import bench_app

TARGET_PER_S = 500
BOUNCE_DOMAIN = "bounce.bench.example.jp"
TRACKING_HOST = "t.bench.example.jp"
FROM_ADDRESS = "news@bench.example.jp"
RELAY = "mta1.bench.example.jp"  # the workspace's own relay, which reports what it could not send
JST = dt.timezone(dt.timedelta(hours=9))
SUBJECT = "{{ member.name }}様 冬のセールのお知らせ【便りストア】"
TEXT = ("{{ member.name }}様\n\nいつも便りストアをご利用いただきありがとうございます。\n"
        "冬のセールを本日より開催いたします。会員さま限定の特別価格でご案内いたします。\n"
        "ポイント: {{ member.points }}\n\n" + "■ 冬のセール 12月1日〜12月25日\n"
        "人気の緑茶セット、和菓子の詰め合わせなど、全品が最大30％引きです。\n" * 6
        + "\n配信停止をご希望の方は、メール末尾のリンクからお手続きください。\n")
# Of every 20 reports: 12 unknown users, 4 full mailboxes, 2 docomo domain filters, 1 bounce in
# prose (Exim and qmail in turn), 1 auto-reply. Interleaved, so any slice has the same mix.
PATTERN = ["postfix_userunknown"] * 12 + ["isp_mailboxfull"] * 4 + ["docomo_filtered"] * 2 + [
    "prose", "autoreply"]
# The reason each kind must be stored with; an auto-reply stores nothing.
EXPECTED = {"postfix_userunknown": "userunknown", "isp_mailboxfull": "mailboxfull",
            "docomo_filtered": "filtered", "exim_userunknown": "userunknown",
            "qmail_userunknown": "userunknown", "autoreply": None}


def kind_of(i: int) -> str:
    kind = PATTERN[i % len(PATTERN)]
    if kind == "prose":
        return "exim_userunknown" if (i // len(PATTERN)) % 2 == 0 else "qmail_userunknown"
    return kind


# --- the reports ----------------------------------------------------------------------------

@dataclass(slots=True)
class Report:
    """One report as the client sends it: the envelope and the message."""

    kind: str
    delivery_id: int
    rcpt: str
    raw: bytes

    @property
    def wire(self) -> tuple[bytes, bytes]:
        """RCPT TO command and DATA, dot-stuffed and terminated."""
        data = self.raw.replace(b"\r\n.", b"\r\n..")
        if data.startswith(b"."):
            data = b"." + data
        return f"RCPT TO:<{self.rcpt}>\r\n".encode(), data + b"\r\n.\r\n"


@dataclass(slots=True)
class Original:
    """What a report knows of the message it is about, as Tayori sent it."""

    delivery_id: int
    address: str
    name: str
    envelope_from: str
    message_id: str
    subject: str
    headers: bytes  # as the receiving side saw them: its Received line and the DKIM signature
    body: bytes


def _date(seconds_ago: int = 0) -> str:
    return email.utils.format_datetime(dt.datetime.now(JST) - dt.timedelta(seconds=seconds_ago))


def _queue_id(n: int, length: int = 10) -> str:
    return hashlib.blake2b(str(n).encode(), digest_size=16).hexdigest().upper()[:length]


def _jis(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("iso2022_jp")


def _jis_header(text: str) -> str:
    return Header(text, "iso-2022-jp").encode()


def originals(compiled: dict, rows: list[tuple[int, str, str]]) -> list[Original]:
    """Each delivery's message rendered as Tayori sends it, and the headers a receiving server
    quotes of it. ``compiled``: the source's Compiled per charset; rows: (id, address, name)."""
    made = []
    for n, (delivery_id, address, name) in enumerate(rows):
        rendered = compiled["iso-2022-jp" if n % 2 else "utf-8"].render(
            delivery_id, address, {"name": name, "points": n % 1000})
        digest = hashlib.sha256(str(delivery_id).encode()).digest()
        signature = base64.b64encode(digest * 8).decode()
        folded = "\r\n\t".join(signature[i:i + 72] for i in range(0, len(signature), 72))
        received = (
            f"Received: from tayori.bench.example.jp (tayori.bench.example.jp [192.0.2.10])\r\n"
            f"\tby {RELAY} (Postfix) with ESMTPS id {_queue_id(delivery_id)}\r\n"
            f"\tfor <{address}>; {_date(3600)}\r\n"
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=bench.example.jp;\r\n"
            f"\ts=tayori; t={int(time.time()) - 3600};\r\n"
            "\th=From:To:Subject:Date:Message-ID:List-Unsubscribe:List-Unsubscribe-Post:\r\n"
            "\t MIME-Version:Content-Type;\r\n"
            f"\tbh={base64.b64encode(digest).decode()};\r\n\tb={folded}\r\n")
        made.append(Original(delivery_id, address, name, rendered.mail_from,
                             rendered.message_id, rendered.subject,
                             received.encode() + rendered.headers, rendered.body))
    return made


def _postfix(o: Original, rcpt: str, *, reply: str, status: str, remote: str, stage: str) -> bytes:
    """A Postfix report (RFC 3464) from the workspace's relay: the remote server refused."""
    boundary = f"{_queue_id(o.delivery_id)}.{o.delivery_id}/{RELAY}"
    folded = "\r\n    ".join(_wrap(f"<{o.address}>: host {remote}[192.0.2.51] said: {reply} "
                                   f"(in reply to {stage} command)", 70))
    return (
        f"Received: by {RELAY} (Postfix)\r\n\tid {_queue_id(o.delivery_id + 1)}; {_date()}\r\n"
        f"Date: {_date()}\r\n"
        f"From: MAILER-DAEMON@{RELAY} (Mail Delivery System)\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"To: {rcpt}\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        f'\tboundary="{boundary}"\r\nContent-Transfer-Encoding: 8bit\r\n'
        f"Message-Id: <{_queue_id(o.delivery_id + 2, 14)}@{RELAY}>\r\n\r\n"
        "This is a MIME-encapsulated message.\r\n\r\n"
        f"--{boundary}\r\nContent-Description: Notification\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"This is the mail system at host {RELAY}.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients. It's attached below.\r\n\r\n"
        "For further assistance, please send mail to postmaster.\r\n\r\n"
        "If you do so, please include this problem report. You can\r\n"
        "delete your own text from the attached returned message.\r\n\r\n"
        "                   The mail system\r\n\r\n"
        f"{folded}\r\n\r\n"
        f"--{boundary}\r\nContent-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {RELAY}\r\nX-Postfix-Queue-ID: {_queue_id(o.delivery_id)}\r\n"
        f"X-Postfix-Sender: rfc822; {o.envelope_from}\r\n"
        f"Arrival-Date: {_date(3600)}\r\n\r\n"
        f"Final-Recipient: rfc822; {o.address}\r\nOriginal-Recipient: rfc822;{o.address}\r\n"
        f"Action: failed\r\nStatus: {status}\r\nRemote-MTA: dns; {remote}\r\n"
        f"Diagnostic-Code: smtp; {reply}\r\n\r\n"
        f"--{boundary}\r\nContent-Description: Undelivered Message Headers\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
    ).encode() + o.headers + f"\r\n--{boundary}--\r\n".encode()


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line]


def postfix_userunknown(o: Original, rcpt: str) -> bytes:
    domain = o.address.rpartition("@")[2]
    return _postfix(o, rcpt, status="5.1.1", remote=f"mx.{domain}", stage="RCPT TO",
                    reply=f"550 5.1.1 <{o.address}>: Recipient address rejected: User unknown "
                          "in virtual mailbox table")


def docomo_filtered(o: Original, rcpt: str) -> bytes:
    """docomo answers a domain filter's refusal with "550 Unknown user" after DATA."""
    return _postfix(o, rcpt, status="5.0.0", remote="mfsmx.docomo.ne.jp", stage="end of DATA",
                    reply=f"550 Unknown user {o.address}")


def isp_mailboxfull(o: Original, rcpt: str) -> bytes:
    """A Japanese ISP's Sendmail gave up on a full mailbox; its notice is in Japanese."""
    host = f"mx{o.delivery_id % 4}.isp.example.ne.jp"
    boundary = f"{_queue_id(o.delivery_id, 12)}.{int(time.time())}/{host}"
    notice = _jis(
        "このメールは、お客様が送信されたメールが宛先に配送できなかったことをお知らせする"
        "自動送信メールです。\n宛先のメールボックスが容量を超えているため、一定期間配送を"
        "試みましたが、配送できませんでした。\n宛先の方にご確認のうえ、時間をおいて再度"
        "送信してください。\n\n   ----- 配送できなかった宛先 -----\n"
        f"<{o.address}>\n    (reason: 452 4.2.2 Mailbox full)\n\n"
        "   ----- 配送時のやりとり -----\n"
        f"... while talking to mbox.isp.example.ne.jp.:\n>>> RCPT To:<{o.address}>\n"
        f"<<< 452 4.2.2 <{o.address}>... Mailbox full\n")
    return (
        f"Received: from localhost (localhost)\r\n\tby {host} (8.15.2/8.15.2) id "
        f"{_queue_id(o.delivery_id, 14)};\r\n\t{_date()}\r\n"
        f"Date: {_date()}\r\nFrom: Mail Delivery Subsystem <MAILER-DAEMON@{host}>\r\n"
        f"Message-Id: <{_queue_id(o.delivery_id + 3, 14)}@{host}>\r\nTo: <{rcpt}>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n"
        f'\tboundary="{boundary}"\r\n'
        f"Subject: {_jis_header('配信不能のお知らせ')} (Returned mail: see transcript for "
        "details)\r\nAuto-Submitted: auto-generated (failure)\r\n\r\n"
        "This is a MIME-encapsulated message\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
    ).encode() + notice + (
        f"\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {host}\r\nReceived-From-MTA: DNS; {RELAY}\r\n"
        f"Arrival-Date: {_date(5 * 86400)}\r\n\r\n"
        f"Final-Recipient: RFC822; {o.address}\r\nAction: failed\r\nStatus: 4.2.2\r\n"
        "Remote-MTA: DNS; mbox.isp.example.ne.jp\r\n"
        f"Diagnostic-Code: SMTP; 452 4.2.2 <{o.address}>... Mailbox full\r\n"
        f"Last-Attempt-Date: {_date()}\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Return-Path: <{o.envelope_from}>\r\n"
        f"Received: from {RELAY} ({RELAY} [192.0.2.25])\r\n\tby {host} (8.15.2/8.15.2) with "
        f"ESMTPS id {_queue_id(o.delivery_id, 14)}\r\n\tfor <{o.address}>; {_date(5 * 86400)}\r\n"
    ).encode() + o.headers + f"\r\n--{boundary}--\r\n".encode()


def _excerpt(o: Original, limit: int = 1200) -> bytes:
    body = o.body[:limit]
    return body[:body.rfind(b"\r\n") + 2] if b"\r\n" in body else body


def exim_userunknown(o: Original, rcpt: str) -> bytes:
    host = f"mail.{o.address.rpartition('@')[2]}"
    return (
        f"Received: from Debian-exim by {host} with local (Exim 4.96)\r\n"
        f"\tid 1t{_queue_id(o.delivery_id, 6)}-000{o.delivery_id % 10}; {_date()}\r\n"
        f"X-Failed-Recipients: {o.address}\r\nAuto-Submitted: auto-replied\r\n"
        f"From: Mail Delivery System <Mailer-Daemon@{host}>\r\nTo: {rcpt}\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "Subject: Mail delivery failed: returning message to sender\r\n"
        f"Message-Id: <E1t{_queue_id(o.delivery_id, 6)}-000{o.delivery_id % 10}@{host}>\r\n"
        f"Date: {_date()}\r\n\r\n"
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        f"  {o.address}\r\n    host mx.{host[5:]} [192.0.2.52]\r\n"
        f"    SMTP error from remote mail server after RCPT TO:<{o.address}>:\r\n"
        f"    550 5.1.1 <{o.address}>: Recipient address rejected: User unknown\r\n\r\n"
        "------ This is a copy of the message, including all the headers. ------\r\n"
        "------ The body of the message is 2981 characters long; only the first\r\n"
        "------ 1200 or so are included here.\r\n\r\n"
        f"Return-path: <{o.envelope_from}>\r\n"
        f"Received: from [192.0.2.25] (helo={RELAY})\r\n\tby {host} with esmtps "
        f"(TLS1.3) (Exim 4.96)\r\n\tid 1t{_queue_id(o.delivery_id + 5, 6)}-0001; "
        f"{_date(60)}\r\n"
    ).encode() + o.headers + b"\r\n" + _excerpt(o)


def qmail_userunknown(o: Original, rcpt: str) -> bytes:
    host = f"mail.{o.address.rpartition('@')[2]}"
    return (
        f"Return-Path: <>\r\nReceived: (qmail {o.delivery_id % 90000 + 10000} invoked for "
        f"bounce); {_date()}\r\n"
        f"Date: {_date()}\r\nFrom: MAILER-DAEMON@{host}\r\nTo: {rcpt}\r\n"
        "Subject: failure notice\r\n\r\n"
        f"Hi. This is the qmail-send program at {host}.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        f"<{o.address}>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
        "--- Below this line is a copy of the message.\r\n\r\n"
        f"Return-Path: <{o.envelope_from}>\r\n"
        f"Received: (qmail {o.delivery_id % 80000 + 10000} invoked from network); "
        f"{_date(60)}\r\nReceived: from unknown (HELO {RELAY}) (192.0.2.25)\r\n"
        f"  by {host} with SMTP; {_date(60)}\r\n"
    ).encode() + o.headers + b"\r\n" + _excerpt(o, 1500)


def autoreply(o: Original, rcpt: str) -> bytes:
    """A vacation reply sent to the envelope sender, quoting the message: not a bounce."""
    host = f"mail.{o.address.rpartition('@')[2]}"
    quoted = TEXT.replace("{{ member.name }}", o.name).replace("{{ member.points }}", "120")
    body = _jis(
        f"{o.name}です。\nメールありがとうございます。\n\n"
        "誠に勝手ながら、12月28日から1月5日まで冬季休暇をいただいております。\n"
        "休暇中はメールを確認できませんので、1月6日以降に順次ご返信いたします。\n"
        "お急ぎの方は、お手数ですが下記までご連絡ください。\n\n"
        "  株式会社サンプル 営業部 代表 03-0000-0000\n\n"
        "何卒よろしくお願い申し上げます。\n\n"
        "────────────────────────\n株式会社サンプル 営業部\n"
        "〒100-0000 東京都千代田区千代田1-1-1 サンプルビル5階\n"
        "TEL 03-0000-0000  FAX 03-0000-0001\n────────────────────────\n\n"
        f"> 差出人: 便りストア <{FROM_ADDRESS}>\n> 件名: {o.subject}\n>\n"
        + "".join(f"> {line}\n" for line in quoted.splitlines()))
    return (
        f"Received: from {host} (localhost [127.0.0.1])\r\n\tby {host} (Postfix) with ESMTP "
        f"id {_queue_id(o.delivery_id + 7)}\r\n\tfor <{rcpt}>; {_date()}\r\n"
        f"Received: by {host} (Postfix, from userid 1000)\r\n"
        f"\tid {_queue_id(o.delivery_id + 8)}; {_date()}\r\n"
        f"From: {_jis_header(o.name)} <{o.address}>\r\nTo: <{rcpt}>\r\n"
        f"Subject: {_jis_header('自動応答: ' + o.subject)}\r\n"
        f"Date: {_date()}\r\nMessage-ID: <{_queue_id(o.delivery_id + 9, 16)}@{host}>\r\n"
        f"In-Reply-To: {o.message_id}\r\nReferences: {o.message_id}\r\n"
        "Auto-Submitted: auto-replied (vacation)\r\nX-Autoreply: yes\r\n"
        "Precedence: bulk\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n"
        "\r\n"
    ).encode() + body


BUILDERS = {"postfix_userunknown": postfix_userunknown, "isp_mailboxfull": isp_mailboxfull,
            "docomo_filtered": docomo_filtered, "exim_userunknown": exim_userunknown,
            "qmail_userunknown": qmail_userunknown, "autoreply": autoreply}


def reports(made: list[Original], start: int = 0) -> list[Report]:
    """The report for each original, by its position in the mix."""
    return [Report(kind_of(start + n), o.delivery_id, o.envelope_from,
                   BUILDERS[kind_of(start + n)](o, o.envelope_from))
            for n, o in enumerate(made)]


# --- the database ---------------------------------------------------------------------------

def prepare(workspace, count: int) -> list[Report]:
    """In the scratch workspace: ``count`` members, one sent bulk source with a delivery to
    each; each delivery's report."""
    from django.db import connection, transaction
    from django.utils import timezone

    from tayori.delivery.models import Delivery, DeliverySettings, Source
    from tayori.delivery.rendering import MessageSpec, compile_message
    from tayori.members.models import Member

    DeliverySettings.objects.create(workspace=workspace, bounce_domain=BOUNCE_DOMAIN,
                                    tracking_host=TRACKING_HOST)
    sent_at = timezone.now() - dt.timedelta(hours=1)
    source = Source.objects.create(
        workspace=workspace, name="bench inbound", status=Source.Status.DONE,
        from_address=FROM_ADDRESS, from_name="便りストア", subject=SUBJECT, text=TEXT,
        tracking=False, tracking_host=TRACKING_HOST)

    def address(i: int) -> str:
        domain = "docomo.ne.jp" if kind_of(i) == "docomo_filtered" else f"d{i % 50}.example.jp"
        return f"m{i}@{domain}"

    for first in range(0, count, 2000):
        Member.objects.bulk_create(
            Member(workspace=workspace, email=address(i), attributes={"name": f"会員{i}"})
            for i in range(first, min(count, first + 2000)))
    members = dict(Member.objects.filter(workspace=workspace).values_list("email", "pk"))
    Delivery.objects.bulk_create(
        (Delivery(workspace=workspace, source=source, member_id=members[address(i)],
                  address=address(i), status=Delivery.Status.SENT, attempts=1,
                  queued_at=sent_at, sent_at=sent_at) for i in range(count)),
        batch_size=2000)
    rows = [(pk, email_, f"会員{email_[1:].partition('@')[0]}") for pk, email_ in
            Delivery.objects.filter(source=source).order_by("pk").values_list("pk", "address")]
    spec = {"from_address": FROM_ADDRESS, "from_name": "便りストア", "subject": SUBJECT,
            "text": TEXT, "tracking_host": TRACKING_HOST, "bounce_domain": BOUNCE_DOMAIN}
    compiled = {charset: compile_message(MessageSpec(**spec, charset=charset))
                for charset in ("utf-8", "iso-2022-jp")}
    made = originals(compiled, rows)
    table = Delivery._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:  # as the engine records a send
        cursor.executemany(f"UPDATE {table} SET message_id = %s WHERE id = %s",
                           [(o.message_id, o.delivery_id) for o in made])
    return reports(made)


def drop(workspace) -> None:
    """Delete what the bench wrote, set-based (the ORM cascade goes row by row)."""
    from django.db import connection, transaction

    from tayori.cli.bench_email import _drop
    from tayori.inbound.models import Bounce, Complaint
    from tayori.members.models import Suppression

    with transaction.atomic(), connection.cursor() as cursor:
        for model in (Bounce, Complaint, Suppression):
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE workspace_id = %s",
                           [workspace.pk])
    _drop(workspace)


def stored(workspace, answered: list[Report]) -> dict:
    """What the database holds after the run, against what the answered reports should have
    left: a Bounce row each with the reason of its kind, none for auto-replies."""
    from django.db.models import Count

    from tayori.inbound.models import Bounce
    from tayori.members.models import Member, Suppression

    kinds = {r.delivery_id: r.kind for r in answered}
    by_kind: dict[str, Counter] = {}
    for delivery_id, reason in Bounce.objects.filter(workspace=workspace).values_list(
            "delivery_id", "reason"):
        by_kind.setdefault(kinds.get(delivery_id, "unsent"), Counter())[reason] += 1
    expected = Counter(r.kind for r in answered if EXPECTED[r.kind])
    rows = sum(sum(c.values()) for c in by_kind.values())
    as_expected = sum(by_kind.get(kind, Counter())[EXPECTED[kind]] for kind in expected)
    return {
        "bounce_rows": rows, "expected_bounce_rows": sum(expected.values()),
        "classified_as_expected": as_expected,
        "all_stored": rows == sum(expected.values()) == as_expected,
        "reasons": dict(Bounce.objects.filter(workspace=workspace).values_list("reason")
                        .annotate(n=Count("pk")).order_by("-n")),
        "by_kind": {kind: dict(counter) for kind, counter in sorted(by_kind.items())},
        "suppressions": Suppression.objects.filter(workspace=workspace).count(),
        "members_bounced": Member.objects.filter(workspace=workspace,
                                                 status=Member.Status.BOUNCED).count(),
    }


# --- the servers ----------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and its running children (``tayori mx --processes N``)."""
    total = _cpu_seconds(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class Mx:
    """``tayori mx`` as a subprocess on a free loopback port (under cProfile, every thread, when
    given a folder for the profiles)."""

    def __init__(self, database_url: str, profile_dir: str = "", processes: int = 1):
        self.port = _free_port()
        env = {**os.environ, "TAYORI_DATABASE_URL": database_url, "TAYORI_LOG_LEVEL": "WARNING"}
        if profile_dir:
            command = ["-c", "from tayori.cli.bench_inbound import serve_profiled; "
                             f"serve_profiled({self.port}, {profile_dir!r})"]
        else:
            command = ["-m", "tayori", "mx", "--host", "127.0.0.1", "--port", str(self.port),
                       "--processes", str(processes)]
        self.process = subprocess.Popen([sys.executable, *command], env=env,
                                        stdout=subprocess.DEVNULL)

    def wait(self, seconds: float = 60) -> None:
        """Until the server answers its greeting."""
        deadline = time.monotonic() + seconds
        while self.process.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1) as probe:
                if probe.recv(512).startswith(b"220"):
                    probe.sendall(b"QUIT\r\n")
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"tayori mx did not listen within {seconds} s")
            time.sleep(0.1)
        raise RuntimeError(f"tayori mx exited with {self.process.returncode}")

    def cpu_seconds(self) -> float:
        return _tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def serve_profiled(port: int, folder: str) -> None:
    """tayori mx with a cProfile per thread (the SMTP event loop's, each database thread's);
    on SIGTERM each thread's statistics go to ``folder/mx-<thread>.pstats``."""
    import cProfile

    from tayori.cli import setup_django

    setup_django()
    from tayori.inbound.server import controller

    profiles: dict[str, cProfile.Profile] = {}

    def start(*_args) -> None:  # the first event in each new thread: profile it from here
        profile = cProfile.Profile()
        profiles[threading.current_thread().name] = profile
        profile.enable()

    threading.setprofile(start)
    server = controller("127.0.0.1", port)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()
    for name, profile in profiles.items():
        safe = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
        profile.dump_stats(str(Path(folder) / f"mx-{safe}.pstats"))


# --- the client -----------------------------------------------------------------------------

async def _reply(reader: asyncio.StreamReader) -> int:
    """Read one (maybe multi-line) reply; its code."""
    while True:
        line = await reader.readline()
        if len(line) < 4:
            raise ConnectionError(f"connection closed or bad reply: {line!r}")
        if line[3:4] != b"-":
            return int(line[:3])


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if await _reply(reader) != 220:
        raise ConnectionError("no greeting")
    writer.write(b"EHLO mta.bench.example.jp\r\n")
    await _reply(reader)
    return reader, writer


async def send(port: int, batch: list[Report], connections: int) -> dict:
    """Send the reports over ``connections`` open connections, one transaction each (MAIL,
    RCPT, DATA, waiting for each reply, as a sender does without PIPELINING); timed from the
    first MAIL to the last reply. Which reports were answered 250, and the rest's codes."""
    opened = await asyncio.gather(*(_open(port) for _ in range(connections)))
    waiting = deque((r, *r.wire) for r in batch)
    answered: list[Report] = []
    codes: Counter = Counter()

    async def one(reader, writer) -> None:
        while waiting:
            report, rcpt, data = waiting.popleft()
            writer.write(b"MAIL FROM:<>\r\n")
            code = await _reply(reader)
            if code == 250:
                writer.write(rcpt)
                code = await _reply(reader)
            if code == 250:
                writer.write(b"DATA\r\n")
                code = await _reply(reader)
            if code == 354:
                writer.write(data)
                code = await _reply(reader)
                if code == 250:
                    answered.append(report)
                    continue
            else:
                writer.write(b"RSET\r\n")
                await _reply(reader)
            codes[code] += 1

    cpu = time.process_time()
    began = time.perf_counter()
    await asyncio.gather(*(one(reader, writer) for reader, writer in opened))
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu
    for reader, writer in opened:
        writer.write(b"QUIT\r\n")
        with contextlib.suppress(ConnectionError):
            await _reply(reader)
        writer.close()
    return {"answered": answered, "refused": dict(codes), "seconds": elapsed,
            "per_s": len(answered) / elapsed, "client_cpu_s": cpu}


def parse_rate(batch: list[Report]) -> dict:
    """``dsn.parse`` alone over the reports, in this process: what reading them costs."""
    from tayori.inbound import dsn

    began = time.perf_counter()
    for report in batch:
        dsn.parse(report.raw)
    elapsed = time.perf_counter() - began
    return {"per_s": len(batch) / elapsed, "seconds": elapsed}


# --- the bench ------------------------------------------------------------------------------

def run(database_url: str, *, bounces: int, connections: int, rounds: int,
        profile_dir: str = "", processes: int = 1) -> dict:
    """Prepare, measure, clean up: the report as a dict."""
    import uvloop
    from django.db import connection

    from tayori.accounts.models import Workspace
    from tayori.cli.bench import _PostgresCpu
    from tayori.cli.bench_tracking import use_database
    from tayori.delivery.smtp.sink import start_smtp_sink

    use_database(database_url)
    # tayori mx runs at WARNING too; flufl.bounce logs each detector it tries at INFO.
    logging.getLogger("flufl.bounce").setLevel(logging.WARNING)
    warmup = max(10, min(100, bounces // 50))
    workspace = Workspace.objects.create(name="bench inbound",
                                         slug=f"bench-inbound-{os.getpid()}")
    mx = sink = None
    try:
        everything = prepare(workspace, warmup + bounces)
        warming, measured = everything[:warmup], everything[warmup:]
        # smtp-sink without PIPELINING, as tayori mx: the client holds the same conversation.
        sink, sink_port = start_smtp_sink(pipelining=False)
        mx = Mx(database_url, profile_dir, processes)
        mx.wait()
        database = connection.settings_dict["NAME"] if connection.vendor == "postgresql" else ""
        # The bench keeps its connection open but idle, as `tayori serve`'s other processes do:
        # on SQLite, the last connection to close checkpoints and removes the write-ahead log.
        connection.ensure_connection()
        results: dict[str, list] = {"sink": [], "tayori": [], "parse": []}
        cpu: Counter = Counter()
        answered: list[Report] = []

        async def measure() -> None:
            # Imports, connections, the accepted domains: not part of any round.
            answered.extend((await send(mx.port, warming, connections))["answered"])
            await send(sink_port, warming, connections)
            parse_rate(warming)
            for round_ in range(rounds):
                before = _cpu_seconds(sink.pid)
                results["sink"].append(await send(sink_port, measured, connections))
                cpu["sink"] += _cpu_seconds(sink.pid) - before
                before = mx.cpu_seconds()
                with _PostgresCpu(database) if database else contextlib.nullcontext() as pg:
                    done = await send(mx.port, measured[round_::rounds], connections)
                cpu["tayori"] += mx.cpu_seconds() - before
                if database:
                    cpu["postgres"] += pg.seconds or 0
                answered.extend(done["answered"])
                results["tayori"].append(done)
                results["parse"].append(parse_rate(measured))

        uvloop.run(measure())
        mx.stop()  # the profiles, if any, are written now
        ok = {name: sum(len(r["answered"]) for r in results[name]) for name in ("sink", "tayori")}
        sink_per_s = statistics.median(r["per_s"] for r in results["sink"])
        tayori_per_s = statistics.median(r["per_s"] for r in results["tayori"])
        parse_per_s = statistics.median(r["per_s"] for r in results["parse"])
        sizes = [len(r.raw) for r in measured]
        report = {
            "database": connection.vendor, "cores": os.cpu_count(), "bounces": bounces,
            "connections": connections, "rounds": rounds, "target_per_s": TARGET_PER_S,
            "mx_processes": processes,
            "reports": {"mix": dict(Counter(r.kind for r in measured)),
                        "bytes_mean": round(statistics.mean(sizes)), "bytes_min": min(sizes),
                        "bytes_max": max(sizes)},
            "ceiling_sink": {
                "per_s": round(sink_per_s),
                "rounds_per_s": [round(r["per_s"]) for r in results["sink"]],
                "refused": _refused(results["sink"]),
                "client_cpu_us_per_message": _us(
                    sum(r["client_cpu_s"] for r in results["sink"]), ok["sink"]),
                "client_busy": _busy(sum(r["client_cpu_s"] for r in results["sink"]),
                                     results["sink"]),
                "sink_cpu_us_per_message": _us(cpu["sink"], ok["sink"])},
            "ceiling_parse": {
                "per_s": round(parse_per_s),
                "rounds_per_s": [round(r["per_s"]) for r in results["parse"]],
                "us_per_report": round(1e6 / parse_per_s)},
            "tayori": {
                "per_s": round(tayori_per_s),
                "rounds_per_s": [round(r["per_s"]) for r in results["tayori"]],
                "answered_250": ok["tayori"],
                "refused": _refused(results["tayori"]),
                "ratio_to_sink": round(tayori_per_s / sink_per_s, 3),
                "ratio_to_parse": round(tayori_per_s / parse_per_s, 3),
                "meets_target": tayori_per_s >= TARGET_PER_S,
                "mx_cpu_us_per_report": _us(cpu["tayori"], ok["tayori"]),
                "mx_busy": _busy(cpu["tayori"], results["tayori"]),
                "postgres_cpu_us_per_report": _us(cpu["postgres"], ok["tayori"])
                if database else None,
                "client_cpu_us_per_message": _us(
                    sum(r["client_cpu_s"] for r in results["tayori"]), ok["tayori"]),
                "client_busy": _busy(sum(r["client_cpu_s"] for r in results["tayori"]),
                                     results["tayori"])},
            "stored": stored(workspace, answered),
            "load_average": [round(n, 2) for n in os.getloadavg()],
        }
        if profile_dir:
            report["profiles"] = sorted(str(p) for p in Path(profile_dir).glob("mx-*.pstats"))
        return report
    finally:
        if mx is not None:
            mx.stop()
        if sink is not None:
            sink.terminate()
            sink.wait()
        drop(workspace)


def _us(seconds: float, count: int) -> int | None:
    return round(seconds / count * 1e6) if count else None


def _busy(cpu_seconds: float, rounds: list[dict]) -> float:
    """CPU seconds per second of the rounds: 1.0 is one core kept busy all along."""
    return round(cpu_seconds / sum(r["seconds"] for r in rounds), 2)


def _refused(rounds: list[dict]) -> dict:
    total: Counter = Counter()
    for r in rounds:
        total.update(r["refused"])
    return {str(code): n for code, n in total.items()}


def _summary(report: dict) -> str:
    t, s, p, db = (report["tayori"], report["ceiling_sink"], report["ceiling_parse"],
                   report["stored"])
    return "\n".join([
        f"{report['database']}, {report['bounces']} reports of {report['reports']['bytes_mean']} "
        f"bytes, {report['connections']} connections, {report['mx_processes']} mx "
        f"process(es), median of {report['rounds']} rounds",
        f"tayori mx      {t['per_s']:>7,}/s  {t['rounds_per_s']}  "
        f"(target {report['target_per_s']}/s: {'met' if t['meets_target'] else 'NOT met'})",
        f"smtp-sink      {s['per_s']:>7,}/s  ratio {t['ratio_to_sink']}",
        f"dsn.parse      {p['per_s']:>7,}/s  ratio {t['ratio_to_parse']}",
        f"mx CPU {t['mx_cpu_us_per_report']} µs/report ({t['mx_busy']} cores busy), "
        f"PostgreSQL CPU {t['postgres_cpu_us_per_report']} µs/report, client CPU "
        f"{t['client_cpu_us_per_message']} µs/message ({t['client_busy']} cores busy)",
        f"stored {db['bounce_rows']} of {db['expected_bounce_rows']} bounces "
        f"({'all' if db['all_stored'] else 'NOT all'} as expected): {db['reasons']}",
        f"load average {report['load_average']}",
    ])


@bench_app.command("inbound")
def inbound(
    bounces: Annotated[int, typer.Option(min=1, help="Reports sent to tayori mx, each once.")] = 5000,
    connections: Annotated[int, typer.Option(help="SMTP connections kept open.")] = 4,
    processes: Annotated[int, typer.Option(help="tayori mx --processes N.")] = 1,
    rounds: Annotated[int, typer.Option(help="Rounds; medians are reported.")] = 3,
    database_url: Annotated[str, typer.Option(
        help="PostgreSQL database to use (migrated first); default: a temporary SQLite file."
    )] = "",
    profile: Annotated[str, typer.Option(
        help="Run tayori mx under cProfile and write each thread's statistics to this folder "
             "(slows it down: a diagnosis, not a measurement).")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON document.")] = False,
):
    """Bounce reports processed per second by tayori mx, next to smtp-sink and dsn.parse."""
    if profile:
        Path(profile).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tayori-bench-") as scratch:
        url = database_url or f"sqlite:///{Path(scratch) / 'bench.sqlite3'}"
        report = run(url, bounces=bounces, connections=connections, rounds=rounds,
                     profile_dir=str(Path(profile).resolve()) if profile else "",
                     processes=processes)
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2) if as_json else _summary(report))
