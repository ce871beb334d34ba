"""What tayori mx does with a mail it accepted, by the address it was sent to:

- ``bounce+<token>@<bounce domain>`` — a report about the delivery the VERP token names: a bounce
  (the failure about that delivery's address classified and acted on), a complaint, or an
  auto-reply (ignored);
- ``unsubscribe+<token>@<bounce domain>`` — the List-Unsubscribe mailto of a delivery;
- ``join-<code>@<inbound domain>`` — an empty-mail sign-up;
- any other address at our domains (postmaster@, abuse@, a feedback-loop address) — a report
  matched to its delivery by what it quotes of the original: the Return-Path or the Message-ID
  (both carry the delivery's token); last, by the failed recipient's address, which is kept but
  never acted on.

One delivery bounces once and is complained about once: a report sent again is not counted
again.

The domains accepted are the workspaces' bounce, sender and inbound domains and
settings.MX_DOMAINS, read again every DOMAINS_TTL seconds."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from tayori.delivery import tokens
from tayori.delivery.models import Delivery, DeliverySettings, SenderDomain
from tayori.inbound import dsn, signup
from tayori.inbound.consequences import Evidence, record_bounce, record_complaint
from tayori.inbound.models import Bounce, Complaint, InboundSettings, SignupAddress, Via

log = logging.getLogger(__name__)

DOMAINS_TTL = 30.0
# How far back the last fallback looks for the delivery a recipient's bounce is about.
RECENT = dt.timedelta(days=30)
MAX_UNSIGNED = 10  # failed recipients looked up per unsigned report
# A report that names no failed recipient is still kept when it is plainly a report.
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery", re.I)

_NEVER_READ = (float("-inf"), frozenset())
_domains: tuple[float, frozenset[str]] = _NEVER_READ


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
    _domains = _NEVER_READ


def accepts(address: str) -> bool:
    return _at(address, accepted_domains())


def cached_accepts(address: str) -> bool | None:
    """``accepts`` while the domains read last are fresh, else None (read them with accepts)."""
    read_at, domains = _domains
    return _at(address, domains) if time.monotonic() - read_at < DOMAINS_TTL else None


def _at(address: str, domains: frozenset[str]) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(local and at) and domain.lower().rstrip(".") in domains


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
    """Act on one accepted mail (all its recipients are at accepted domains). The database
    work is one transaction: a failure half-way leaves nothing behind, and the sender's retry
    (after tayori mx's 451) starts clean. Parsing happens before it, so that on SQLite the
    write lock is held for the writes only."""
    now = now or timezone.now()
    for recipient in recipients:
        local = recipient.rpartition("@")[0]
        prefix, plus, rest = local.partition("+")
        if plus and prefix.lower() == "unsubscribe":
            with transaction.atomic():
                return _unsubscribe(rest)
        if local.lower().startswith("join-"):
            report = dsn.parse(raw)
            with transaction.atomic():
                return _signup(recipient, mail_from, raw, report, now)
    verp = next((d for r in recipients
                 if (d := tokens.delivery_of_bounce(r.rpartition("@")[0]))), None)
    report = dsn.parse(raw)
    with transaction.atomic():
        return _report(verp, recipients, mail_from, raw, report, now)


def _unsubscribe(token: str) -> Receipt:
    from tayori.tracking import optout  # tracking sits beside inbound; only this path needs it

    numbers = tokens.read(tokens.UNSUBSCRIBE, token.lower())
    delivery = Delivery.objects.filter(pk=numbers[0]).select_related("member").first() \
        if numbers and len(numbers) == 1 else None
    if delivery is None:
        return Receipt(detail="unknown unsubscribe token")
    optout.unsubscribe(delivery, method="mailto")
    return Receipt("unsubscribe", [delivery.pk])


def _signup(recipient: str, mail_from: str, raw: bytes, report: dsn.Report,
            now: dt.datetime) -> Receipt:
    local, _at, domain = recipient.rpartition("@")
    address = (SignupAddress.objects.filter(code=local[5:].lower(), active=True)
               .select_related("workspace").first())
    # A code belongs to its workspace's inbound domain, not to every domain tayori mx takes.
    if address is None or domain.lower() != signup.address_of(address).rpartition("@")[2]:
        return Receipt(detail="unknown sign-up address")
    # Answering a bounce or an auto-reply (a vacation notice to our answer) would start a loop.
    if not mail_from or report.kind != "other":
        return Receipt(detail="not written by a person")
    sender = signup.sender_of(mail_from, raw)
    if not sender or sender.rpartition("@")[2] in accepted_domains():
        return Receipt(detail="no sender, or one of our own addresses")
    mail = signup.receive(address, sender, now=now)
    return Receipt("signup", detail=mail.outcome if mail else "refused")


def _report(verp: int | None, recipients: list[str], mail_from: str, raw: bytes,
            report: dsn.Report, now: dt.datetime) -> Receipt:
    if report.kind in ("autoreply", "delay"):
        return Receipt(report.kind, [verp] if verp else [])
    if report.kind == "complaint":
        return _complaint(verp, report, raw, now)
    failures = [f for f in report.failures if f.action != "delayed"]
    readable = bool(failures)
    if not failures and verp and (report.kind == "bounce" or not mail_from
                                  or _DAEMON.search(f"{mail_from} {report.sender}")):
        # A report Tayori cannot read still shows the message came back; it is kept, but
        # counts against neither the address nor the send.
        failures = [dsn.Failure(recipient="", reason="undefined", hard=False,
                                diagnostic=report.subject)]
    if not failures:
        return Receipt()
    delivery, seen = _signed_delivery(verp, report)
    if delivery is None:
        return _unsigned(report, failures, recipients, raw, now)
    if seen:
        # Sent again (after a 451, or by a second relay): one delivery bounces once.
        return Receipt("bounce", [delivery.pk], detail="already recorded")
    # The token proves the delivery, so the address acted on is the one Tayori sent to; of a
    # report naming several recipients, the failure that is about it.
    failure = next((f for f in failures if f.recipient.lower() == delivery.address.lower()),
                   failures[0])
    bounce = record_bounce(delivery, Evidence(
        address=delivery.address, reason=failure.reason, hard=failure.hard,
        status=failure.status, diagnostic=failure.diagnostic, remote_mta=failure.remote_mta,
        counts=readable), workspace_id=delivery.workspace_id, via=Via.MX, raw=raw, now=now)
    return Receipt("bounce", [delivery.pk], [bounce.pk])


def _complaint(verp: int | None, report: dsn.Report, raw: bytes, now: dt.datetime) -> Receipt:
    delivery, seen = _signed_delivery(verp, report, Complaint)
    if delivery is None:  # anyone can claim an address complained
        return Receipt(detail="complaint matched no delivery")
    if seen:
        return Receipt("complaint", [delivery.pk], detail="already recorded")
    complaint = record_complaint(delivery, workspace_id=delivery.workspace_id,
                                 address=delivery.address, feedback_type=report.feedback_type,
                                 reporter=report.user_agent or report.sender, raw=raw, now=now)
    return Receipt("complaint", [delivery.pk], complaints=[complaint.pk])


def _signed_delivery(verp: int | None, report: dsn.Report,
                     model=Bounce) -> tuple[Delivery | None, bool]:
    """The delivery a signed token names — the VERP address the report came to, else the
    Return-Path or Message-ID it quotes — and whether it already has a ``model`` row (a
    bounce, or a complaint). Locked, so that two copies of one report arriving together are
    recorded once. One statement: this is tayori mx's hot path."""
    candidates = [verp] if verp else []
    for quoted in (report.original_return_path, report.original_message_id):
        local = quoted.strip("<>").rpartition("@")[0]
        if found := (tokens.delivery_of_bounce(local)
                     or tokens.delivery_of_bounce(f"bounce+{local}")):
            candidates.append(found)
    lock = " FOR UPDATE OF d" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        for pk in dict.fromkeys(candidates):
            cursor.execute(_DELIVERY.format(seen=model._meta.db_table, lock=lock), [pk])
            row = cursor.fetchone()
            if row is not None:
                pk, workspace_id, source_id, member_id, address, seen = row
                return Delivery(pk=pk, workspace_id=workspace_id, source_id=source_id,
                                member_id=member_id, address=address), bool(seen)
    return None, False


_DELIVERY = f"""
SELECT d.id, d.workspace_id, d.source_id, d.member_id, d.address,
       EXISTS (SELECT 1 FROM {{seen}} s WHERE s.delivery_id = d.id)
FROM {Delivery._meta.db_table} d WHERE d.id = %s{{lock}}
"""


def _unsigned(report: dsn.Report, failures: list, recipients: list[str], raw: bytes,
              now: dt.datetime) -> Receipt:
    """The last fallback: the failed recipients' latest mail from the workspaces that own the
    domain the report was sent to. Anyone can write such a report, so it is kept and shown on
    the member's page, but tied to no delivery, told to no webhook and never acted on."""
    owners = _owners({r.rpartition("@")[2].lower() for r in recipients})
    receipt = Receipt()
    for failure in failures[:MAX_UNSIGNED]:
        if not failure.recipient or not owners:
            continue
        found = (Delivery.objects.filter(workspace_id__in=owners,
                                         address__in={failure.recipient,
                                                      failure.recipient.lower()},
                                         status="sent", sent_at__gte=now - RECENT)
                 .order_by("-sent_at").values_list("workspace_id", flat=True).first())
        if found is None:
            log.info("bounce for %s matched no delivery", failure.recipient)
            continue
        bounce = record_bounce(None, Evidence(
            address=failure.recipient, reason=failure.reason, hard=failure.hard,
            status=failure.status, diagnostic=failure.diagnostic,
            remote_mta=failure.remote_mta), workspace_id=found, via=Via.MX, raw=raw, now=now,
            act=False)
        receipt.kind = "bounce"
        receipt.bounces.append(bounce.pk)
    return receipt


def _owners(domains: set[str]) -> set[int]:
    """The workspaces whose bounce, sender or inbound domain is one of ``domains``."""
    owners = set()
    for domain in domains:
        owners.update(DeliverySettings.objects.filter(
            Q(bounce_domain__iexact=domain) | Q(transactional_bounce_domain__iexact=domain))
            .values_list("workspace_id", flat=True))
        owners.update(SenderDomain.objects.filter(domain__iexact=domain)
                      .values_list("workspace_id", flat=True))
        owners.update(InboundSettings.objects.filter(inbound_domain__iexact=domain)
                      .values_list("workspace_id", flat=True))
    return owners
