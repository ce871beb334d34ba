"""The plain-Python evaluator: decides whether loaded members match a definition by the same
rules as the SQL. It is what the property test holds the compiled query to."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.utils import timezone

from tayori.members.models import ListMembership, Member
from tayori.members.segments.days import (
    day_range,
    instant_range,
    instant_text,
    month_day_window,
    workspace_today,
)
from tayori.members.segments.fields import fields_of
from tayori.members.segments.kinds import KINDS, Scope, positive_leaves
from tayori.members.segments.language import NEGATIONS
from tayori.members.segments.saved import SavedSegments
from tayori.members.segments.validation import validate


class Evaluator:
    """Decides in Python whether members match a definition, by the same rules as the SQL.

    It is the reference the property test holds the SQL to, and a cheap check for one member that
    is already loaded. List memberships are read once per member, and what registered kinds
    (``kinds``) need once per batch given to ``load`` (or per member, for one not loaded).
    """

    def __init__(self, workspace, *, now: dt.datetime | None = None, allow_pii: bool = True):
        self.workspace = workspace
        self.allow_pii = allow_pii
        self.tz = ZoneInfo(workspace.time_zone)
        self.now = now or timezone.now()
        self.today = workspace_today(workspace, self.now)
        self.fields = fields_of(workspace)
        self.saved = SavedSegments(workspace, self.fields)
        self._lists: dict[int, set[int]] = {}
        self.scope = Scope(workspace, self.now, self.today, self.tz)
        self._leaves: dict[str, list] = {name: [] for name in KINDS}  # in use, per kind
        self._facts: dict[str, dict] = {name: {} for name in KINDS}  # per kind, per member

    def select(self, members, definition) -> list[Member]:
        normalized = self.prepare(definition)
        members = list(members)
        self._load_kinds([m.pk for m in members])
        return [m for m in members if self._node(normalized, m)]

    def matches(self, member: Member, definition) -> bool:
        return bool(self.select([member], definition))

    def prepare(self, definition) -> dict:
        """A definition validated once, for ``test`` to run against many members."""
        prepared = validate(self.workspace, definition, allow_pii=self.allow_pii,
                            fields=self.fields)
        for name, leaves in self._leaves.items():
            new = [leaf for leaf in positive_leaves(prepared, name, self.fields, self.saved)
                   if leaf not in leaves]
            if new:
                leaves.extend(new)
                self._facts[name].clear()  # read for fewer conditions than are now in use
        return prepared

    def test(self, prepared: dict, member) -> bool:
        """Whether one member matches a prepared definition. ``member`` may be any object with
        the Member fields the definition reads (pk, email, phone, status, created_at,
        attributes): the delivery engine passes light rows, not model instances."""
        return self._node(prepared, member)

    def load(self, member_ids) -> None:
        """Read what testing many members needs (lists, registered kinds) before testing them."""
        self.load_lists(member_ids)
        self._load_kinds(member_ids)

    @property
    def reads_kinds(self) -> bool:
        """Whether a prepared definition tests a registered kind (read per batch by load)."""
        return any(self._leaves.values())

    def _load_kinds(self, member_ids) -> None:
        for name, leaves in self._leaves.items():
            known = self._facts[name]
            missing = [pk for pk in member_ids if pk not in known]
            if leaves and missing:
                facts = KINDS[name].load(self.scope, missing, leaves)
                known.update((pk, facts.get(pk)) for pk in missing)

    def _facts_of(self, kind: str, member) -> object:
        if member.pk not in self._facts[kind]:
            self._load_kinds([member.pk])
        return self._facts[kind].get(member.pk)

    def load_lists(self, member_ids) -> None:
        """Read the list memberships of many members in one query, before testing them."""
        missing = [pk for pk in member_ids if pk not in self._lists]
        for pk in missing:
            self._lists[pk] = set()
        for member_id, list_id in ListMembership.objects.filter(
                member_id__in=missing, member_list__workspace=self.workspace).values_list(
                "member_id", "member_list_id"):
            self._lists[member_id].add(list_id)

    def _lists_of(self, member: Member) -> set[int]:
        if member.pk not in self._lists:
            self._lists[member.pk] = set(ListMembership.objects.filter(
                member=member, member_list__workspace=self.workspace)
                .values_list("member_list_id", flat=True))
        return self._lists[member.pk]

    def _node(self, node: dict, member: Member) -> bool:
        if "conditions" in node:
            results = (self._node(child, member) for child in node["conditions"])
            if not node["conditions"]:
                return True
            return any(results) if node["op"] == "or" else all(results)
        operator = node["operator"]
        if operator in NEGATIONS:
            return not self._leaf(node["field"], NEGATIONS[operator], node.get("value"), member)
        return self._leaf(node["field"], operator, node.get("value"), member)

    def _leaf(self, name: str, operator: str, value, member: Member) -> bool:
        field = self.fields[name]
        kind = field.kind
        if kind in KINDS:
            return KINDS[kind].test(self.scope, self._facts_of(kind, member), operator, value)
        if kind == "segment":
            with self.saved.entered(value) as definition:
                return self._node(definition, member)
        if kind == "list":
            return value in self._lists_of(member)
        if kind == "status":
            return member.status in value if operator == "in" else member.status == value
        if kind == "created_at":
            if operator == "anniversary_within_days":
                local = member.created_at.astimezone(self.tz)
                return _month_day_matches(f"{local.month:02d}-{local.day:02d}", value, self.today)
            start, end = instant_range(operator, value, self.today, self.tz)
            at = member.created_at
            return (start is None or at >= start) and (end is None or at < end)
        if kind in ("email", "phone"):
            return _text_matches(getattr(member, name) or None, operator, value)
        raw = (member.attributes or {}).get(field.name)
        if kind == "boolean":
            if not isinstance(raw, bool):
                return False
            return operator == "is_not_empty" or raw is (operator == "is_true")
        if kind == "multi_choice":
            if not isinstance(raw, list) or not raw:
                return False
            elements = {e for e in raw if isinstance(e, str)}
            if operator == "is_not_empty":
                return True
            if operator == "has_all":
                return set(value) <= elements
            return bool(elements & set(value))
        if kind == "number":
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                return False
            number = float(raw)
            if operator == "is_not_empty":
                return True
            if operator == "in":
                return number in {float(v) for v in value}
            if operator == "between":
                return float(value[0]) <= number <= float(value[1])
            other = float(value)
            return {"equals": number == other, "gt": number > other, "gte": number >= other,
                    "lt": number < other, "lte": number <= other}[operator]
        text = raw if isinstance(raw, str) else None
        if kind in ("date", "datetime") and operator != "is_not_empty":
            return text is not None and self._days(text, kind, operator, value)
        return _text_matches(text, operator, value)

    def _days(self, text: str, kind: str, operator: str, value) -> bool:
        if operator == "anniversary_within_days":
            return _month_day_matches(text[5:10], value, self.today)
        if kind == "date":
            low, high = day_range(operator, value, self.today)
            return ((low is None or text >= low.isoformat())
                    and (high is None or text <= high.isoformat()))
        start, end = instant_range(operator, value, self.today, self.tz)
        return ((start is None or text >= instant_text(start))
                and (end is None or text < instant_text(end)))


def _month_day_matches(month_day: str, days: int, today: dt.date) -> bool:
    window = month_day_window(days, today)
    if window is None:
        return True
    first, last, wraps = window
    after, before = month_day >= first, month_day <= last
    return (after or before) if wraps else (after and before)


def _text_matches(text: str | None, operator: str, value) -> bool:
    if text is None:
        return False
    return {
        "is_not_empty": lambda: True,
        "equals": lambda: text == value,
        "in": lambda: text in value,
        "contains": lambda: value in text,
        "starts_with": lambda: text.startswith(value),
    }[operator]()
