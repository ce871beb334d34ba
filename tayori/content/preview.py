"""Previews: a template rendered for one chosen member by the engine's own renderer, with the
reasons each conditional block and subject variant was shown or left out."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field

from django.utils.translation import gettext as _

from tayori.content.blocks import assemble
from tayori.content.models import BLOCK_KINDS
from tayori.delivery.composing import Conditions
from tayori.delivery.rendering import MessageSpec, RenderError, compile_message
from tayori.members.masking import masked_member_fields
from tayori.members.models import Attribute, Member
from tayori.members.segments import describe


@dataclass
class Reason:
    position: int  # 1-based, as the editor numbers blocks
    kind: str
    label: str
    condition: str  # the condition in words, "" when the block is for everyone
    shown: bool

    @property
    def kind_label(self) -> str:
        return str(BLOCK_KINDS.get(self.kind, self.kind))


@dataclass
class Preview:
    subject: str = ""
    html: str = ""
    text: str = ""
    reasons: list[Reason] = field(default_factory=list)
    subject_reason: str = ""
    error: str = ""


def condition_words(workspace, definition, *, allow_pii: bool) -> str:
    """A condition as one line people read: "都道府県 is 東京都 AND プラン is gold"."""
    def words(node) -> str:
        if node.get("group"):
            joiner = " AND " if node["op"] == "and" else " OR "
            inner = joiner.join(words(item) for item in node["items"])
            return f"({inner})" if len(node["items"]) > 1 else inner
        return " ".join(part for part in (node["field"], str(node["operator"]), node["value"])
                        if part)

    return words(describe(workspace, definition, allow_pii=allow_pii)) if definition else ""


def render_preview(workspace, content: dict, identity, member: Member | None, *,
                   allow_pii: bool, data: dict | None = None,
                   shared: dict[int, dict] | None = None) -> Preview:
    """The mail as ``member`` would receive it. Without ``allow_pii`` the member's email and
    PII attributes are masked before merging, so the preview never shows what the role may
    not see; conditions are still decided on the real values."""
    assembled = assemble(content, identity, shared)
    conditions = Conditions(workspace, assembled.conditions)
    shown = conditions.shown(member) if member is not None else [False] * len(
        assembled.conditions)
    attributes, address = {}, "preview@example.jp"
    if member is not None:
        seen = masked_member_fields(member, Attribute.objects.filter(workspace=workspace),
                                    allow_pii)
        attributes, address = seen["attributes"], seen["email"]
    preview = Preview()
    from_address = identity.from_address if identity else "preview@example.jp"
    try:
        compiled = compile_message(MessageSpec(
            from_address=from_address, subject=assembled.subject, html=assembled.html,
            text=assembled.text, bulk=False))
        rendered = compiled.render(0, address or "preview@example.jp", attributes, data, shown)
    except RenderError as error:
        preview.error = str(error)
        return preview
    message = email.message_from_bytes(rendered.data, policy=email.policy.default)
    preview.subject = rendered.subject
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    preview.html = html_part.get_content() if html_part else ""
    preview.text = text_part.get_content() if text_part else ""
    for position, kind, label, index in assembled.outline:
        preview.reasons.append(Reason(
            position + 1, kind, label,
            condition_words(workspace, assembled.conditions[index], allow_pii=allow_pii)
            if index is not None else "", index is None or shown[index]))
    preview.subject_reason = _subject_reason(workspace, content, assembled, shown, allow_pii)
    return preview


def _subject_reason(workspace, content, assembled, shown, allow_pii) -> str:
    for number, variant in enumerate(content.get("subject_variants") or [], 1):
        condition = variant.get("condition")
        if not condition or not variant.get("subject"):
            continue
        index = next((i for i, c in enumerate(assembled.conditions) if c == condition), None)
        if index is not None and shown[index]:
            return _("Subject variant %(n)s: %(condition)s") % {
                "n": number, "condition": condition_words(workspace, condition,
                                                          allow_pii=allow_pii)}
    return _("Default subject (no variant matched)") if content.get("subject_variants") else ""
