"""Segments: the condition language operators use to pick members (see ``sql``)."""

from tayori.members.segments.sql import (
    CONTAINMENT_MAX_VALUES,
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
    Evaluator,
    SegmentError,
    SegmentField,
    _today,
    count,
    describe,
    field_catalog,
    fields_of,
    operator_label,
    referring_segments,
    segment_members,
    segment_queryset,
    validate,
)

__all__ = [
    "CONTAINMENT_MAX_VALUES", "MAX_CONDITIONS", "MAX_DAYS", "MAX_DEPTH", "MAX_SEGMENT_NESTING",
    "MAX_VALUES", "NEGATIONS", "OPERATOR_LABELS", "OPERATORS", "SHAPES", "ConditionError",
    "Evaluator", "SegmentError", "SegmentField", "_today", "count", "describe", "field_catalog",
    "fields_of", "operator_label", "referring_segments", "segment_members", "segment_queryset",
    "validate",
]
