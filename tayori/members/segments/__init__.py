"""Segments: the condition language operators use to pick members, and the two ways to run it.

A definition is a tree of groups ``{"op": "and" | "or", "conditions": [...]}`` whose leaves are
``{"field": ..., "operator": ..., "value": ...}``. ``field`` is ``email``, ``phone``, ``status``,
``created_at``, ``list``, ``segment``, a field of a kind another app registered (``kinds``:
tracking adds ``mail.response``) or an attribute key. An empty definition selects everyone.

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

Where each part lives:

* ``language``: operators per kind of field, value shapes, labels, limits, ``SegmentError``.
* ``kinds``: the extension point through which other apps add kinds of field (``FieldKind``,
  ``register``) without members importing them.
* ``fields``: what a condition may test in a workspace, and the builder's catalog of it.
* ``validation``: ``validate``; ``references``: segments that refer to other segments;
  ``saved``: referenced segments as one run meets them (loops and nesting refused).
* ``days``: day and anniversary arithmetic shared by the compiler and the evaluator.
* ``expressions`` and ``sql``: the ORM compiler and ``segment_queryset`` / ``count`` /
  ``segment_members``; ``evaluator``: the Python ``Evaluator``; ``describe``: rows for people.
"""

# ``_today`` stays importable from here: the property test works out "today" with it.
from tayori.members.segments.days import workspace_today as _today
from tayori.members.segments.describe import describe
from tayori.members.segments.evaluator import Evaluator
from tayori.members.segments.fields import SegmentField, field_catalog, fields_of
from tayori.members.segments.kinds import KINDS, FieldKind, Scope, register
from tayori.members.segments.language import (
    MAX_CONDITIONS,
    MAX_DAYS,
    MAX_DEPTH,
    MAX_SEGMENT_NESTING,
    MAX_VALUES,
    NEGATIONS,
    OPERATOR_LABELS,
    OPERATORS,
    SHAPES,
    ConditionError,
    SegmentError,
    ValueRefused,
    operator_label,
)
from tayori.members.segments.references import referring_segments
from tayori.members.segments.sql import (
    CONTAINMENT_MAX_VALUES,
    count,
    segment_members,
    segment_queryset,
)
from tayori.members.segments.validation import day_count, validate

__all__ = [
    "CONTAINMENT_MAX_VALUES", "KINDS", "MAX_CONDITIONS", "MAX_DAYS", "MAX_DEPTH",
    "MAX_SEGMENT_NESTING", "MAX_VALUES", "NEGATIONS", "OPERATOR_LABELS", "OPERATORS", "SHAPES",
    "ConditionError", "Evaluator", "FieldKind", "Scope", "SegmentError", "SegmentField",
    "ValueRefused", "_today", "count", "day_count", "describe", "field_catalog", "fields_of",
    "operator_label", "referring_segments", "register", "segment_members", "segment_queryset",
    "validate",
]
