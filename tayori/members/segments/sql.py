"""Segments: the condition language operators use to pick members, and the two ways to run it.

A definition is a tree of groups ``{"op": "and" | "or", "conditions": [...]}`` whose leaves are
``{"field": ..., "operator": ..., "value": ...}``. ``field`` is ``email``, ``phone``, ``status``,
``created_at``, ``list``, ``segment`` or an attribute key. An empty definition selects everyone.

``validate`` checks a definition against the workspace and returns it normalized; ``segment_queryset``
compiles it to one ORM query (never SQL text built from input) that selects the same members on
SQLite and PostgreSQL; ``Evaluator`` runs the same rules in plain Python, which is what the property
test compares the SQL with.

Rules that both paths share:

* A member "has a value" for an attribute when the stored JSON value has the attribute's type
  (string for text, choice, date and datetime; number; boolean; a non-empty array for multi-choice).
  A missing key, a JSON null or a value of another type is "empty".
* Positive operators (equals, contains, in, gt, has_any, is_true, in_list, …) never match an empty
  value. Negative operators (not_equals, not_contains, not_in, has_none, is_empty, not_in_list,
  not_in_segment) are exactly the negation of their positive twin, so they DO match members
  without a value: "prefecture is not 東京都" includes members with no prefecture.
* Text comparisons are exact and case-sensitive. Email and phone values given to equals / in are
  normalized the way members' addresses and numbers are stored.
* Days are days in the workspace time zone. Date values compare as ``YYYY-MM-DD`` text; datetime
  values (stored as UTC ISO text) are compared against the UTC instants where those days begin.
  "within the last N days" is today−N … today, "within the next N days" today … today+N, "more
  than N days ago" is before today−N and "less than N days ago" after today−N up to today.
* ``anniversary_within_days`` compares month and day only (birthdays on a date attribute, the
  day a member joined on ``created_at``): today … today+N, across the new year. A 29 February date matches in common years when the window spans 28 Feb → 1 Mar.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.db import NotSupportedError
from django.db.models import (
    BooleanField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    TextField,
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
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tayori.members.models import Attribute, ListMembership, Member, MemberList, Segment
from tayori.members.values import FieldError, clean_value, normalize_email, normalize_phone

# Limits that keep one definition from turning into a query the database cannot plan quickly.
MAX_CONDITIONS = 100
MAX_DEPTH = 5
MAX_VALUES = 1000
MAX_DAYS = 36500
MAX_SEGMENT_NESTING = 5
# Up to this many values, "in" on a text attribute is written as jsonb containment (``@>``), which a
# GIN index on Member.attributes can answer; longer lists use one IN over the extracted text.
CONTAINMENT_MAX_VALUES = 50

NEGATIONS = {
    "not_equals": "equals",
    "not_contains": "contains",
    "not_in": "in",
    "has_none": "has_any",
    "is_empty": "is_not_empty",
    "not_in_list": "in_list",
    "not_in_segment": "in_segment",
}

_EMPTY_OPS = {"is_empty", "is_not_empty"}
_TEXT_OPS = ("equals", "not_equals", "contains", "not_contains", "starts_with", "in", "not_in",
             "is_empty", "is_not_empty")
_CHOICE_OPS = ("equals", "not_equals", "in", "not_in", "is_empty", "is_not_empty")
_NUMBER_OPS = ("equals", "not_equals", "in", "not_in", "gt", "gte", "lt", "lte", "between",
               "is_empty", "is_not_empty")
_DAY_OPS = ("equals", "not_equals", "gt", "gte", "lt", "lte", "between", "within_last_days",
            "within_next_days", "more_than_days_ago", "less_than_days_ago")
OPERATORS: dict[str, tuple[str, ...]] = {
    "text": _TEXT_OPS,
    "email": _TEXT_OPS,
    "phone": _TEXT_OPS,
    "choice": _CHOICE_OPS,
    "number": _NUMBER_OPS,
    "date": (*_DAY_OPS, "anniversary_within_days", "is_empty", "is_not_empty"),
    "datetime": (*_DAY_OPS, "is_empty", "is_not_empty"),
    "created_at": (*_DAY_OPS, "anniversary_within_days"),
    "boolean": ("is_true", "is_false", "is_empty", "is_not_empty"),
    "multi_choice": ("has_any", "has_all", "has_none", "is_empty", "is_not_empty"),
    "status": ("equals", "not_equals", "in", "not_in"),
    "list": ("in_list", "not_in_list"),
    "segment": ("in_segment", "not_in_segment"),
}

# What the value of each operator looks like: none, one, two (between), many (a list), days, or a
# reference to a list or segment id. The builder picks its inputs from this.
SHAPES = {
    "is_empty": "none", "is_not_empty": "none", "is_true": "none", "is_false": "none",
    "between": "pair", "in": "many", "not_in": "many", "has_any": "many", "has_all": "many",
    "has_none": "many", "within_last_days": "days", "within_next_days": "days",
    "more_than_days_ago": "days", "less_than_days_ago": "days", "anniversary_within_days": "days",
    "in_list": "ref", "not_in_list": "ref", "in_segment": "ref", "not_in_segment": "ref",
}

OPERATOR_LABELS = {
    "equals": gettext_lazy("is"),
    "not_equals": gettext_lazy("is not"),
    "contains": gettext_lazy("contains"),
    "not_contains": gettext_lazy("does not contain"),
    "starts_with": gettext_lazy("starts with"),
    "in": gettext_lazy("is one of"),
    "not_in": gettext_lazy("is none of"),
    "gt": gettext_lazy("greater than"),
    "gte": gettext_lazy("greater than or equal to"),
    "lt": gettext_lazy("less than"),
    "lte": gettext_lazy("less than or equal to"),
    "between": gettext_lazy("between"),
    "is_empty": gettext_lazy("is empty"),
    "is_not_empty": gettext_lazy("is not empty"),
    "within_last_days": gettext_lazy("within the last N days"),
    "within_next_days": gettext_lazy("within the next N days"),
    "more_than_days_ago": gettext_lazy("more than N days ago"),
    "less_than_days_ago": gettext_lazy("less than N days ago"),
    "anniversary_within_days": gettext_lazy("anniversary within N days"),
    "has_any": gettext_lazy("has any of"),
    "has_all": gettext_lazy("has all of"),
    "has_none": gettext_lazy("has none of"),
    "is_true": gettext_lazy("is yes"),
    "is_false": gettext_lazy("is no"),
    "in_list": gettext_lazy("is in list"),
    "not_in_list": gettext_lazy("is not in list"),
    "in_segment": gettext_lazy("is in segment"),
    "not_in_segment": gettext_lazy("is not in segment"),
}
_DAY_LABELS = {
    "gt": gettext_lazy("after"),
    "gte": gettext_lazy("on or after"),
    "lt": gettext_lazy("before"),
    "lte": gettext_lazy("on or before"),
}


def operator_label(kind: str, operator: str) -> str:
    if kind in ("date", "datetime", "created_at") and operator in _DAY_LABELS:
        return str(_DAY_LABELS[operator])
    return str(OPERATOR_LABELS.get(operator, operator))


# ---------------------------------------------------------------------------------------------
# Errors


@dataclass
class ConditionError:
    """One problem in a definition; ``path`` is the 1-based position of the condition or group."""

    path: tuple[int, ...]
    message: str

    @property
    def where(self) -> str:
        return ".".join(str(p) for p in self.path)

    def __str__(self) -> str:
        if not self.path:
            return self.message
        return _("Condition %(where)s: %(message)s") % {"where": self.where, "message": self.message}


class SegmentError(ValueError):
    """A definition that cannot be run, with every problem found."""

    def __init__(self, errors: list[ConditionError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


class _Bad(Exception):
    """Raised inside validation for one condition; collected into ConditionError."""


# ---------------------------------------------------------------------------------------------
# Fields


@dataclass(frozen=True)
class SegmentField:
    """Something a condition can test: a member column, an attribute, list or segment membership."""

    name: str
    label: str
    kind: str  # a key of OPERATORS
    pii: bool = False
    choices: tuple[str, ...] = ()

    @property
    def operators(self) -> tuple[str, ...]:
        return OPERATORS[self.kind]


def fields_of(workspace, attributes: list[Attribute] | None = None) -> dict[str, SegmentField]:
    """Every field a condition in this workspace may name, built-in columns first."""
    fields = {
        "email": SegmentField("email", _("Email"), "email", pii=True),
        "phone": SegmentField("phone", _("Phone"), "phone", pii=True),
        "status": SegmentField("status", _("Status"), "status",
                               choices=tuple(Member.Status.values)),
        "created_at": SegmentField("created_at", _("Joined"), "created_at"),
        "list": SegmentField("list", _("List"), "list"),
        "segment": SegmentField("segment", _("Segment"), "segment"),
    }
    if attributes is None:
        attributes = list(Attribute.objects.filter(workspace=workspace))
    for attribute in attributes:
        if attribute.key in fields:
            continue  # a built-in name wins; an attribute cannot shadow it
        fields[attribute.key] = SegmentField(attribute.key, attribute.label, attribute.type,
                                             pii=attribute.pii,
                                             choices=tuple(attribute.choices or ()))
    return fields


def field_catalog(workspace, *, allow_pii: bool, exclude_segment: int | None = None) -> dict:
    """What the condition builder offers: fields with their operators, lists and segments."""
    fields = []
    for field in fields_of(workspace).values():
        if field.pii and not allow_pii:
            continue
        fields.append({
            "name": field.name, "label": str(field.label), "kind": field.kind,
            "choices": list(field.choices),
            "choice_labels": ([str(label) for label in Member.Status.labels]
                              if field.kind == "status" else list(field.choices)),
            "operators": [{"code": op, "label": operator_label(field.kind, op),
                           "shape": SHAPES.get(op, "one")} for op in field.operators],
        })
    segments = Segment.objects.filter(workspace=workspace).exclude(pk=exclude_segment)
    return {
        "fields": fields,
        "lists": [{"id": pk, "name": name} for pk, name in
                  MemberList.objects.filter(workspace=workspace).values_list("pk", "name")],
        "segments": [{"id": pk, "name": name} for pk, name in segments.values_list("pk", "name")],
    }


# ---------------------------------------------------------------------------------------------
# Validation


def validate(workspace, definition, *, allow_pii: bool = True, segment: Segment | None = None,
             fields: dict[str, SegmentField] | None = None) -> dict:
    """Check a definition against the workspace and return it normalized.

    Raises SegmentError naming every bad condition: unknown field or operator, a value of the wrong
    type, a list or segment that is not this workspace's, a segment that would include itself, or
    (without ``allow_pii``) a condition on a field the viewer may not see. ``segment`` is the
    segment being saved, so that references back to it are refused.
    """
    checker = _Validator(workspace, allow_pii=allow_pii, segment=segment, fields=fields)
    normalized = checker.root(definition)
    if checker.errors:
        raise SegmentError(checker.errors)
    return normalized


class _Validator:
    def __init__(self, workspace, *, allow_pii, segment, fields):
        self.workspace = workspace
        self.allow_pii = allow_pii
        self.segment = segment
        self.fields = fields if fields is not None else fields_of(workspace)
        self.errors: list[ConditionError] = []
        self.count = 0
        self._lists: set[int] | None = None
        self._segments: dict[int, dict] | None = None

    def root(self, definition) -> dict:
        if definition in (None, "", {}):
            return {"op": "and", "conditions": []}
        if isinstance(definition, str):
            try:
                definition = json.loads(definition)
            except ValueError:
                self.errors.append(ConditionError((), _("The definition is not valid JSON.")))
                return {"op": "and", "conditions": []}
        if not isinstance(definition, dict) or "conditions" not in definition:
            self.errors.append(ConditionError(
                (), _("A definition must be a group with “op” and “conditions”.")))
            return {"op": "and", "conditions": []}
        return self.group(definition, (), allow_empty=True)

    def group(self, node: dict, path: tuple[int, ...], allow_empty=False) -> dict:
        op = node.get("op", "and")
        if op not in ("and", "or"):
            self.errors.append(ConditionError(path, _("A group joins its conditions with “and” or “or”, not “%(op)s”.") % {"op": op}))
            op = "and"
        conditions = node.get("conditions")
        if not isinstance(conditions, list):
            self.errors.append(ConditionError(path, _("“conditions” must be a list.")))
            return {"op": op, "conditions": []}
        if not conditions and not allow_empty:
            self.errors.append(ConditionError(path, _("This group has no conditions.")))
        if len(path) >= MAX_DEPTH:
            self.errors.append(ConditionError(path, _("Groups are nested too deeply (at most %(n)s levels).") % {"n": MAX_DEPTH}))
            return {"op": op, "conditions": []}
        out = []
        for index, child in enumerate(conditions, start=1):
            child_path = (*path, index)
            if isinstance(child, dict) and "conditions" in child:
                out.append(self.group(child, child_path))
            elif isinstance(child, dict):
                leaf = self.leaf(child, child_path)
                if leaf is not None:
                    out.append(leaf)
            else:
                self.errors.append(ConditionError(child_path, _("A condition must be an object.")))
        return {"op": op, "conditions": out}

    def leaf(self, node: dict, path: tuple[int, ...]) -> dict | None:
        self.count += 1
        if self.count == MAX_CONDITIONS + 1:
            self.errors.append(ConditionError(path, _("A segment may have at most %(n)s conditions.") % {"n": MAX_CONDITIONS}))
        name = node.get("field")
        field = self.fields.get(name) if isinstance(name, str) else None
        if field is None:
            self.errors.append(ConditionError(path, _("Unknown field “%(field)s”.") % {"field": name}))
            return None
        operator = node.get("operator")
        if operator not in field.operators:
            self.errors.append(ConditionError(path, _("“%(field)s” has no operator “%(op)s”.") % {"field": field.label, "op": operator}))
            return None
        if field.pii and not self.allow_pii:
            self.errors.append(ConditionError(path, _("Filtering by “%(field)s” needs permission to view personal information.") % {"field": field.label}))
            return None
        try:
            value = self.value(field, operator, node.get("value"))
        except _Bad as bad:
            self.errors.append(ConditionError(path, f"{field.label}: {bad}"))
            return None
        leaf = {"field": field.name, "operator": operator}
        if SHAPES.get(operator) != "none":
            leaf["value"] = value
        return leaf

    # -- values --------------------------------------------------------------------------------

    def value(self, field: SegmentField, operator: str, raw):
        shape = SHAPES.get(operator, "one")
        if shape == "none":
            return None
        if shape == "days":
            return _days(raw)
        if shape == "ref":
            return self.reference(field, raw)
        if shape == "pair":
            if not isinstance(raw, list | tuple) or len(raw) != 2:
                raise _Bad(_("“between” needs two values, a start and an end."))
            low, high = (self.scalar(field, operator, v) for v in raw)
            if _sort_key(field, low) > _sort_key(field, high):
                raise _Bad(_("The start of the range is after its end."))
            return [low, high]
        if shape == "many":
            if isinstance(raw, str):
                raw = [part for part in raw.splitlines() if part.strip()]
            if not isinstance(raw, list | tuple) or not raw:
                raise _Bad(_("Give at least one value."))
            if len(raw) > MAX_VALUES:
                raise _Bad(_("Give at most %(n)s values.") % {"n": MAX_VALUES})
            values = []
            for item in raw:
                value = self.scalar(field, operator, item)
                if value not in values:
                    values.append(value)
            return values
        return self.scalar(field, operator, raw)

    def scalar(self, field: SegmentField, operator: str, raw):
        kind = field.kind
        if isinstance(raw, list | dict):
            raise _Bad(_("Expected a single value, not a list."))
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise _Bad(_("A value is required."))
        if kind in ("text", "email", "phone"):
            if isinstance(raw, bool) or not isinstance(raw, str | int | float):
                raise _Bad(_("Expected text."))
            text = str(raw).strip()
            if len(text) > 2000:
                raise _Bad(_("Text is longer than 2000 characters."))
            if operator in ("equals", "not_equals", "in", "not_in") and kind != "text":
                try:
                    text = normalize_email(text) if kind == "email" else normalize_phone(text)
                except FieldError as exc:
                    raise _Bad(exc.message) from exc
            return text
        if kind in ("choice", "multi_choice", "status"):
            text = str(raw).strip()
            if text not in field.choices:
                raise _Bad(_("“%(value)s” is not one of the choices: %(choices)s")
                           % {"value": text, "choices": ", ".join(field.choices)})
            return text
        if kind == "number":
            try:
                return clean_value(Attribute(key=field.name, type=Attribute.Type.NUMBER), raw)
            except FieldError as exc:
                raise _Bad(exc.message) from exc
        if kind in ("date", "datetime", "created_at"):
            try:
                text = clean_value(Attribute(key=field.name, type=Attribute.Type.DATE), raw)
            except FieldError as exc:
                raise _Bad(exc.message) from exc
            if not 1000 <= int(text[:4]) <= 9998:
                raise _Bad(_("Give a date between the years 1000 and 9998."))
            return text
        raise _Bad(_("This field takes no value."))

    def reference(self, field: SegmentField, raw) -> int:
        if isinstance(raw, bool) or isinstance(raw, float) and not raw.is_integer():
            raise _Bad(_("Expected an id."))
        try:
            pk = int(raw)
        except (TypeError, ValueError):
            raise _Bad(_("Choose a list.") if field.kind == "list" else _("Choose a segment.")) from None
        if field.kind == "list":
            if self._lists is None:
                self._lists = set(MemberList.objects.filter(workspace=self.workspace)
                                  .values_list("pk", flat=True))
            if pk not in self._lists:
                raise _Bad(_("List #%(id)s does not exist in this workspace.") % {"id": pk})
            return pk
        if self._segments is None:
            self._segments = dict(Segment.objects.filter(workspace=self.workspace)
                                  .values_list("pk", "definition"))
        if pk not in self._segments:
            raise _Bad(_("Segment #%(id)s does not exist in this workspace.") % {"id": pk})
        if self.segment is not None and self.segment.pk is not None:
            if pk == self.segment.pk:
                raise _Bad(_("A segment cannot include or exclude itself."))
            if self.segment.pk in _referenced_segments(pk, self._segments):
                raise _Bad(_("Segment #%(id)s already refers to this segment; that would be a loop.") % {"id": pk})
        return pk


def _days(raw) -> int:
    if isinstance(raw, bool):
        raise _Bad(_("Expected a number of days."))
    try:
        days = int(str(raw).strip()) if isinstance(raw, str) else raw
    except ValueError:
        days = None
    if not isinstance(days, int) and not (isinstance(days, float) and days.is_integer()):
        raise _Bad(_("Expected a number of days."))
    days = int(days)
    if not 0 <= days <= MAX_DAYS:
        raise _Bad(_("The number of days must be between 0 and %(n)s.") % {"n": MAX_DAYS})
    return days


def _sort_key(field: SegmentField, value):
    return float(value) if field.kind == "number" else value


def _segment_references(definition) -> set[int]:
    """Ids of the segments a definition includes or excludes directly."""
    found: set[int] = set()
    stack = [definition]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("conditions"), list):
            stack.extend(node["conditions"])
        elif node.get("field") == "segment":
            try:
                found.add(int(node.get("value")))
            except (TypeError, ValueError):
                pass
    return found


def _referenced_segments(start: int, definitions: dict[int, dict]) -> set[int]:
    """Every segment reachable from ``start`` through in_segment / not_in_segment."""
    seen: set[int] = set()
    stack = [start]
    while stack:
        pk = stack.pop()
        for ref in _segment_references(definitions.get(pk)):
            if ref not in seen:
                seen.add(ref)
                stack.append(ref)
    return seen


def referring_segments(segment: Segment) -> list[Segment]:
    """Segments of the same workspace that include or exclude ``segment`` directly."""
    return [other for other in Segment.objects.filter(workspace=segment.workspace)
            .exclude(pk=segment.pk) if segment.pk in _segment_references(other.definition)]


# ---------------------------------------------------------------------------------------------
# Shared arithmetic of days (the SQL and the Python evaluator use the same bounds)


def _today(workspace, now: dt.datetime) -> dt.date:
    return now.astimezone(ZoneInfo(workspace.time_zone)).date()


def _day_range(operator: str, value, today: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """The inclusive range of days a day operator selects (None: unbounded)."""
    day = dt.timedelta(days=1)
    if operator in ("within_last_days", "within_next_days", "more_than_days_ago",
                    "less_than_days_ago"):
        n = dt.timedelta(days=value)
        return {
            "within_last_days": (today - n, today),
            "within_next_days": (today, today + n),
            "more_than_days_ago": (None, today - n - day),
            "less_than_days_ago": (today - n + day, today),
        }[operator]
    if operator == "between":
        return dt.date.fromisoformat(value[0]), dt.date.fromisoformat(value[1])
    d = dt.date.fromisoformat(value)
    return {
        "equals": (d, d), "gt": (d + day, None), "gte": (d, None),
        "lt": (None, d - day), "lte": (None, d),
    }[operator]


def _day_start(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant at which ``day`` begins in the workspace time zone."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz).astimezone(dt.UTC)


def _instant_text(instant: dt.datetime) -> str:
    # Stored datetimes are "YYYY-MM-DDTHH:MM:SS[.ffffff]Z"; a bound without the "Z" compares
    # bytewise exactly like the instant it names, whatever fraction of a second follows.
    return instant.replace(tzinfo=None).isoformat(timespec="seconds")


def _month_day_window(days: int, today: dt.date) -> tuple[str, str, bool] | None:
    """(first MM-DD, last MM-DD, wraps past 31 Dec), or None when the window covers a year."""
    if days >= 365:
        return None
    end = today + dt.timedelta(days=days)
    return today.strftime("%m-%d"), end.strftime("%m-%d"), end.year != today.year


# ---------------------------------------------------------------------------------------------
# SQL expressions. Each renders for PostgreSQL and SQLite; keys and values are always parameters.


def _json_path(key: str) -> str:
    # Always a quoted member name: an attribute key such as "2024" is not an array index.
    return "$." + json.dumps(key)


class _Unsupported:
    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError("Segments run on PostgreSQL and SQLite.")


class _JSONValue(_Unsupported, Func):
    """One attribute's value when its JSON type is ``kind``, else NULL.

    string → the text; number → a double; boolean → 'true' / 'false'; array → its length.
    """

    _PG_TYPE = {"string": "string", "number": "number", "boolean": "boolean", "array": "array"}

    def __init__(self, key: str, kind: str):
        output = {"number": FloatField(), "array": IntegerField()}.get(kind, TextField())
        super().__init__(F("attributes"), output_field=output)
        self.key, self.kind = key, kind

    def as_postgresql(self, compiler, connection, **extra):
        col, params = compiler.compile(self.source_expressions[0])
        test = f"jsonb_typeof({col} -> %s::text) = '{self._PG_TYPE[self.kind]}'"
        value = {
            "string": f"{col} ->> %s::text",
            "number": f"({col} ->> %s::text)::double precision",
            "boolean": f"{col} ->> %s::text",
            "array": f"jsonb_array_length({col} -> %s::text)",
        }[self.kind]
        return f"(CASE WHEN {test} THEN {value} END)", (*params, self.key, *params, self.key)

    def as_sqlite(self, compiler, connection, **extra):
        col, params = compiler.compile(self.source_expressions[0])
        path = _json_path(self.key)
        if self.kind == "boolean":
            sql = (f"(CASE json_type({col}, %s) WHEN 'true' THEN 'true' "
                   f"WHEN 'false' THEN 'false' END)")
            return sql, (*params, path)
        test = {
            "string": "= 'text'", "number": "IN ('integer', 'real')", "array": "= 'array'",
        }[self.kind]
        value = {
            "string": f"json_extract({col}, %s)",
            "number": f"CAST(json_extract({col}, %s) AS REAL)",
            "array": f"json_array_length({col}, %s)",
        }[self.kind]
        return (f"(CASE WHEN json_type({col}, %s) {test} THEN {value} END)",
                (*params, path, *params, path))


class _JSONHas(_Unsupported, Func):
    """Attribute ``key`` equals one of ``values`` (strings or booleans) with the same JSON type;
    with ``element=True``, the attribute is an array holding any (or, with ``every``, all) of
    the strings. Written as jsonb containment on PostgreSQL so that a GIN index can answer it."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, key: str, values: list, *, element: bool = False, every: bool = False):
        super().__init__(F("attributes"))
        self.key, self.values, self.element, self.every = key, list(values), element, every

    def as_postgresql(self, compiler, connection, **extra):
        col, params = compiler.compile(self.source_expressions[0])
        if self.element and self.every:
            probes = [{self.key: self.values}]
        elif self.element:
            probes = [{self.key: [v]} for v in self.values]
        else:
            probes = [{self.key: v} for v in self.values]
        sql = " OR ".join(f"{col} @> %s::jsonb" for _ in probes)
        args = []
        for probe in probes:
            args += [*params, json.dumps(probe, ensure_ascii=False)]
        return f"({sql})", tuple(args)

    def as_sqlite(self, compiler, connection, **extra):
        col, params = compiler.compile(self.source_expressions[0])
        path = _json_path(self.key)
        marks = ", ".join("%s" for _ in self.values)
        if not self.element:
            if all(isinstance(v, bool) for v in self.values):
                words = ["true" if v else "false" for v in self.values]
                return f"(IFNULL(json_type({col}, %s), '') IN ({marks}))", (*params, path, *words)
            return (f"(json_type({col}, %s) IS 'text' AND json_extract({col}, %s) IN ({marks}))",
                    (*params, path, *params, path, *self.values))
        elements = (f"FROM json_each({col}, %s) AS element "
                    f"WHERE element.type = 'text' AND element.value IN ({marks})")
        if self.every:
            test = f"(SELECT COUNT(DISTINCT element.value) {elements}) = %s"
            extra_params = (len(set(self.values)),)
        else:
            test = f"EXISTS (SELECT 1 {elements})"
            extra_params = ()
        return (f"(json_type({col}, %s) IS 'array' AND {test})",
                (*params, path, *params, path, *self.values, *extra_params))


