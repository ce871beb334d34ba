"""The segment condition language: which operators each kind of field takes, the shape of each
operator's value, the labels people read, the limits a definition stays within, and its errors."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

# Limits that keep one definition from turning into a query the database cannot plan quickly.
MAX_CONDITIONS = 100
MAX_DEPTH = 5
MAX_VALUES = 1000
MAX_DAYS = 36500
MAX_SEGMENT_NESTING = 5

NEGATIONS = {
    "not_equals": "equals",
    "not_contains": "contains",
    "not_in": "in",
    "has_none": "has_any",
    "is_empty": "is_not_empty",
    "not_in_list": "in_list",
    "not_in_segment": "in_segment",
}

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
    """How an operator reads for a field of ``kind`` (“after” rather than “greater than” for days)."""
    if kind in ("date", "datetime", "created_at") and operator in _DAY_LABELS:
        return str(_DAY_LABELS[operator])
    return str(OPERATOR_LABELS.get(operator, operator))


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


class ValueRefused(ValueError):
    """A condition's value that cannot be used; the message says why, for people to read."""


class SegmentError(ValueError):
    """A definition that cannot be run, with every problem found."""

    def __init__(self, errors: list[ConditionError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))
