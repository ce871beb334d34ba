"""Whom a notice reaches: its type's targeting rule and the chosen services as one segment
definition (the language of members.segments), and what that definition selects now — the
exact number who will receive it, who is skipped and why, and a sample.

The count uses the fan-out's rules for the transactional stream (delivery.queue): unsubscribed
members still receive a notice; a member without an address, one whose address bounced,
complained or was blocked, and a suppressed address are skipped with that reason."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Case, CharField, Count, Exists, F, OuterRef, Q, Value, When
from django.utils import timezone

from tayori.delivery.queue import NO_ADDRESS, SUPPRESSED
from tayori.incidents.fields import services_field
from tayori.incidents.models import NoticeType
from tayori.members.models import Attribute, Member, Suppression
from tayori.members.segments import segment_queryset

SAMPLE_SIZE = 10
# Member statuses a notice skips (the transactional rule of delivery.queue's fan-out).
SKIPPED_STATUSES = (Member.Status.BOUNCED, Member.Status.COMPLAINED, Member.Status.BLOCKED,
                    Member.Status.PENDING)
# How a targeting attribute of each type is asked whether it holds any chosen service.
OPERATORS = {Attribute.Type.MULTI_CHOICE: "has_any", Attribute.Type.CHOICE: "in",
             Attribute.Type.TEXT: "in"}


def audience(notice_type: NoticeType, values: dict) -> dict | None:
    """The definition of the members a notice with ``values`` is meant for, or None when it
    can reach nobody (no service chosen, or none that a member's attribute can hold)."""
    conditions = []
    if notice_type.target == NoticeType.Target.SERVICES:
        spec = services_field(notice_type)
        codes = list(values.get(spec.key) or []) if spec else []
        attribute = Attribute.objects.filter(workspace=notice_type.workspace,
                                             key=notice_type.target_attribute).first()
        if attribute is None or attribute.type not in OPERATORS or not codes:
            return None
        if attribute.type != Attribute.Type.TEXT:
            # A code that is not one of the attribute's choices is held by no member, and
            # the segment language would refuse it.
            codes = [code for code in codes if code in attribute.choices]
            if not codes:
                return None
        conditions.append({"field": attribute.key, "operator": OPERATORS[attribute.type],
                           "value": codes})
    if notice_type.segment_id:
        conditions.append({"field": "segment", "operator": "in_segment",
                           "value": notice_type.segment_id})
    return {"op": "and", "conditions": conditions}


@dataclass
class Reach:
    """What a definition selects now: those who will receive, those skipped by reason."""

    receiving: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    sample: list[Member] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.receiving + sum(self.skipped.values())


def reach(workspace, definition: dict | None, *, now: dt.datetime | None = None,
          sample_size: int = SAMPLE_SIZE) -> Reach:
    """Count (one grouped query) and sample the members ``definition`` selects. Raises
    members.segments.SegmentError when the definition no longer validates."""
    if definition is None:
        return Reach()
    now = now or timezone.now()
    members = segment_queryset(workspace, definition, now=now).annotate(
        reason=_skip_reason(workspace, now))
    result = Reach()
    for row in members.order_by().values("reason").annotate(n=Count("id")):
        if row["reason"]:
            result.skipped[row["reason"]] = row["n"]
        else:
            result.receiving = row["n"]
    if sample_size:
        result.sample = list(members.filter(reason="").order_by("id")[:sample_size])
    return result


def _skip_reason(workspace, now):
    suppressed = Suppression.objects.filter(
        workspace=workspace, kind=Suppression.Kind.EMAIL, value=OuterRef("email")).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    return Case(
        When(email="", then=Value(NO_ADDRESS)),
        When(status__in=SKIPPED_STATUSES, then=F("status")),
        When(Exists(suppressed), then=Value(SUPPRESSED)),
        default=Value(""), output_field=CharField())
