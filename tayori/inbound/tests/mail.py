"""Reports as remote servers write them, around a message Tayori really sent (test helpers)."""

from __future__ import annotations

import asyncio
import smtplib
import socket
from contextlib import contextmanager

from tayori.delivery.engine import Worker
from tayori.delivery.models import OutboxMessage


def sent(delivery) -> OutboxMessage:
    """Send what is queued through the engine into the sandbox outbox; the delivery's copy."""
    asyncio.run(Worker(name="test").drain())
    return OutboxMessage.objects.get(delivery=delivery)


def dsn(original: bytes, recipient: str, *, status: str = "5.1.1",
        diagnostic: str = "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
        mta: str = "mx.example.co.jp", action: str = "failed") -> bytes:
    """An RFC 3464 report from Postfix, carrying the original message."""
    headers, _sep, _body = original.partition(b"\r\n\r\n")
    return (
        "From: MAILER-DAEMON@mail.example.co.jp (Mail Delivery System)\r\n"
        "To: whoever\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n\r\n'
        "--B1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n"
        "--B1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mail.example.co.jp\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nRemote-MTA: dns; {mta}\r\n"
        f"Diagnostic-Code: {diagnostic.format(rcpt=recipient)}\r\n\r\n"
        "--B1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    ).encode() + headers + b"\r\n\r\n--B1--\r\n"


def arf(original: bytes, recipient: str) -> bytes:
    """An RFC 5965 feedback report (a recipient pressed "this is spam")."""
    return (
        "From: feedback@fbl.example.net\r\nTo: abuse@bounce.example.jp\r\n"
        "Subject: FW: spam report\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F1"\r\n\r\n'
        "--F1\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n"
        "--F1\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: ExampleFBL/1.0\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: {recipient}\r\n\r\n"
        "--F1\r\nContent-Type: message/rfc822\r\n\r\n"
    ).encode() + original + b"\r\n--F1--\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mx_server(**options):
    """tayori mx on a free loopback port, for the length of the block."""
    from tayori.inbound.server import controller

    server = controller("127.0.0.1", free_port(), **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def deliver(server, mail_from: str, to: str, raw: bytes) -> None:
    with smtplib.SMTP(server.hostname, server.port, timeout=10) as client:
        client.sendmail(mail_from, [to], raw)
