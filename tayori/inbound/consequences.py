"""What a bounce or a complaint changes: the row that keeps it, the workspace's rule for its
reason (suppress the address after so many within so many days, for a while or for good), the
member's status, and the webhook event. Every path in — tayori mx, the SMTP replies of the
engine, the provider feeds — ends here, so a bounce means the same whichever way it came."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tayori.delivery.models import Delivery
from tayori.inbound.models import Bounce, BounceRule, Complaint, Via
from tayori.inbound.reasons import LABELS
from tayori.members.models import Member, Suppression
from tayori.webhooks import events


@dataclass(frozen=True, slots=True)
class Rule:
    threshold: int  # counting bounces that suppress; 0 never
    window_days: int = 30
    suppress_days: int | None = None  # None: until removed


# The defaults a workspace starts with. A domain filter (filtered) says nothing about the
# address, so it never suppresses; a full mailbox suppresses only when it stays full.
DEFAULT_RULES: dict[str, Rule] = {
    "userunknown": Rule(1),
    "hostunknown": Rule(1),
    "hasmoved": Rule(1),
    "notaccept": Rule(1),
    "mailboxfull": Rule(5, 30, 30),
    "suspend": Rule(3, 30, 30),
}
NEVER = Rule(0)

# Reasons that say nothing against the address itself.
NOT_COUNTED = frozenset({"filtered"})


@dataclass(slots=True)
class Evidence:
    """One failed recipient as a report, a reply or a provider event told it."""

    address: str
    reason: str
    hard: bool
    status: str = ""
    diagnostic: str = ""
    remote_mta: str = ""
    counts: bool = True  # False: the report could not be read; kept, but never counted


# Rules are read for every bounce; a workspace's change reaches every process within this.
RULES_TTL = 10.0
_rules: dict[int, tuple[float, dict[str, Rule]]] = {}


def rules_of(workspace_id: int) -> dict[str, Rule]:
    read_at, rules = _rules.get(workspace_id, (-RULES_TTL, {}))
    if time.monotonic() - read_at < RULES_TTL:
        return rules
    rules = dict(DEFAULT_RULES)
    for rule in BounceRule.objects.filter(workspace_id=workspace_id):
        rules[rule.reason] = Rule(rule.threshold, rule.window_days, rule.suppress_days)
    _rules[workspace_id] = (time.monotonic(), rules)
    return rules


def forget_rules() -> None:
    _rules.clear()


def raw_kept(raw: bytes) -> bytes:
    """The part of a report kept as evidence: its headers and the first part of its body."""
    return raw[:settings.TAYORI_INBOUND_RAW_LIMIT]


def record_bounce(delivery: Delivery | None, evidence: Evidence, *, workspace_id: int,
                  via: str = Via.MX, raw: bytes = b"", now: dt.datetime | None = None,
                  rules: dict[str, Rule] | None = None, act: bool = True) -> Bounce:
    """Keep a bounce and apply the workspace's rule for its reason — unless ``act`` is False:
    a report matched only by the address it names could have been written by anyone.

    This is tayori mx's hot path (every returned mail): a bounce that acts at once (one unknown
    user) is one insert, one suppression upsert and one member update."""
    now = now or timezone.now()
    address = evidence.address or (delivery.address if delivery else "")
    bounce = Bounce(
        workspace_id=workspace_id, delivery=delivery,
        source_id=delivery.source_id if delivery else None,
        member_id=delivery.member_id if delivery else _member_id(workspace_id, address),
        address=address[:254], domain=address.rpartition("@")[2][:253], reason=evidence.reason,
        hard=evidence.hard, via=via,
        counts=act and evidence.counts and evidence.reason not in NOT_COUNTED,
        status=evidence.status[:16], diagnostic=evidence.diagnostic[:1000],
        remote_mta=evidence.remote_mta[:253], raw=raw_kept(raw), received_at=now)
    rule = (rules or rules_of(workspace_id)).get(evidence.reason, NEVER)
    if rule.suppress_days is None and not evidence.hard:
        # Only a permanent failure suppresses for good ("4.4.3 host not found, try again" is
        # not one): a soft verdict under such a rule is counted, not acted on.
        rule = NEVER
    with transaction.atomic(savepoint=False):  # part of the caller's transaction, if any
        if not act:
            bounce.action = _("Not acted on: matched by address only")
        elif bounce.counts and rule.threshold == 1 and address:
            bounce.action = _apply(bounce, rule, 1, now)
        bounce.save(force_insert=True)
        if bounce.counts and rule.threshold > 1 and address:
            # Counted after the insert, so that two reports arriving together both count.
            since = now - dt.timedelta(days=rule.window_days)
            seen = Bounce.objects.filter(workspace_id=workspace_id, address=bounce.address,
                                         reason=bounce.reason, counts=True,
                                         received_at__gte=since).count()
            if seen >= rule.threshold:
                bounce.action = _apply(bounce, rule, seen, now)
                Bounce.objects.filter(pk=bounce.pk).update(action=bounce.action)
    # A refusal while sending was already told to webhooks as message.failed.
    if delivery is not None and via != Via.SMTP:
        reply = " ".join(p for p in (evidence.status, evidence.diagnostic) if p)
        transaction.on_commit(lambda: events.publish_deliveries("message.bounced", [
            {"delivery_id": delivery.pk, "smtp_reply": reply[:500], "reason": evidence.reason,
             "at": now}]))
    return bounce


def _member_id(workspace_id: int, address: str) -> int | None:
    if not address:
        return None
    return (Member.objects.filter(workspace_id=workspace_id, email=address)
            .values_list("pk", flat=True).first())


def _apply(bounce: Bounce, rule: Rule, seen: int, now: dt.datetime) -> str:
    """Suppress the address (its rule's count is reached); say what was done."""
    until = now + dt.timedelta(days=rule.suppress_days) if rule.suppress_days else None
    suppress(bounce.workspace_id, bounce.address, reason=f"bounce: {bounce.reason}",
             source=bounce.via, delivery_id=bounce.delivery_id, until=until, now=now)
    if until is None and bounce.member_id:
        # Only an active member becomes bounced: an unsubscribed or unconfirmed one keeps its
        # status, so lifting the suppression never subscribes anyone (members.services).
        with connection.cursor() as cursor:
            cursor.execute(_BOUNCED, [now, bounce.member_id])
    reason = LABELS.get(bounce.reason, bounce.reason)
    if until is None:
        return _("Suppressed (%(count)d × %(reason)s)") % {"count": seen, "reason": reason}
    return _("Suppressed for %(days)d days (%(count)d × %(reason)s)") % {
        "days": rule.suppress_days, "count": seen, "reason": reason}


_BOUNCED = (f"UPDATE {Member._meta.db_table} SET status = 'bounced', updated_at = %s "
            "WHERE id = %s AND status = 'active'")
_T = Suppression._meta.db_table
# One statement whatever is there: add the address, or lengthen a suppression it is on — one
# for a while, or expired — and never shorten one that is for good.
_SUPPRESS = f"""
INSERT INTO {_T} (workspace_id, kind, value, reason, source, expires_at, delivery_id, created_at)
VALUES (%s, 'email', %s, %s, %s, %s, %s, %s)
ON CONFLICT (workspace_id, kind, value) DO UPDATE
SET reason = excluded.reason, source = excluded.source, expires_at = excluded.expires_at,
    delivery_id = excluded.delivery_id
WHERE {_T}.expires_at IS NOT NULL
  AND (excluded.expires_at IS NULL OR {_T}.expires_at < excluded.expires_at)
"""


def suppress(workspace_id: int, address: str, *, reason: str, source: str,
             delivery_id: int | None, until: dt.datetime | None, now: dt.datetime) -> None:
    """Add the address to the suppression list, or lengthen a suppression it is already on
    (a permanent one stays permanent)."""
    with connection.cursor() as cursor:
        cursor.execute(_SUPPRESS, [workspace_id, address, reason[:200], source[:100], until,
                                   delivery_id, now])


def record_complaint(delivery: Delivery | None, *, workspace_id: int, address: str,
                     feedback_type: str = "abuse", reporter: str = "", via: str = Via.MX,
                     raw: bytes = b"", now: dt.datetime | None = None) -> Complaint:
    """Keep a complaint, mark the member complained and suppress the address for good."""
    now = now or timezone.now()
    address = address or (delivery.address if delivery else "")
    member_id = delivery.member_id if delivery else _member_id(workspace_id, address)
    with transaction.atomic():
        complaint = Complaint.objects.create(
            workspace_id=workspace_id, delivery=delivery,
            source_id=delivery.source_id if delivery else None, member_id=member_id,
            address=address[:254], feedback_type=feedback_type[:32], reporter=reporter[:200],
            via=via, raw=raw_kept(raw), received_at=now)
        if member_id:
            Member.objects.filter(pk=member_id).exclude(status=Member.Status.BLOCKED).update(
                status=Member.Status.COMPLAINED, updated_at=now)
        if address:
            suppress(workspace_id, address, reason="complaint", source=via,
                     delivery_id=delivery.pk if delivery else None, until=None, now=now)
    if delivery is not None:
        transaction.on_commit(lambda: events.publish_deliveries("message.complained", [
            {"delivery_id": delivery.pk, "reason": feedback_type, "at": now}]))
    return complaint
