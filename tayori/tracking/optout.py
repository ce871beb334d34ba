"""What an opt-out changes: the member stops receiving broadcast mail (transactional mail still
reaches them), their consent records are closed with how and when, and an address outside the
members is suppressed. Imports never turn an unsubscribed member active again (members.services)
unless a new consent comes with them. Repeating an opt-out changes nothing.

Listeners (webhooks) registered in ``LISTENERS`` hear of each opt-out that changed something,
as ``listener(delivery, method)`` once it is committed."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from tayori.delivery.models import Delivery
from tayori.lib.netaddr import client_ip
from tayori.members.models import ConsentRecord, ListMembership, Member, Suppression

log = logging.getLogger(__name__)

LISTENERS: list = []


def unsubscribe(delivery: Delivery, *, method: str, request=None) -> bool:
    """Opt the delivery's recipient out; True when this changed something."""
    changed = _unsubscribe(delivery, method=method, request=request)
    if changed and LISTENERS:
        transaction.on_commit(lambda: _tell(delivery, method))
    return changed


def _tell(delivery: Delivery, method: str) -> None:
    for listener in LISTENERS:
        try:
            listener(delivery, method)
        except Exception:
            log.exception("an opt-out listener failed")


def _unsubscribe(delivery: Delivery, *, method: str, request=None) -> bool:
    now = timezone.now()
    member = delivery.member
    if member is None:
        try:
            with transaction.atomic():
                _row, created = Suppression.objects.get_or_create(
                    workspace_id=delivery.workspace_id, kind="email", value=delivery.address,
                    defaults={"reason": "unsubscribed", "source": method})
        except IntegrityError:
            created = False
        return created
    changed = Member.objects.filter(pk=member.pk, status=Member.Status.ACTIVE).update(
        status=Member.Status.UNSUBSCRIBED, updated_at=now)
    ConsentRecord.objects.filter(member_id=member.pk, channel=ConsentRecord.Channel.EMAIL,
                                 withdrawn_at__isnull=True).update(
        withdrawn_at=now, withdrawn_method=method[:100])
    if changed and request is not None:
        # The withdrawal itself is evidence: where it came from and with what.
        ConsentRecord.objects.create(
            workspace_id=delivery.workspace_id, member=member, address=delivery.address,
            given_at=now, withdrawn_at=now, method="opt-out", withdrawn_method=method[:100],
            source=f"delivery:{delivery.pk}", ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:400])
    return bool(changed)


def set_lists(member: Member, offered, wanted: set[int]) -> None:
    """Subscribe the member to the offered lists in ``wanted`` and out of the others."""
    offered_ids = {item.pk for item in offered}
    ListMembership.objects.filter(member=member, member_list_id__in=offered_ids - wanted).delete()
    ListMembership.objects.bulk_create(
        [ListMembership(member=member, member_list_id=pk) for pk in wanted & offered_ids],
        ignore_conflicts=True)
