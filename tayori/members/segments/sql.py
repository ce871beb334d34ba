"""Compiling a definition to one ORM query that selects the same members on SQLite and
PostgreSQL, and the entry points that run it: ``segment_queryset``, ``count``, ``segment_members``."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.db.models import (
    BooleanField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.db.models.functions import Coalesce, ExtractDay, ExtractMonth, Left, StrIndex, Substr
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    IsNull,
    LessThan,
    LessThanOrEqual,
)
from django.utils import timezone

from tayori.members.models import ListMembership, Member, Segment
from tayori.members.segments.days import (
    day_range,
    instant_range,
    instant_text,
    month_day_window,
    workspace_today,
)
from tayori.members.segments.expressions import Bytewise, JSONHas, JSONValue
from tayori.members.segments.fields import fields_of
from tayori.members.segments.kinds import KINDS, Scope
from tayori.members.segments.language import NEGATIONS
from tayori.members.segments.saved import SavedSegments
from tayori.members.segments.validation import validate

# Up to this many values, "in" on a text attribute is written as jsonb containment (``@>``), which a
# GIN index on Member.attributes can answer; longer lists use one IN over the extracted text.
CONTAINMENT_MAX_VALUES = 50


def segment_queryset(workspace, definition, *, allow_pii: bool = True,
                     now: dt.datetime | None = None) -> QuerySet[Member]:
    """The members of ``workspace`` that ``definition`` selects (validated first)."""
    compiler = _Compiler(workspace, now=now)
    normalized = validate(workspace, definition, allow_pii=allow_pii, fields=compiler.fields)
    return Member.objects.filter(workspace=workspace).filter(compiler.compile(normalized))


def count(workspace, definition, *, allow_pii: bool = True, now: dt.datetime | None = None) -> int:
    """How many members of ``workspace`` ``definition`` selects."""
    return segment_queryset(workspace, definition, allow_pii=allow_pii, now=now).count()


def segment_members(segment: Segment, *, now: dt.datetime | None = None) -> QuerySet[Member]:
    """The members a saved segment selects now."""
    return segment_queryset(segment.workspace, segment.definition, now=now)


class _Compiler:
    """Turns a validated definition into a ``Q`` over Member, one node at a time."""

    def __init__(self, workspace, *, now=None):
        self.workspace = workspace
        self.tz = ZoneInfo(workspace.time_zone)
        self.now = now or timezone.now()
        self.today = workspace_today(workspace, self.now)
        self.fields = fields_of(workspace)
        self.saved = SavedSegments(workspace, self.fields)
        self.scope = Scope(workspace, self.now, self.today, self.tz)

    def compile(self, node: dict) -> Q:
        if "conditions" in node:
            return _combine([self.compile(child) for child in node["conditions"]], node["op"])
        operator = node["operator"]
        if operator in NEGATIONS:
            return _negate(self.leaf(node["field"], NEGATIONS[operator], node.get("value")))
        return self.leaf(node["field"], operator, node.get("value"))

    def leaf(self, name: str, operator: str, value) -> Q:
        """A positive condition. It may be NULL where a member has no value; outside a negation
        that reads as false, and ``_negate`` makes it false before negating."""
        field = self.fields[name]
        kind = field.kind
        if kind in KINDS:
            return KINDS[kind].q(self.scope, operator, value)
        if kind == "segment":
            with self.saved.entered(value) as definition:
                return self.compile(definition)
        if kind == "list":
            return Q(Exists(ListMembership.objects.filter(
                member_list_id=value, member_list__workspace=self.workspace,
                member_id=OuterRef("pk"))))
        if kind == "status":
            return Q(status__in=value) if operator == "in" else Q(status=value)
        if kind == "created_at":
            if operator == "anniversary_within_days":
                month_day = (ExtractMonth("created_at", tzinfo=self.tz) * 100
                             + ExtractDay("created_at", tzinfo=self.tz))
                return _month_day_q(month_day, value, self.today, as_number=True)
            start, end = instant_range(operator, value, self.today, self.tz)
            parts = []
            if start is not None:
                parts.append(Q(created_at__gte=start))
            if end is not None:
                parts.append(Q(created_at__lt=end))
            return _combine(parts, "and")
        if kind in ("email", "phone"):
            if operator == "is_not_empty":
                return ~Q(**{name: ""})
            if operator == "equals":
                return Q(**{name: value})
            if operator == "in":
                return Q(**{f"{name}__in": value})
            return self.text(F(name), operator, value)
        key = field.name
        if kind == "boolean":
            if operator == "is_not_empty":
                return Q(IsNull(JSONValue(key, "boolean"), False))
            return Q(JSONHas(key, [operator == "is_true"]))
        if kind == "multi_choice":
            if operator == "is_not_empty":
                return Q(GreaterThan(JSONValue(key, "array"), 0))
            return Q(JSONHas(key, value, element=True, every=operator == "has_all"))
        if kind == "number":
            number = JSONValue(key, "number")
            if operator == "is_not_empty":
                return Q(IsNull(number, False))
            if operator == "in":
                return Q(In(number, [float(v) for v in value]))
            if operator == "between":
                return (Q(GreaterThanOrEqual(number, float(value[0])))
                        & Q(LessThanOrEqual(number, float(value[1]))))
            lookup = {"equals": Exact, "gt": GreaterThan, "gte": GreaterThanOrEqual,
                      "lt": LessThan, "lte": LessThanOrEqual}[operator]
            return Q(lookup(number, float(value)))
        text = JSONValue(key, "string")
        if operator == "is_not_empty":
            return Q(IsNull(text, False))
        if kind in ("date", "datetime"):
            return self.days(text, kind, operator, value)
        if operator in ("equals", "in"):
            values = [value] if operator == "equals" else value
            if len(values) <= CONTAINMENT_MAX_VALUES:
                return Q(JSONHas(key, values))
            return Q(In(text, values))
        return self.text(text, operator, value)

    def text(self, expression, operator: str, value) -> Q:
        if operator == "equals":
            return Q(Exact(expression, value))
        if operator == "in":
            return Q(In(expression, value))
        if operator == "contains":
            return Q(GreaterThan(StrIndex(expression, Value(value)), 0))
        if operator == "starts_with":
            return Q(Exact(Left(expression, len(value)), value))
        raise AssertionError(operator)

    def days(self, text, kind: str, operator: str, value) -> Q:
        if operator == "anniversary_within_days":
            if month_day_window(value, self.today) is None:
                return Q(IsNull(text, False))
            return _month_day_q(Bytewise(Substr(text, 6, 5)), value, self.today)
        ordered = Bytewise(text)
        parts = []
        if kind == "date":
            low, high = day_range(operator, value, self.today)
            if low is not None:
                parts.append(Q(GreaterThanOrEqual(ordered, low.isoformat())))
            if high is not None:
                parts.append(Q(LessThanOrEqual(ordered, high.isoformat())))
        else:
            start, end = instant_range(operator, value, self.today, self.tz)
            if start is not None:
                parts.append(Q(GreaterThanOrEqual(ordered, instant_text(start))))
            if end is not None:
                parts.append(Q(LessThan(ordered, instant_text(end))))
        return _combine(parts, "and")


def _month_day_q(month_day, days: int, today: dt.date, *, as_number: bool = False) -> Q:
    """Month and day (``MM-DD`` text, or the number MMDD) within the next ``days`` days."""
    window = month_day_window(days, today)
    if window is None:
        return Q(pk__isnull=False)
    first, last, wraps = window
    if as_number:
        first, last = int(first.replace("-", "")), int(last.replace("-", ""))
    after = Q(GreaterThanOrEqual(month_day, first))
    before = Q(LessThanOrEqual(month_day, last))
    return (after | before) if wraps else (after & before)


def _combine(parts: list[Q], op: str) -> Q:
    """AND / OR of conditions; an empty group selects everyone."""
    if not parts:
        return Q(pk__isnull=False)
    combined = parts[0]
    for part in parts[1:]:
        combined = (combined | part) if op == "or" else (combined & part)
    return combined


def _negate(q: Q) -> Q:
    """NOT, exact under SQL's three-valued logic.

    Conditions compare values that may be NULL (no value, or one of another type). Without a NOT
    a NULL reads as false; under one it would stay NULL and drop the member, so the negated part
    is first made two-valued with COALESCE(…, false).
    """
    return ~Q(Coalesce(ExpressionWrapper(q, output_field=BooleanField()), Value(False)))
