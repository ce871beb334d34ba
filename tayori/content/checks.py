"""Checks a template passes when it is saved, so mistakes surface with their place and line
instead of at sending time: template syntax, unknown filters, unknown merge fields and block
conditions that do not fit the workspace's attributes."""

from __future__ import annotations

from django.utils.translation import gettext as _
from jinja2 import nodes

from tayori.delivery.rendering import RenderError, parse
from tayori.members.models import Attribute
from tayori.members.segments import SegmentError, validate
from tayori.members.values import FieldError

# Names every template may use (see delivery.rendering.Compiled.render).
ROOTS = {"member", "data", "email", "tayori", "unsubscribe_url", "shown", "loop",
         "range", "dict", "lipsum", "cycler", "joiner", "namespace"}


def merge_errors(source: str, field: str, attribute_keys: set[str], *,
                 html: bool = False) -> list[FieldError]:
    """Syntax errors and unknown merge fields of one template text, each naming its line."""
    try:
        tree = parse(source, field, html=html)
    except RenderError as error:
        return [FieldError(field, _("Line %(line)s: %(message)s") % {
            "line": error.line or 1, "message": error.message})]
    assigned = {name.name for node in tree.find_all((nodes.For, nodes.Assign, nodes.Macro))
                for name in _targets(node)}
    errors = []
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name not in ROOTS | assigned:
            errors.append(FieldError(field, _("Line %(line)s: unknown field “%(name)s”.") % {
                "line": node.lineno, "name": node.name}))
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        key = node.attr if isinstance(node, nodes.Getattr) else (
            node.arg.value if isinstance(node.arg, nodes.Const) else None)
        if (isinstance(node.node, nodes.Name) and node.node.name == "member"
                and isinstance(key, str) and key not in attribute_keys):
            errors.append(FieldError(field, _(
                "Line %(line)s: unknown field “member.%(name)s” (no such attribute).") % {
                "line": node.lineno, "name": key}))
    return errors


def _targets(node) -> list[nodes.Name]:
    if isinstance(node, nodes.Macro):
        return [nodes.Name(node.name, "store"), *node.args]
    return list(node.target.find_all(nodes.Name)) + (
        [node.target] if isinstance(node.target, nodes.Name) else [])


def condition_errors(workspace, condition, field: str) -> list[FieldError]:
    if not condition:
        return []
    try:
        validate(workspace, condition)
    except SegmentError as error:
        return [FieldError(field, "; ".join(str(e) for e in error.errors))]
    return []


def template_errors(workspace, content: dict, shared: dict[int, dict] | None = None
                    ) -> list[FieldError]:
    """Every problem of a template's content, by field: ``subject``, ``subject_variants.N``,
    ``blocks.N`` (numbered from 1 as the editor shows them) and ``text``."""
    keys = set(Attribute.objects.filter(workspace=workspace).values_list("key", flat=True))
    errors = merge_errors(content.get("subject", ""), "subject", keys)
    if not content.get("subject", "").strip():
        errors.append(FieldError("subject", _("A subject is required.")))
    for number, variant in enumerate(content.get("subject_variants") or [], 1):
        field = f"subject_variants.{number}"
        errors += merge_errors(variant.get("subject", ""), field, keys)
        errors += condition_errors(workspace, variant.get("condition"), field)
    blocks = content.get("blocks") or []
    if not blocks:
        errors.append(FieldError("blocks", _("Add at least one block.")))
    for number, block in enumerate(blocks, 1):
        field = f"blocks.{number}"
        if block.get("kind") == "shared":
            if int(block.get("shared_id") or 0) not in (shared or {}):
                errors.append(FieldError(field, _("Choose a shared block.")))
        for key in ("text", "html", "label", "url", "src", "link", "alt"):
            if block.get(key):
                errors += merge_errors(block[key], field, keys, html=key == "html")
        errors += condition_errors(workspace, block.get("condition"), field)
    if content.get("text_edited"):
        errors += merge_errors(content.get("text", ""), "text", keys)
    return errors
