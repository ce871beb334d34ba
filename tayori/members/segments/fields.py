"""What a segment condition can test in one workspace: the member columns, its attributes, list
and segment membership, fields of kinds other apps registered (``kinds``), and the catalog of
them the condition builder offers."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _

from tayori.members.models import Attribute, Member, MemberList, Segment
from tayori.members.segments.kinds import KINDS
from tayori.members.segments.language import OPERATORS, SHAPES, operator_label


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
    for kind in KINDS.values():
        for name, label in kind.fields(workspace):
            fields[name] = SegmentField(name, label, kind.name)
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
    """What the condition builder offers: fields with their operators, lists, segments, and
    what each registered kind's pickers need (``kinds``)."""
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
        "kinds": {name: kind.catalog(workspace) for name, kind in KINDS.items()},
    }