class _Bytewise(_Unsupported, Func):
    """Compare text by its bytes (code points), whatever the database's default collation."""

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f'({sql}) COLLATE "C"', params

    def as_sqlite(self, compiler, connection, **extra):
        return compiler.compile(self.source_expressions[0])  # SQLite's default is BINARY


# ---------------------------------------------------------------------------------------------
# Compiling to the ORM


def segment_queryset(workspace, definition, *, allow_pii: bool = True,
                     now: dt.datetime | None = None) -> QuerySet[Member]:
    """The members of ``workspace`` that ``definition`` selects (validated first)."""
    compiler = _Compiler(workspace, now=now)
    normalized = validate(workspace, definition, allow_pii=allow_pii, fields=compiler.fields)
    return Member.objects.filter(workspace=workspace).filter(compiler.compile(normalized))


def count(workspace, definition, *, allow_pii: bool = True, now: dt.datetime | None = None) -> int:
    return segment_queryset(workspace, definition, allow_pii=allow_pii, now=now).count()


def segment_members(segment: Segment, *, now: dt.datetime | None = None) -> QuerySet[Member]:
    """The members a saved segment selects now."""
    return segment_queryset(segment.workspace, segment.definition, now=now)


class _SavedSegments:
    """Loads referenced segments once and refuses loops and over-deep nesting."""

    def __init__(self, workspace, fields):
        self.workspace, self.fields = workspace, fields
        self._saved: dict[int, tuple[str, dict]] | None = None
        self.stack: list[int] = []

    def definition(self, pk: int) -> dict:
        if self._saved is None:
            self._saved = {seg_pk: (name, definition) for seg_pk, name, definition in
                           Segment.objects.filter(workspace=self.workspace)
                           .values_list("pk", "name", "definition")}
        if pk not in self._saved:
            raise SegmentError([ConditionError((), _("Segment #%(id)s no longer exists.") % {"id": pk})])
        if pk in self.stack:
            raise SegmentError([ConditionError((), _("Segments refer to each other in a loop."))])
        if len(self.stack) >= MAX_SEGMENT_NESTING:
            raise SegmentError([ConditionError((), _("Segments are nested too deeply."))])
        name, definition = self._saved[pk]
        try:
            return validate(self.workspace, definition, fields=self.fields)
        except SegmentError as error:
            raise SegmentError([ConditionError((), _("Segment “%(name)s” cannot be used: %(reason)s") % {"name": name, "reason": error})]) from error


