"""What tayori mx does with a mail it accepted, by the address it was sent to:

- ``bounce+<token>@<bounce domain>`` — a report about the delivery the VERP token names: a bounce
  (each failed recipient classified and acted on), a complaint, or an auto-reply (ignored);
- ``unsubscribe+<token>@<bounce domain>`` — the List-Unsubscribe mailto of a delivery;
- ``join-<code>@<inbound domain>`` — an empty-mail sign-up;
- any other address at our domains (postmaster@, abuse@, a feedback-loop address) — a report
  matched to its delivery by what it quotes of the original: the Return-Path, the Message-ID
  (both carry the delivery's token) or, last, the recipient's most recent delivery.

The domains accepted are the workspaces' bounce, sender and inbound domains and
settings.MX_DOMAINS, read again every DOMAINS_TTL seconds."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tayori.accounts.models import Workspace
from tayori.delivery import tokens
from tayori.delivery.models import Delivery, DeliverySettings, SenderDomain
from tayori.inbound import dsn, signup
from tayori.inbound.consequences import Evidence, record_bounce, record_complaint
from tayori.inbound.models import InboundSettings, SignupAddress, Via

log = logging.getLogger(__name__)

DOMAINS_TTL = 30.0
# How far back the last fallback looks for the delivery a recipient's bounce is about.
RECENT = dt.timedelta(days=30)
# A report that names no failed recipient is still kept when it is plainly a report.
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery", re.I)

_domains: tuple[float, frozenset[str]] = (0.0, frozenset())


def accepted_domains() -> frozenset[str]:
    global _domains
    read_at, domains = _domains
    if time.monotonic() - read_at < DOMAINS_TTL:
        return domains
    found = {d.lower() for d in settings.MX_DOMAINS}
    for a, b in DeliverySettings.objects.values_list("bounce_domain",
                                                     "transactional_bounce_domain"):
        found.update(d.lower() for d in (a, b) if d)
    found.update(d.lower() for d in SenderDomain.objects.values_list("domain", flat=True))
    found.update(d.lower() for d in InboundSettings.objects.exclude(inbound_domain="")
                 .values_list("inbound_domain", flat=True))
    _domains = (time.monotonic(), frozenset(found))
    return _domains[1]


def forget_domains() -> None:
    """Read the domains again on the next mail (settings changed)."""
    global _domains
    _domains = (0.0, frozenset())


def accepts(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(local and at) and domain.lower().rstrip(".") in accepted_domains()


@dataclass(slots=True)
class Receipt:
    """What became of one mail, for logs, the SMTP reply and tests."""

    kind: str = "ignored"  # bounce, complaint, autoreply, delay, unsubscribe, signup, ignored
    deliveries: list[int] = field(default_factory=list)
    bounces: list[int] = field(default_factory=list)
    complaints: list[int] = field(default_factory=list)
    detail: str = ""


def receive(mail_from: str, recipients: list[str], raw: bytes, *,
            now: dt.datetime | None = None) -> Receipt:
    """Act on one accepted mail (all its recipients are at accepted domains)."""
    now = now or timezone.now()
    for recipient in recipients:
        local = recipient.rpartition("@")[0]
        prefix, plus, rest = local.partition("+")
        if plus and prefix.lower() == "unsubscribe":
            return _unsubscribe(rest)
        if local.lower().startswith("join-"):
            return _signup(local[5:], mail_from, raw, now)
    verp = next((d for r in recipients
                 if (d := tokens.delivery_of_bounce(r.rpartition("@")[0]))), None)
    return _report(verp, mail_from, raw, now)


def _unsubscribe(token: str) -> Receipt:
    from tayori.tracking import optout  # tracking sits beside inbound; only this path needs it

    numbers = tokens.read(tokens.UNSUBSCRIBE, token.lower())
    delivery = Delivery.objects.filter(pk=numbers[0]).select_related("member").first() \
        if numbers and len(numbers) == 1 else None
    if delivery is None:
        return Receipt(detail="unknown unsubscribe token")
    with transaction.atomic():
        optout.unsubscribe(delivery, method="mailto")
    return Receipt("unsubscribe", [delivery.pk])


def _signup(code: str, mail_from: str, raw: bytes, now: dt.datetime) -> Receipt:
    address = SignupAddress.objects.filter(code=code.lower(), active=True).first()
    if address is None:
        return Receipt(detail="unknown sign-up code")
    # Answering a bounce or an auto-reply (a vacation notice to our answer) would start a loop.
    if not mail_from or dsn.parse(raw).kind != "other":
        return Receipt(detail="not written by a person")
    sender = signup.sender_of(mail_from, raw)
    if not sender:
        return Receipt(detail="no sender")
    mail = signup.receive(address, sender, now=now)
    return Receipt("signup", detail=mail.outcome if mail else "refused")


def _report(verp: int | None, mail_from: str, raw: bytes, now: dt.datetime) -> Receipt:
    report = dsn.parse(raw)
    if report.kind in ("autoreply", "delay"):
        return Receipt(report.kind, [verp] if verp else [])
    if report.kind == "complaint":
        return _complaint(verp, report, raw, now)
    failures = [f for f in report.failures if f.action != "delayed"]
    if not failures and verp and (report.kind == "bounce" or not mail_from
                                  or _DAEMON.search(f"{mail_from} {report.sender}")):
        # A report Tayori cannot read still proves the message came back.
        failures = [dsn.Failure(recipient="", reason="undefined", hard=False,
                                diagnostic=report.subject)]
    receipt = Receipt("bounce" if failures else "ignored")
    for failure in failures:
        delivery, signed = _delivery(verp, report, failure.recipient, now)
        if delivery is None:
            log.info("bounce for %s matched no delivery", failure.recipient or "?")
            continue
        address = delivery.address if verp else failure.recipient or delivery.address
        bounce = record_bounce(delivery, Evidence(
            address=address, reason=failure.reason, hard=failure.hard, status=failure.status,
            diagnostic=failure.diagnostic, remote_mta=failure.remote_mta),
            workspace_id=delivery.workspace_id, via=Via.MX, raw=raw, now=now, act=signed)
        receipt.deliveries.append(delivery.pk)
        receipt.bounces.append(bounce.pk)
    return receipt


def _complaint(verp: int | None, report: dsn.Report, raw: bytes, now: dt.datetime) -> Receipt:
    delivery, signed = _delivery(verp, report, next(iter(report.original_recipients), ""), now)
    if delivery is None or not signed:  # anyone can claim an address complained
        return Receipt("ignored", detail="complaint matched no delivery")
    complaint = record_complaint(delivery, workspace_id=delivery.workspace_id,
                                 address=delivery.address, feedback_type=report.feedback_type,
                                 reporter=report.user_agent or report.sender, raw=raw, now=now)
    return Receipt("complaint", [delivery.pk], complaints=[complaint.pk])


def _delivery(verp: int | None, report: dsn.Report, recipient: str,
              now: dt.datetime) -> tuple[Delivery | None, bool]:
    """The delivery a report is about, and whether a signed token named it: VERP, else the
    token in the quoted Return-Path or Message-ID, else the recipient's latest delivery."""
    candidates = [verp] if verp else []
    if not candidates:
        for quoted in (report.original_return_path, report.original_message_id):
            local = quoted.strip("<>").rpartition("@")[0]
            if (found := tokens.delivery_of_bounce(local)
                    or tokens.delivery_of_bounce(f"bounce+{local}")):
                candidates.append(found)
    for pk in candidates:
        delivery = Delivery.objects.filter(pk=pk).first()
        if delivery is not None:
            return delivery, True
    if not recipient:
        return None, False
    # Last: what was sent to that address lately, most recent first. Anyone can write such a
    # report, so a bounce matched this way is shown but never suppresses (see record_bounce).
    return (Delivery.objects.filter(workspace_id__in=Workspace.objects.values("pk"),
                                    address__in={recipient, recipient.lower()}, status="sent",
                                    sent_at__gte=now - RECENT)
            .order_by("-sent_at").first()), False
