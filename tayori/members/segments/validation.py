"""Validation: a definition checked against one workspace and returned normalized, with every
problem named by the position of its condition."""

from __future__ import annotations

import json

from django.utils.translation import gettext as _

from tayori.members.models import Attribute, MemberList, Segment
from tayori.members.segments.fields import SegmentField, fields_of
from tayori.members.segments.kinds import KINDS
from tayori.members.segments.language import (
    MAX_CONDITIONS,
    MAX_DAYS,
    MAX_DEPTH,
    MAX_VALUES,
    SHAPES,
    ConditionError,
    SegmentError,
    ValueRefused,
)
from tayori.members.segments.references import referenced_segments
from tayori.members.values import FieldError, clean_value, normalize_email, normalize_phone


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
        self._kind_cache: dict = {}  # what registered kinds read once per validation

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
        except ValueRefused as bad:
            self.errors.append(ConditionError(path, f"{field.label}: {bad}"))
            return None
        leaf = {"field": field.name, "operator": operator}
        if SHAPES.get(operator) != "none":
            leaf["value"] = value
        return leaf

    # -- values --------------------------------------------------------------------------------

    def value(self, field: SegmentField, operator: str, raw):
        if field.kind in KINDS:
            return KINDS[field.kind].clean(self.workspace, operator, raw, self._kind_cache)
        shape = SHAPES.get(operator, "one")
        if shape == "none":
            return None
        if shape == "days":
            return day_count(raw)
        if shape == "ref":
            return self.reference(field, raw)
        if shape == "pair":
            if not isinstance(raw, list | tuple) or len(raw) != 2:
                raise ValueRefused(_("“between” needs two values, a start and an end."))
            low, high = (self.scalar(field, operator, v) for v in raw)
            if _sort_key(field, low) > _sort_key(field, high):
                raise ValueRefused(_("The start of the range is after its end."))
            return [low, high]
        if shape == "many":
            if isinstance(raw, str):
                raw = [part for part in raw.splitlines() if part.strip()]
            if not isinstance(raw, list | tuple) or not raw:
                raise ValueRefused(_("Give at least one value."))
            if len(raw) > MAX_VALUES:
                raise ValueRefused(_("Give at most %(n)s values.") % {"n": MAX_VALUES})
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
            raise ValueRefused(_("Expected a single value, not a list."))
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise ValueRefused(_("A value is required."))
        if kind in ("text", "email", "phone"):
            if isinstance(raw, bool) or not isinstance(raw, str | int | float):
                raise ValueRefused(_("Expected text."))
            text = str(raw).strip()
            if len(text) > 2000:
                raise ValueRefused(_("Text is longer than 2000 characters."))
            if operator in ("equals", "not_equals", "in", "not_in") and kind != "text":
                try:
                    text = normalize_email(text) if kind == "email" else normalize_phone(text)
                except FieldError as exc:
                    raise ValueRefused(exc.message) from exc
            return text
        if kind in ("choice", "multi_choice", "status"):
            text = str(raw).strip()
            if text not in field.choices:
                raise ValueRefused(_("“%(value)s” is not one of the choices: %(choices)s")
                           % {"value": text, "choices": ", ".join(field.choices)})
            return text
        if kind == "number":
            try:
                return clean_value(Attribute(key=field.name, type=Attribute.Type.NUMBER), raw)
            except FieldError as exc:
                raise ValueRefused(exc.message) from exc
        if kind in ("date", "datetime", "created_at"):
            try:
                text = clean_value(Attribute(key=field.name, type=Attribute.Type.DATE), raw)
            except FieldError as exc:
                raise ValueRefused(exc.message) from exc
            if not 1000 <= int(text[:4]) <= 9998:
                raise ValueRefused(_("Give a date between the years 1000 and 9998."))
            return text
        raise ValueRefused(_("This field takes no value."))

    def reference(self, field: SegmentField, raw) -> int:
        if isinstance(raw, bool) or isinstance(raw, float) and not raw.is_integer():
            raise ValueRefused(_("Expected an id."))
        try:
            pk = int(raw)
        except (TypeError, ValueError):
            raise ValueRefused(_("Choose a list.") if field.kind == "list" else _("Choose a segment.")) from None
        if field.kind == "list":
            if self._lists is None:
                self._lists = set(MemberList.objects.filter(workspace=self.workspace)
                                  .values_list("pk", flat=True))
            if pk not in self._lists:
                raise ValueRefused(_("List #%(id)s does not exist in this workspace.") % {"id": pk})
            return pk
        if self._segments is None:
            self._segments = dict(Segment.objects.filter(workspace=self.workspace)
                                  .values_list("pk", "definition"))
        if pk not in self._segments:
            raise ValueRefused(_("Segment #%(id)s does not exist in this workspace.") % {"id": pk})
        if self.segment is not None and self.segment.pk is not None:
            if pk == self.segment.pk:
                raise ValueRefused(_("A segment cannot include or exclude itself."))
            if self.segment.pk in referenced_segments(pk, self._segments):
                raise ValueRefused(_("Segment #%(id)s already refers to this segment; that would be a loop.") % {"id": pk})
        return pk


def day_count(raw) -> int:
    if isinstance(raw, bool):
        raise ValueRefused(_("Expected a number of days."))
    try:
        days = int(str(raw).strip()) if isinstance(raw, str) else raw
    except ValueError:
        days = None
    if not isinstance(days, int) and not (isinstance(days, float) and days.is_integer()):
        raise ValueRefused(_("Expected a number of days."))
    days = int(days)
    if not 0 <= days <= MAX_DAYS:
        raise ValueRefused(_("The number of days must be between 0 and %(n)s.") % {"n": MAX_DAYS})
    return days


def _sort_key(field: SegmentField, value):
    return float(value) if field.kind == "number" else value