class _Compiler:
    def __init__(self, workspace, *, now=None):
        self.workspace = workspace
        self.tz = ZoneInfo(workspace.time_zone)
        self.now = now or timezone.now()
        self.today = _today(workspace, self.now)
        self.fields = fields_of(workspace)
        self.saved = _SavedSegments(workspace, self.fields)

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
        if kind == "segment":
            definition = self.saved.definition(value)
            self.saved.stack.append(value)
            try:
                return self.compile(definition)
            finally:
                self.saved.stack.pop()
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
            low, high = _day_range(operator, value, self.today)
            parts = []
            if low is not None:
                parts.append(Q(created_at__gte=_day_start(low, self.tz)))
            if high is not None:
                parts.append(Q(created_at__lt=_day_start(high + dt.timedelta(days=1), self.tz)))
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
                return Q(IsNull(_JSONValue(key, "boolean"), False))
            return Q(_JSONHas(key, [operator == "is_true"]))
        if kind == "multi_choice":
            if operator == "is_not_empty":
                return Q(GreaterThan(_JSONValue(key, "array"), 0))
            return Q(_JSONHas(key, value, element=True, every=operator == "has_all"))
        if kind == "number":
            number = _JSONValue(key, "number")
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
        text = _JSONValue(key, "string")
        if operator == "is_not_empty":
            return Q(IsNull(text, False))
        if kind in ("date", "datetime"):
            return self.days(text, kind, operator, value)
        if operator in ("equals", "in"):
            values = [value] if operator == "equals" else value
            if len(values) <= CONTAINMENT_MAX_VALUES:
                return Q(_JSONHas(key, values))
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
            if _month_day_window(value, self.today) is None:
                return Q(IsNull(text, False))
            return _month_day_q(_Bytewise(Substr(text, 6, 5)), value, self.today)
        low, high = _day_range(operator, value, self.today)
        ordered = _Bytewise(text)
        parts = []
        if kind == "date":
            if low is not None:
                parts.append(Q(GreaterThanOrEqual(ordered, low.isoformat())))
            if high is not None:
                parts.append(Q(LessThanOrEqual(ordered, high.isoformat())))
        else:
            if low is not None:
                start = _instant_text(_day_start(low, self.tz))
                parts.append(Q(GreaterThanOrEqual(ordered, start)))
            if high is not None:
                end = _instant_text(_day_start(high + dt.timedelta(days=1), self.tz))
                parts.append(Q(LessThan(ordered, end)))
        return _combine(parts, "and")


