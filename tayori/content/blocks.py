"""Blocks and their assembly: a template's blocks (with shared ones resolved and the sender's
footer filled in) become the HTML, text and subject templates a delivery Source carries.

Each block's condition becomes ``{% if shown[i] %}`` around its HTML and text, and subject
variants become an if/elif chain; the engine works out ``shown`` per recipient from
``conditions`` (see delivery.composing). CSS is inlined per block with css-inline and the text
part made per block with inscriptis, so a block's Jinja never passes through an HTML parser
that could move it (tags are swapped for placeholders that both parsers keep in place)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html import escape

import css_inline
from inscriptis import get_text
from inscriptis.model.config import ParserConfig

from tayori.content.models import SenderIdentity, SharedBlock

FIELDS = {  # the fields each kind of block keeps, besides "kind" and "condition"
    "header": ("text",),
    "text": ("text",),
    "image": ("src", "alt", "link", "width"),
    "button": ("label", "url", "color"),
    "html": ("html",),
    "divider": (),
    "footer": (),
    "shared": ("shared_id",),
}

# The layout's stylesheet, inlined into each block (mail apps drop <style> more often than not).
CSS = """
h1 { font-size: 22px; line-height: 1.4; margin: 0 0 12px; color: #1f2933; }
p { font-size: 15px; line-height: 1.8; margin: 0 0 12px; color: #1f2933; }
.button { display: inline-block; padding: 12px 28px; border-radius: 6px; color: #ffffff;
          font-weight: bold; text-decoration: none; }
.footer { font-size: 12px; line-height: 1.7; color: #6b7280; }
.footer p { font-size: 12px; color: #6b7280; margin: 0 0 4px; }
hr { border: none; border-top: 1px solid #e5e7eb; margin: 16px 0; }
img { max-width: 100%; height: auto; border: 0; }
"""

_LAYOUT = """<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title></head>
<body style="margin:0;padding:0;background:#f3f4f6;">{preheader}
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f3f4f6;">
<tr><td align="center" style="padding:24px 8px;">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" style="max-width:600px;width:100%;background:#ffffff;border-radius:8px;">
<tr><td style="padding:24px;font-family:'Hiragino Sans','Meiryo',sans-serif;">
{blocks}
</td></tr></table></td></tr></table></body></html>"""

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_STATEMENT = re.compile(r"(\{%.*?%\}|\{#.*?#\})", re.DOTALL)
_TEXT_CONFIG = ParserConfig(display_links=True)
_ROWS = re.compile(r"<t[rd]\b", re.I)
# A piece's text ends its line when the piece ends a block, or opens one (a table or paragraph
# whose content starts with a statement).
_LINE_END = re.compile(r"(?:</(?:tr|p|li|div|h\d|table)>|<br\s*/?>"
                       r"|<(?:p|div|h\d|table|tbody|tr|ul|ol|li)\b[^>]*>)\s*$", re.I)


@dataclass
class Assembled:
    """What a Source carries: templates plus the conditions they test as ``shown[i]``."""

    subject: str
    html: str
    text: str
    conditions: list[dict] = field(default_factory=list)
    # Per block of the template (shared ones resolved): (index, kind, label, condition index).
    outline: list[tuple[int, str, str, int | None]] = field(default_factory=list)


class _Conditions:
    """Numbers each distinct condition once, in order of first use."""

    def __init__(self):
        self.items: list[dict] = []
        self._index: dict[str, int] = {}

    def number(self, condition: dict | None) -> int | None:
        if not condition or not condition.get("conditions", True):
            return None
        key = json.dumps(condition, sort_keys=True, ensure_ascii=False)
        if key not in self._index:
            self._index[key] = len(self.items)
            self.items.append(condition)
        return self._index[key]


def shared_of(workspace) -> dict[int, dict]:
    """The workspace's shared blocks by id, as ``assemble`` resolves them."""
    return dict(SharedBlock.objects.filter(workspace=workspace).values_list("pk", "block"))


def resolve(blocks: list[dict], shared: dict[int, dict]) -> list[dict]:
    """Blocks with each shared block replaced by its current content. The template's own
    condition on the shared block wins; a shared block that was deleted drops out."""
    resolved = []
    for block in blocks:
        if block.get("kind") == "shared":
            content = shared.get(int(block.get("shared_id") or 0))
            if content is None:
                continue
            block = {**content, "condition": block.get("condition") or content.get("condition"),
                     "shared_id": block.get("shared_id")}
        resolved.append(block)
    return resolved


def _protect(source: str) -> tuple[str, list[str]]:
    """Jinja tags swapped for placeholders an HTML parser keeps where they are: statements
    ({% for %} around table rows) become comments, which a table may hold; outputs become
    words, which may stand in text and attribute values alike."""
    tags: list[str] = []

    def swap(match):
        tags.append(match.group())
        word = f"TAYORIJINJA{len(tags) - 1:04d}X"
        return word if match.group().startswith("{{") else f"<!--{word}-->"

    return _JINJA.sub(swap, source), tags


def _restore(text: str, tags: list[str]) -> str:
    return re.sub(r"(?:<!--)?TAYORIJINJA(\d{4})X(?:-->)?", lambda m: tags[int(m.group(1))],
                  text)


def _text_html(text: str) -> str:
    """Operator text as HTML: literal parts escaped, merge tags kept, line breaks kept."""
    out, last = [], 0
    for match in _JINJA.finditer(text):
        out.append(escape(text[last:match.start()], quote=False))
        out.append(match.group())
        last = match.end()
    out.append(escape(text[last:], quote=False))
    return "".join(out).replace("\r\n", "\n").replace("\n", "<br>\n")


def block_html(block: dict, identity: SenderIdentity | None) -> str:
    """One block's HTML fragment (before CSS inlining); merge tags are left for Jinja."""
    kind = block.get("kind")
    if kind == "header":
        return f"<h1>{_text_html(block.get('text', ''))}</h1>"
    if kind == "text":
        return f"<p>{_text_html(block.get('text', ''))}</p>"
    if kind == "image":
        width = str(block.get("width") or "").strip()
        image = (f'<img src="{escape(block.get("src", ""))}" alt="{escape(block.get("alt", ""))}"'
                 + (f' width="{escape(width)}"' if width.isdigit() else "") + ">")
        if block.get("link"):
            image = f'<a href="{escape(block["link"])}">{image}</a>'
        return f'<p style="text-align:center">{image}</p>'
    if kind == "button":
        color = block.get("color") or "#2563eb"
        if not re.fullmatch(r"#[0-9a-fA-F]{3,6}", color):
            color = "#2563eb"
        return (f'<p style="text-align:center"><a class="button" href="{escape(block.get("url", ""))}"'
                f' style="background:{color}">{_text_html(block.get("label", ""))}</a></p>')
    if kind == "html":
        return block.get("html", "")
    if kind == "divider":
        return "<hr>"
    if kind == "footer":
        return _footer(identity)
    return ""


def _footer(identity: SenderIdentity | None) -> str:
    """The facts 特定電子メール法 asks of an advertising mail, and the unsubscribe link."""
    lines = []
    if identity is not None:
        for value in (identity.organization or identity.from_name, identity.postal_address,
                      identity.contact):
            if value:
                lines.append(f"<p>{escape(value)}</p>")
        if identity.opt_out_text:
            lines.append(f"<p>{_text_html(identity.opt_out_text)}</p>")
    lines.append('<p><a href="{{ unsubscribe_url }}">配信停止 / Unsubscribe</a></p>')
    return '<div class="footer">' + "".join(lines) + "</div>"


def _inline(fragment: str) -> str:
    protected, tags = _protect(fragment)
    return _restore(css_inline.inline_fragment(protected, CSS), tags)


def _text_of(fragment: str) -> str:
    """The text part of one block. Statements split the HTML into pieces converted one by one,
    so a loop over table rows stays a loop in the text (a parser would move it out)."""
    out = []
    for piece in _STATEMENT.split(fragment):
        if _STATEMENT.fullmatch(piece):
            out.append(piece)
        elif piece.strip():
            protected, tags = _protect(piece)
            if _ROWS.search(piece) and not re.search(r"<table", piece, re.I):
                protected = f"<table>{protected}</table>"  # rows cut from their table
            text = "\n".join(line.strip() for line in get_text(protected, _TEXT_CONFIG)
                             .splitlines()).strip("\n")
            if text and _LINE_END.search(piece):
                text += "\n"
            out.append(_restore(text, tags))
    return "".join(out).strip("\n")


def subject_template(subject: str, variants: list[dict], conditions: _Conditions) -> str:
    """The subject variants as one template: the first matching variant, else the default."""
    branches = [(conditions.number(v.get("condition")), v.get("subject", ""))
                for v in variants if v.get("subject")]
    branches = [(index, text) for index, text in branches if index is not None]
    if not branches:
        return subject
    out = []
    for position, (index, text) in enumerate(branches):
        out.append(f"{{% {'if' if position == 0 else 'elif'} shown[{index}] %}}{text}")
    return "".join(out) + f"{{% else %}}{subject}{{% endif %}}"


def assemble(content: dict, identity: SenderIdentity | None,
             shared: dict[int, dict] | None = None) -> Assembled:
    """A template's content (Template.content() or a campaign's snapshot) as a Source's
    subject, HTML and text templates and the conditions they test."""
    conditions = _Conditions()
    blocks = resolve(content.get("blocks") or [], shared or {})
    html_parts, text_parts, outline = [], [], []
    for position, block in enumerate(blocks):
        index = conditions.number(block.get("condition"))
        fragment = _inline(block_html(block, identity))
        text = _text_of(fragment) if block.get("kind") != "divider" else "――――――――"
        if index is not None:
            fragment = f"{{% if shown[{index}] %}}{fragment}{{% endif %}}"
            text = f"{{% if shown[{index}] %}}{text}\n{{% endif %}}" if text else ""
        elif text:
            text += "\n"
        html_parts.append(fragment)
        text_parts.append(text)
        outline.append((position, block.get("kind", ""), block_label(block), index))
    preheader = content.get("preheader") or ""
    hidden = (f'<div style="display:none;max-height:0;overflow:hidden">{escape(preheader)}</div>'
              if preheader else "")
    html = _LAYOUT.format(title=escape(content.get("subject", "")), preheader=hidden,
                          blocks="\n".join(html_parts))
    text = (content.get("text") or "" if content.get("text_edited")
            else "\n".join(part for part in text_parts if part))
    subject = subject_template(content.get("subject", ""),
                               content.get("subject_variants") or [], conditions)
    return Assembled(subject, html, text, conditions.items, outline)


def block_label(block: dict) -> str:
    """A short line saying what a block holds, for outlines and the preview's reasons."""
    for key in ("text", "label", "alt", "html", "src"):
        value = str(block.get(key) or "").strip()
        if value:
            value = re.sub(r"<[^>]+>", " ", value)
            value = " ".join(value.split())
            return value[:40] + ("…" if len(value) > 40 else "")
    return ""
