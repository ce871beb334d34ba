"""Describing a definition to people: the tree of readable rows a segment page shows, with the
values of PII fields masked for viewers who may not see them."""

from __future__ import annotations

from django.utils.translation import gettext as _

from tayori.members.models import Member, MemberList, Segment
from tayori.members.segments.fields import SegmentField, fields_of
from tayori.members.segments.kinds import KINDS
from tayori.members.segments.language import SHAPES, operator_label


def describe(workspace, definition, *, allow_pii: bool) -> dict:
    """The definition as a tree of readable rows for a page; values of PII fields are masked
    for viewers without ``members.view_pii``. Unknown fields are shown as they are stored."""
    fields = fields_of(workspace)
    lists = dict(MemberList.objects.filter(workspace=workspace).values_list("pk", "name"))
    segments = dict(Segment.objects.filter(workspace=workspace).values_list("pk", "name"))
    status_labels = dict(Member.Status.choices)
    cache: dict = {}  # what registered kinds look up once per description

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
        if field is not None and field.kind in KINDS:
            shown = KINDS[field.kind].words(workspace, operator, value, cache)
        elif SHAPES.get(operator) == "pair" and isinstance(value, list):
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