def _month_day_q(month_day, days: int, today: dt.date, *, as_number: bool = False) -> Q:
    """Month and day (``MM-DD`` text, or the number MMDD) within the next ``days`` days."""
    window = _month_day_window(days, today)
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


# ---------------------------------------------------------------------------------------------
# The plain-Python evaluator


class Evaluator:
    """Decides in Python whether members match a definition, by the same rules as the SQL.

    It is the reference the property test holds the SQL to, and a cheap check for one member that
    is already loaded. List memberships are read once per member.
    """

    def __init__(self, workspace, *, now: dt.datetime | None = None, allow_pii: bool = True):
        self.workspace = workspace
        self.allow_pii = allow_pii
        self.tz = ZoneInfo(workspace.time_zone)
        self.now = now or timezone.now()
        self.today = _today(workspace, self.now)
        self.fields = fields_of(workspace)
        self.saved = _SavedSegments(workspace, self.fields)
        self._lists: dict[int, set[int]] = {}

    def select(self, members, definition) -> list[Member]:
        normalized = validate(self.workspace, definition, allow_pii=self.allow_pii,
                              fields=self.fields)
        return [m for m in members if self._node(normalized, m)]

    def matches(self, member: Member, definition) -> bool:
        return bool(self.select([member], definition))

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
        if kind == "segment":
            definition = self.saved.definition(value)
            self.saved.stack.append(value)
            try:
                return self._node(definition, member)
            finally:
                self.saved.stack.pop()
        if kind == "list":
            return value in self._lists_of(member)
        if kind == "status":
            return member.status in value if operator == "in" else member.status == value
        if kind == "created_at":
            if operator == "anniversary_within_days":
                local = member.created_at.astimezone(self.tz)
                return _month_day_matches(f"{local.month:02d}-{local.day:02d}", value, self.today)
            low, high = _day_range(operator, value, self.today)
            at = member.created_at
            return ((low is None or at >= _day_start(low, self.tz))
                    and (high is None or at < _day_start(high + dt.timedelta(days=1), self.tz)))
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
        low, high = _day_range(operator, value, self.today)
        if kind == "date":
            return ((low is None or text >= low.isoformat())
                    and (high is None or text <= high.isoformat()))
        return ((low is None or text >= _instant_text(_day_start(low, self.tz)))
                and (high is None or text < _instant_text(
                    _day_start(high + dt.timedelta(days=1), self.tz))))


