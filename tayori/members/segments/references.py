"""Segments that include or exclude other segments: who refers to whom, directly and through
any chain, so that loops are refused on save and a referred-to segment is not deleted."""

from __future__ import annotations

from tayori.members.models import Segment


def segment_references(definition) -> set[int]:
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


def referenced_segments(start: int, definitions: dict[int, dict]) -> set[int]:
    """Every segment reachable from ``start`` through in_segment / not_in_segment."""
    seen: set[int] = set()
    stack = [start]
    while stack:
        pk = stack.pop()
        for ref in segment_references(definitions.get(pk)):
            if ref not in seen:
                seen.add(ref)
                stack.append(ref)
    return seen


def referring_segments(segment: Segment) -> list[Segment]:
    """Segments of the same workspace that include or exclude ``segment`` directly."""
    return [other for other in Segment.objects.filter(workspace=segment.workspace)
            .exclude(pk=segment.pk) if segment.pk in segment_references(other.definition)]
