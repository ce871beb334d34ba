"""Empty-mail sign-up (空メール): a mail to ``join-<code>@<inbound domain>`` from any address
— a carrier phone's included — makes a pending member and answers with a link; opening it and
pressing the button confirms the sign-up (double opt-in) and records the consent.

The answer goes out as a transactional message from the sign-up address itself, so a phone
whose domain filter allows only that address still receives it. Each sender gets at most
PER_HOUR answers an hour, so the address cannot be used to flood someone's inbox."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import time
from email.parser import BytesHeaderParser

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tayori.delivery import sending, tokens
from tayori.delivery.models import DeliverySettings
from tayori.inbound.models import EmptyMail, InboundSettings, SignupAddress
from tayori.members.models import ConsentRecord, ListMembership, Member
from tayori.members.values import FieldError, normalize_email

log = logging.getLogger(__name__)

PER_HOUR = 3
CONFIRM_WITHIN = dt.timedelta(days=3)
# Unconfirmed sign-ups hold an address nobody agreed to be mailed at (anyone can write an empty
# mail with another's From): they are deleted once their links have expired.
TIDY_EVERY = 3600.0
_tidied_at = -TIDY_EVERY
CONSENT_METHOD = "empty mail"
# Members who may not sign up again by mail: they complained or an operator blocked them.
_REFUSED = (Member.Status.COMPLAINED, Member.Status.BLOCKED)


def sender_of(mail_from: str, raw: bytes) -> str:
    """The address that wrote: the From header (what the phone shows as its own address), else
    the envelope sender. Empty when neither is an address."""
    headers = BytesHeaderParser().parsebytes(raw[:16384])
    for candidate in (email.utils.parseaddr(str(headers.get("From", "")))[1], mail_from):
        try:
            address = normalize_email(candidate)
        except FieldError:
            continue
        if address:
            return address
    return ""


def address_of(signup: SignupAddress) -> str:
    domain = InboundSettings.of(signup.workspace).inbound_domain.lower()
    return f"join-{signup.code}@{domain}" if domain else ""


def receive(signup: SignupAddress, sender: str, *, now: dt.datetime | None = None) -> EmptyMail:
    """Act on one empty mail from ``sender`` (a normalized address)."""
    now = now or timezone.now()
    workspace = signup.workspace
    recent = EmptyMail.objects.filter(sender=sender,
                                      received_at__gte=now - dt.timedelta(hours=1)).count()
    mail = EmptyMail(workspace=workspace, signup=signup, sender=sender, received_at=now,
                     outcome=EmptyMail.Outcome.LIMITED)
    if recent >= PER_HOUR:
        mail.save()
        return mail
    host = DeliverySettings.of(workspace).tracking_host
    from_address = address_of(signup)
    member = _pending_member(workspace, sender, now)
    if member is None or member.status in _REFUSED or not host or not from_address:
        if not host or not from_address:
            log.warning("sign-up %s: no tracking host or inbound domain to answer with",
                        signup.code)
        mail.outcome = EmptyMail.Outcome.REFUSED
        mail.member = member
        mail.save()
        return mail
    with transaction.atomic():
        mail.outcome, mail.member = EmptyMail.Outcome.REPLIED, member
        mail.save()
        url = tokens.link(host, tokens.JOIN, mail.pk)
        content = sending.Content(subject=signup.subject, text=signup.text,
                                  from_address=from_address, from_name=signup.from_name,
                                  tracking=False)
        answer = sending.enqueue_message(workspace, content, member=member,
                                         data={"confirm_url": url}, urgent=True,
                                         name=_("Sign-up: %(name)s") % {"name": signup.name})
        if answer.status == "skipped":  # a bounced member, or a suppressed address
            mail.outcome = EmptyMail.Outcome.REFUSED
            mail.save(update_fields=["outcome"])
    return mail


def _pending_member(workspace, address: str, now: dt.datetime) -> Member | None:
    try:
        with transaction.atomic():
            return Member.objects.get_or_create(
                workspace=workspace, email=address,
                defaults={"status": Member.Status.PENDING, "created_at": now,
                          "updated_at": now})[0]
    except IntegrityError:  # created meanwhile by another mail
        return Member.objects.filter(workspace=workspace, email=address).first()


def tidy(*, now: dt.datetime) -> int:
    """The scheduler's task, at most hourly: delete members still pending after their links
    expired (a member who confirmed, or was changed since, is active and kept). Returns how
    many."""
    global _tidied_at
    if time.monotonic() - _tidied_at < TIDY_EVERY:
        return 0
    _tidied_at = time.monotonic()
    stale = Member.objects.filter(status=Member.Status.PENDING,
                                  created_at__lt=now - CONFIRM_WITHIN - dt.timedelta(days=1))
    return stale.delete()[1].get(Member._meta.label, 0)


def mail_of(token: str, *, now: dt.datetime | None = None) -> EmptyMail | None:
    """The empty mail a confirmation link stands for, while it may still be confirmed."""
    numbers = tokens.read(tokens.JOIN, token)
    if not numbers or len(numbers) != 1:
        return None
    mail = (EmptyMail.objects.filter(pk=numbers[0]).select_related("signup", "workspace", "member")
            .first())
    if mail is None or mail.received_at < (now or timezone.now()) - CONFIRM_WITHIN:
        return None
    return mail


def confirm(mail: EmptyMail, *, ip: str | None, user_agent: str,
            now: dt.datetime | None = None) -> bool:
    """Make the sign-up real: the member active, in the sign-up's list, with the consent
    recorded. False when there is nothing to confirm (done before, or the member is gone or may
    not sign up)."""
    now = now or timezone.now()
    member = mail.member
    if member is None or mail.confirmed_at is not None or member.status in _REFUSED:
        return False
    with transaction.atomic():
        if not EmptyMail.objects.filter(pk=mail.pk, confirmed_at__isnull=True).update(
                outcome=EmptyMail.Outcome.CONFIRMED, confirmed_at=now):
            return False
        # A member who unsubscribed or bounced before signs up again by choice: active again.
        Member.objects.filter(pk=member.pk).exclude(status__in=_REFUSED).update(
            status=Member.Status.ACTIVE, updated_at=now)
        ConsentRecord.objects.create(
            workspace=mail.workspace, member=member, address=member.email, given_at=now,
            method=CONSENT_METHOD, source=address_of(mail.signup) or f"join-{mail.signup.code}",
            wording_version=mail.signup.wording_version, ip=ip, user_agent=user_agent[:400])
        if mail.signup.member_list_id:
            ListMembership.objects.get_or_create(member_list_id=mail.signup.member_list_id,
                                                 member=member)
    return True