def _month_day_matches(month_day: str, days: int, today: dt.date) -> bool:
    window = _month_day_window(days, today)
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


# ---------------------------------------------------------------------------------------------
# Describing a definition to people


def describe(workspace, definition, *, allow_pii: bool) -> dict:
    """The definition as a tree of readable rows for a page; values of PII fields are masked
    for viewers without ``members.view_pii``. Unknown fields are shown as they are stored."""
    fields = fields_of(workspace)
    lists = dict(MemberList.objects.filter(workspace=workspace).values_list("pk", "name"))
    segments = dict(Segment.objects.filter(workspace=workspace).values_list("pk", "name"))
    status_labels = dict(Member.Status.choices)

    def show(field: SegmentField | None, value) -> str:
        if value is None:
            return ""
        if field is not None and field.pii and not allow_pii:
            return "***"
        if isinstance(value, list):
            return ", ".join(show(field, v) for v in value)
        if field is not None and field.kind == "list":
            return lists.get(value, f"#{value}")
        if field is not None and field.kind == "segment":
            return segments.get(value, f"#{value}")
        if field is not None and field.kind == "status":
            return str(status_labels.get(value, value))
        return str(value)

    def walk(node, path):
        if isinstance(node, dict) and isinstance(node.get("conditions"), list):
            return {"group": True, "op": node.get("op", "and"), "path": ".".join(map(str, path)),
                    "items": [walk(c, (*path, i)) for i, c in enumerate(node["conditions"], 1)]}
        node = node if isinstance(node, dict) else {}
        field = fields.get(node.get("field"))
        operator = node.get("operator", "")
        value = node.get("value")
        if SHAPES.get(operator) == "pair" and isinstance(value, list):
            shown = _(" and ").join(show(field, v) for v in value)
        elif SHAPES.get(operator) == "days":
            shown = _("%(n)s days") % {"n": value}
        else:
            shown = show(field, value)
        return {"group": False, "path": ".".join(map(str, path)),
                "field": field.label if field else node.get("field", "?"),
                "operator": operator_label(field.kind if field else "", operator),
                "value": shown}

    return walk(definition or {"op": "and", "conditions": []}, ())
