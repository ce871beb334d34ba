"""A notice's words: the type's templates with the notice's values bound as ``notice.<key>``,
checked when a type is saved and rendered for the confirmation screen by the engine's own
renderer.

The values are the same for every recipient, member fields are not: the values are bound by a
``{% set notice = {...} %}`` line put before each template, so the Source keeps templates that
the engine renders per recipient like any other (``member.<key>``, ``email``), and each
notice's Source says exactly what it sent. The values are written as Jinja string literals in
which every character that could end the literal or start a tag is a ``\\u`` escape.
``notice_history_url`` is the recipient's own link to the notices sent to them (see
incidents.history; empty until the workspace has a tracking host)."""

from __future__ import annotations

import email
import email.policy
import json
from dataclasses import dataclass

from django.utils.translation import gettext as _
from jinja2 import nodes

from tayori.delivery.rendering import MessageSpec, RenderError, compile_message, parse
from tayori.incidents.fields import FieldSpec
from tayori.members.values import FieldError

HISTORY_URL = "notice_history_url"
_ESCAPED = "<>&'{}%#"
TEMPLATE_FIELDS = ("subject", "text", "html")


def _literal(text: str) -> str:
    quoted = json.dumps(text, ensure_ascii=False)
    for char in _ESCAPED:
        quoted = quoted.replace(char, f"\\u{ord(char):04x}")
    return quoted


def referenced(template: str) -> set[str] | None:
    """The ``notice.<key>`` names a template uses (empty: it does not use ``notice``); None
    when it uses ``notice`` otherwise (``{% for k in notice %}``), so every value is bound."""
    tree = parse(template, "template")
    uses = sum(1 for name in tree.find_all(nodes.Name)
               if name.name == "notice" and name.ctx == "load")
    keys = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not (isinstance(node.node, nodes.Name) and node.node.name == "notice"):
            continue
        if isinstance(node, nodes.Getattr):
            keys.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            keys.append(node.arg.value)
    return set(keys) if len(keys) == uses else None


def bind(template: str, shown: dict[str, str]) -> str:
    """``template`` with the values it uses set as ``notice`` (and the history link named)."""
    if not template:
        return template
    used = referenced(template)
    prefix = ""
    if used is None or used:
        values = shown if used is None else {k: v for k, v in shown.items() if k in used}
        pairs = ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in values.items())
        prefix = "{% set notice = {" + pairs + "} %}"
    if HISTORY_URL in template:
        prefix += "{% set " + HISTORY_URL + " = tayori.notices %}"
    return prefix + template


def check(subject: str, text: str, html: str, specs: list[FieldSpec]) -> list[FieldError]:
    """Problems with a type's templates: syntax (with the line) and ``notice.<key>`` names
    that are not fields of the type."""
    errors, keys = [], {spec.key for spec in specs}
    for name, template in zip(TEMPLATE_FIELDS, (subject, text, html), strict=True):
        if not template:
            continue
        try:
            used = referenced(template)
        except RenderError as error:
            errors.append(FieldError(name, _("Line %(line)s: %(message)s")
                                     % {"line": error.line or 1, "message": error.message}))
            continue
        unknown = sorted((used or set()) - keys)
        if unknown:
            errors.append(FieldError(name, _("No field with the key: %(keys)s")
                                     % {"keys": ", ".join(f"notice.{k}" for k in unknown)}))
    return errors


@dataclass
class Words:
    """A notice as one recipient reads it."""

    subject: str = ""
    text: str = ""
    html: str = ""
    error: str = ""


def render(notice_type, shown: dict[str, str], *, member: dict | None = None,
           address: str = "preview@example.jp") -> Words:
    """The notice as the member with attributes ``member`` would receive it (no member: the
    member fields print nothing)."""
    try:
        compiled = compile_message(MessageSpec(
            from_address=notice_type.from_address or "preview@example.jp",
            subject=bind(notice_type.subject, shown), text=bind(notice_type.text, shown),
            html=bind(notice_type.html, shown), bulk=False))
        rendered = compiled.render(0, address, member or {})
    except RenderError as error:
        return Words(error=str(error))
    message = email.message_from_bytes(rendered.data, policy=email.policy.default)
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    return Words(subject=rendered.subject,
                 text=_lines(text_part.get_content()) if text_part else "",
                 html=html_part.get_content() if html_part else "")


def _lines(text: str) -> str:
    return text.replace("\r\n", "\n")  # MIME parts travel with CRLF; pages and lists use LF
