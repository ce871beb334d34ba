"""Field kinds other apps add to the condition language, so that segments can test data those
apps own (tracking: who received, opened, clicked or converted on a mail) while members imports
none of them: the arrow points from the app to here.

An app subclasses ``FieldKind`` and calls ``register`` from its ``AppConfig.ready``. A kind
brings, in one place, everything the built-in kinds spread over this package:

* ``fields``: the fields it adds, and ``operators`` (positive and negative), ``negations``
  (negative → positive twin), ``shapes`` (a shape name the builder knows how to edit) and
  ``labels`` — ``register`` adds these to the language tables;
* ``clean``: a value checked and normalized (raise ``ValueRefused`` with a message to read);
* ``q``: a positive condition as a ``Q`` over Member (an ``Exists`` on ``OuterRef("pk")``);
* ``load`` and ``test``: the same rule in Python for the evaluator — ``load`` reads what a
  batch of members needs in a few queries (as ``Evaluator.load_lists`` does for lists), ``test``
  decides one member from it without touching the database;
* ``words``: a value as people read it on segment pages;
* ``catalog`` and ``options``: what the builder offers (the page's data, and lookups it makes
  while editing, such as the links of a chosen mail).

Both ``q`` and ``test`` receive the same ``Scope`` (workspace, now, today, time zone), so a
condition with days means the same instants in SQL and in Python; the property test holds them
to each other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.db.models import Q

from tayori.members.segments.language import (
    NEGATIONS,
    OPERATOR_LABELS,
    OPERATORS,
    SHAPES,
)


@dataclass(frozen=True)
class Scope:
    """When and where a definition runs."""

    workspace: object
    now: dt.datetime
    today: dt.date
    tz: ZoneInfo


class FieldKind:
    """A kind of field added by another app. Override every method; see the module docstring."""

    name: str = ""
    operators: tuple[str, ...] = ()
    negations: dict[str, str] = {}
    shapes: dict[str, str] = {}
    labels: dict[str, str] = {}

    def fields(self, workspace) -> list[tuple[str, str]]:
        """(field name, label) of each field of this kind. Use a name no attribute key can
        take (attribute keys are ``[a-z][a-z0-9_]*``), so a field never hides an attribute."""
        raise NotImplementedError

    def clean(self, workspace, operator: str, raw, cache: dict):
        """The value normalized, or ``ValueRefused``. ``cache`` lives for one validation."""
        raise NotImplementedError

    def q(self, scope: Scope, operator: str, value) -> Q:
        """A positive operator's condition on Member."""
        raise NotImplementedError

    def load(self, scope: Scope, member_ids: list[int], leaves: list[tuple[str, object]]) -> dict:
        """What ``test`` needs for each of ``member_ids`` (a member without data may be left
        out), for the positive ``(operator, value)`` pairs in use."""
        raise NotImplementedError

    def test(self, scope: Scope, facts, operator: str, value) -> bool:
        """A positive operator decided from ``load``'s facts for one member (None: none)."""
        raise NotImplementedError

    def words(self, workspace, operator: str, value, cache: dict) -> str:
        raise NotImplementedError

    def catalog(self, workspace) -> dict:
        return {}

    def options(self, workspace, params) -> dict:
        return {}


KINDS: dict[str, FieldKind] = {}


def register(kind: FieldKind) -> None:
    """Make ``kind`` part of the language (again, harmlessly, if it already is)."""
    KINDS[kind.name] = kind
    OPERATORS[kind.name] = tuple(kind.operators)
    SHAPES.update(kind.shapes)
    NEGATIONS.update(kind.negations)
    OPERATOR_LABELS.update(kind.labels)


def positive_leaves(definition, kind: str, fields: dict, saved=None) -> list[tuple[str, object]]:
    """Every (positive operator, value) of fields of ``kind`` in a validated definition,
    following included segments through ``saved`` (a SavedSegments) when given."""
    found: list[tuple[str, object]] = []
    seen: set[int] = set()
    stack = [definition]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if "conditions" in node:
            stack.extend(node["conditions"])
            continue
        field = fields.get(node.get("field"))
        if field is None:
            continue
        if field.kind == kind:
            operator = NEGATIONS.get(node["operator"], node["operator"])
            if (operator, node.get("value")) not in found:
                found.append((operator, node.get("value")))
        elif field.kind == "segment" and saved is not None and node.get("value") not in seen:
            seen.add(node.get("value"))
            try:
                stack.append(saved.definition(node.get("value")))
            except ValueError:  # a SegmentError: running the definition reports it
                pass
    return found
