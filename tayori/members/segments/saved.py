"""Saved segments that a definition includes or excludes, as one run of it meets them: loaded
once, validated again (they may have gone stale), and refused when they loop or nest too deeply."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.utils.translation import gettext as _

from tayori.members.models import Segment
from tayori.members.segments.language import MAX_SEGMENT_NESTING, ConditionError, SegmentError
from tayori.members.segments.validation import validate


class SavedSegments:
    """Loads referenced segments once and refuses loops and over-deep nesting."""

    def __init__(self, workspace, fields):
        self.workspace, self.fields = workspace, fields
        self._saved: dict[int, tuple[str, dict]] | None = None
        self._valid: dict[int, dict] = {}  # validated once: an evaluator may test many members
        self.stack: list[int] = []

    @contextmanager
    def entered(self, pk: int) -> Iterator[dict]:
        """The validated definition of segment ``pk``, counted as nested while it is in use."""
        definition = self.definition(pk)
        self.stack.append(pk)
        try:
            yield definition
        finally:
            self.stack.pop()

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
        if pk in self._valid:
            return self._valid[pk]
        name, definition = self._saved[pk]
        try:
            self._valid[pk] = validate(self.workspace, definition, fields=self.fields)
            return self._valid[pk]
        except SegmentError as error:
            raise SegmentError([ConditionError((), _("Segment “%(name)s” cannot be used: %(reason)s") % {"name": name, "reason": error})]) from error
