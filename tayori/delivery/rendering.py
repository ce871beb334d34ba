"""Rendering: a source's templates compiled once, then per recipient only merge, encode and
join bytes.

The bulk path never builds an ``email.message.EmailMessage`` per recipient (about 650 messages
a second per core, against tens of thousands for string joining): the MIME skeleton, boundary,
fixed headers and attachments are prepared in ``compile_message``; ``Compiled.render`` fills in
the merged subject and bodies (base64, 76-column lines), the recipient's headers and tokens.
Python's ``email`` parser checks the result in the tests.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import re
import secrets
import time
from dataclasses import dataclass, field
from html import unescape

import markupsafe
from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError, Undefined, nodes
from jinja2.sandbox import SandboxedEnvironment

from tayori.delivery import tokens
from tayori.delivery.filters import FILTERS


class _Environment(SandboxedEnvironment):
    """Merge data is dicts: ``data.items`` means the key "items" (line items), or nothing,
    never the dict method Jinja would otherwise find."""

    def getattr(self, obj, attribute):
        if isinstance(obj, dict):
            if attribute in obj:
                return obj[attribute]
            return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def _finalize(value):
    return "" if value is None else value  # a missing value in the data prints nothing


_html_env = _Environment(autoescape=True, undefined=ChainableUndefined, finalize=_finalize)
_text_env = _Environment(autoescape=False, undefined=ChainableUndefined, finalize=_finalize)
for _env in (_html_env, _text_env):
    _env.filters.update(FILTERS)  # yen, date_ja, weekday_ja… (Japanese formatting, JST)
_MISSING = object()
_SPECIAL = re.compile(r"[<>&'\"]")
_SHIFTS = re.compile("[\x1b\x0e\x0f]")


class _Joined:
    """A template made only of text and ``{{ name.key… }}`` outputs — most mail — rendered by
    filling slots and joining strings, several times faster than Jinja's context machinery.
    It prints exactly what Jinja would (the tests compare both on random templates); any other
    construct (if, for, filters) leaves the template to Jinja."""

    def __init__(self, env, parts: list):
        self.env = env
        self.parts = [part if isinstance(part, str) else "" for part in parts]
        self.slots = [(index, part) for index, part in enumerate(parts)
                      if not isinstance(part, str)]

    @classmethod
    def from_source(cls, env, source: str) -> _Joined | None:
        body = env.parse(source).body
        if len(body) > 1 or (body and not isinstance(body[0], nodes.Output)):
            return None
        parts = []
        for node in body[0].nodes if body else []:
            if isinstance(node, nodes.TemplateData):
                parts.append(node.data)
            elif (path := _path(node)) is not None:
                parts.append(path)
            else:
                return None
        return cls(env, parts)

    def render(self, context: dict) -> str:
        out = self.parts.copy()
        escape = self.env.autoescape
        for index, (root, keys, call) in self.slots:
            value = context.get(root, _MISSING)
            if type(value) is _Links:  # tracking links: no need for the sandbox's checks
                out[index] = value.click(call) if call is not None else (
                    value.open if keys == ("open",) else value.web if keys == ("web",)
                    else value.notices if keys == ("notices",) else "")
                continue
            for key in keys:
                if type(value) is dict:
                    value = value.get(key, _MISSING)
                elif value is _MISSING or isinstance(value, Undefined):
                    break
                else:
                    value = self.env.getattr(value, key)
            if call is not None and value is not _MISSING and not isinstance(value, Undefined):
                value = value(call)
            if value is _MISSING or value is None or isinstance(value, Undefined):
                continue
            if not escape:
                out[index] = str(value)
            elif type(value) is str and not _SPECIAL.search(value):
                out[index] = value  # nothing to escape: skip building Markup
            else:
                out[index] = markupsafe.escape(value)
        return "".join(out)


def _path(node) -> tuple[str, tuple[str, ...], int | None] | None:
    """``member.name`` → ("member", ("name",), None); ``tayori.click(3)`` → (…, 3)."""
    call = None
    if isinstance(node, nodes.Call):
        if (node.kwargs or node.dyn_args or node.dyn_kwargs or len(node.args) != 1
                or not isinstance(node.args[0], nodes.Const)
                or type(node.args[0].value) is not int):
            return None
        call, node = node.args[0].value, node.node
    keys = []
    while isinstance(node, nodes.Getattr):
        keys.append(node.attr)
        node = node.node
    if not isinstance(node, nodes.Name) or (call is not None and keys != ["click"]):
        return None
    return node.name, tuple(reversed(keys)), call

# Links worth tracking: absolute http(s) URLs written out in full. A URL built from merge fields
# is personal and left alone, since the click endpoint redirects only to URLs it knows.
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"'{}<>\s]+)\2""", re.I)
_BODY_END = re.compile(r"</body\s*>", re.I)


class RenderError(ValueError):
    """A template that cannot be compiled (with its field and line) or rendered."""

    def __init__(self, field: str, message: str, line: int | None = None):
        super().__init__(f"{field}: {message}" + (f" (line {line})" if line else ""))
        self.field, self.message, self.line = field, message, line


@dataclass
class Attachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str = ""  # an inline image the HTML shows as cid:<content_id>


@dataclass
class MessageSpec:
    """What a source sends, as plain data."""

    from_address: str
    subject: str
    html: str = ""
    text: str = ""
    from_name: str = ""
    reply_to: str = ""
    bulk: bool = True  # List-Unsubscribe with one-click POST
    tracking: bool = False
    tracking_host: str = ""
    bounce_domain: str = ""  # defaults to the sender's domain
    message_id_domain: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    charset: str = "utf-8"  # or "iso-2022-jp": 7-bit JIS, UTF-8 for a recipient it cannot carry


@dataclass(slots=True)
class Rendered:
    """One recipient's message: headers and body apart, so a DKIM signer need not reparse."""

    mail_from: str
    message_id: str
    subject: str
    headers: bytes
    body: bytes

    @property
    def data(self) -> bytes:
        return self.headers + b"\r\n" + self.body


class _Links:
    """Per-recipient link maker exposed to templates as ``tayori``."""

    __slots__ = ("delivery_id", "host")

    def __init__(self, delivery_id: int, host: str):
        self.delivery_id, self.host = delivery_id, host

    def click(self, index: int) -> str:
        return tokens.link(self.host, tokens.CLICK, self.delivery_id, index)

    @property
    def open(self) -> str:
        return tokens.link(self.host, tokens.OPEN, self.delivery_id)

    @property
    def web(self) -> str:  # the message in a browser
        return tokens.link(self.host, tokens.WEB, self.delivery_id) if self.host else ""

    @property
    def notices(self) -> str:  # the incident notices this recipient received
        return tokens.link(self.host, tokens.NOTICES, self.delivery_id) if self.host else ""


def _header_text(value: str) -> str:
    """An unstructured header value: as is when ASCII, else RFC 2047 B-encoded UTF-8 in
    encoded words of at most 45 bytes (75 characters encoded) that never split a character."""
    value = value.replace("\r", " ").replace("\n", " ")
    if value.isascii():
        return value
    encoded = value.encode()
    if len(encoded) <= 45:
        return f"=?UTF-8?B?{base64.b64encode(encoded).decode()}?="
    words, chunk, size = [], [], 0
    for char in value:
        n = len(char.encode())
        if size + n > 45:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += n
    words.append("".join(chunk))
    return "\r\n ".join(f"=?UTF-8?B?{base64.b64encode(w.encode()).decode()}?=" for w in words)


def _address(name: str, address: str) -> str:
    if not name:
        return address
    if name.isascii() and not re.search(r'[()<>\[\]:;@\\,."]', name):
        return f"{name} <{address}>"
    if name.isascii():
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{address}>'
    return f"{_header_text(name)} <{address}>"


def _b64(text: str) -> bytes:
    """A text part in canonical form (CRLF line breaks), base64 in 76-column lines. One C call
    encodes the whole part; slicing makes the lines (base64.encodebytes loops per line)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_base64(text.replace("\n", "\r\n").encode(), newline=False)
    return b"".join([encoded[i:i + 76] + b"\r\n" for i in range(0, len(encoded), 76)])


def parse(source: str, field_name: str, *, html: bool = False) -> nodes.Template:
    """A template's syntax tree, after compiling it as the engine will (so unknown filters and
    syntax errors surface now); raises RenderError with the field and line."""
    env = _html_env if html else _text_env
    _compile(env, source, field_name)
    return env.parse(source)


def _compile(env, source: str, field_name: str):
    try:
        template = env.from_string(source)
    except TemplateSyntaxError as error:
        raise RenderError(field_name, error.message or "syntax error", error.lineno) from None
    return _Joined.from_source(env, source) or template


def tracked_links(html: str) -> list[str]:
    """The URLs the click endpoint may redirect to for a source's HTML, by link index, as the
    browser reads them (entities decoded)."""
    return [unescape(match.group(3)) for match in _HREF.finditer(html)]


def _track_links(html: str) -> tuple[str, list[str]]:
    links: list[str] = []

    def replace(match):
        links.append(match.group(3))
        return f"{match.group(1)}{match.group(2)}{{{{ tayori.click({len(links) - 1}) }}}}{match.group(2)}"

    html = _HREF.sub(replace, html)
    pixel = '<img src="{{ tayori.open }}" width="1" height="1" alt="" style="display:none">'
    ends = list(_BODY_END.finditer(html))
    if ends:
        at = ends[-1].start()
        html = html[:at] + pixel + html[at:]
    else:
        html += pixel
    return html, links


class Compiled:
    """A source's message, ready to render per recipient."""

    def __init__(self, spec: MessageSpec):
        if not spec.html and not spec.text:
            raise RenderError("html", "an HTML or a text body is required")
        self.spec = spec
        sender_domain = spec.from_address.rpartition("@")[2]
        self.bounce_domain = spec.bounce_domain or sender_domain
        self.id_domain = spec.message_id_domain or sender_domain
        self.tracking = spec.tracking and bool(spec.tracking_host) and bool(spec.html)
        html = spec.html
        self.links: list[str] = []
        if self.tracking:
            html, self.links = _track_links(html)
        self.subject = _compile(_text_env, spec.subject, "subject")
        self.html = _compile(_html_env, html, "html") if spec.html else None
        self.text = _compile(_text_env, spec.text, "text") if spec.text else None
        boundary = f"=_tayori_{secrets.token_hex(12)}"
        self._boundary = boundary
        self.jis = spec.charset == "iso-2022-jp"
        jis_name = jis_header(spec.from_name) if self.jis and spec.from_name else None
        fixed = [f"From: {jis_name} <{spec.from_address}>" if jis_name
                 else f"From: {_address(spec.from_name, spec.from_address)}"]
        if spec.reply_to:
            fixed.append(f"Reply-To: {spec.reply_to}")
        fixed += [f"{name}: {_header_text(value)}" for name, value in spec.headers.items()]
        fixed.append("MIME-Version: 1.0")
        self._fixed = "\r\n".join(fixed)
        self._attachments = b"".join(
            (f"--{boundary}m\r\nContent-Type: {a.content_type}\r\n"
             f"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; "
             f"filename*=utf-8''{_quote(a.filename)}\r\n\r\n").encode()
            + base64.encodebytes(a.data).replace(b"\n", b"\r\n")
            for a in spec.attachments if not a.content_id)
        self._inline = b"".join(
            (f"--{boundary}r\r\nContent-Type: {a.content_type}\r\n"
             f"Content-Transfer-Encoding: base64\r\nContent-ID: <{a.content_id}>\r\n"
             f"Content-Disposition: inline; filename*=utf-8''{_quote(a.filename)}\r\n\r\n"
             ).encode() + base64.encodebytes(a.data).replace(b"\n", b"\r\n")
            for a in spec.attachments if a.content_id)
        self._date, self._date_at = "", 0

    def envelope_from(self, delivery_id: int, token: str | None = None) -> str:
        token = token or tokens.make(tokens.BOUNCE, delivery_id)
        return f"bounce+{token}@{self.bounce_domain}"

    def message_id(self, delivery_id: int, token: str | None = None) -> str:
        # The same delivery keeps its Message-ID across retries; bounces can be matched by it.
        return f"<{token or tokens.make(tokens.BOUNCE, delivery_id)}@{self.id_domain}>"

    def _now(self) -> str:
        second = int(time.time())
        if second != self._date_at:
            self._date, self._date_at = email.utils.formatdate(second, localtime=False), second
        return self._date

    def render(self, delivery_id: int, to: str, member: dict | None = None,
               data: dict | None = None, shown: list[bool] | None = None) -> Rendered:
        """One recipient's message. ``shown[i]`` says whether the recipient matches the
        source's i-th condition (conditional blocks and subject variants test it)."""
        links = _Links(delivery_id, self.spec.tracking_host)
        unsubscribe_token = tokens.make(tokens.UNSUBSCRIBE, delivery_id)
        unsubscribe = (f"{tokens.base_url(self.spec.tracking_host)}/t/u/{unsubscribe_token}"
                       if self.spec.tracking_host else "")
        context = {"member": member or {}, "data": data or {}, "email": to, "tayori": links,
                   "unsubscribe_url": unsubscribe, "shown": shown or ()}
        try:
            subject = " ".join(self.subject.render(context).split())
            html = self.html.render(context) if self.html else None
            text = self.text.render(context) if self.text else None
        except TemplateError as error:
            raise RenderError("template", str(error)) from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as error:
            raise RenderError("template", f"{type(error).__name__}: {error}") from None
        bounce_token = tokens.make(tokens.BOUNCE, delivery_id)
        message_id = self.message_id(delivery_id, bounce_token)
        jis = self.jis and _jis_parts(subject, html, text)
        subject_header = jis[0] if jis else _header_text(subject)
        headers = [self._fixed, f"To: {to}", f"Subject: {subject_header}",
                   f"Date: {self._now()}", f"Message-ID: {message_id}"]
        if self.spec.bulk:
            mailto = f"<mailto:unsubscribe+{unsubscribe_token}@{self.bounce_domain}>"
            headers.append(f"List-Unsubscribe: <{unsubscribe}>, {mailto}" if unsubscribe
                           else f"List-Unsubscribe: {mailto}")
            if unsubscribe:
                headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        content_type, body = self._body(html, text, jis)
        if self._attachments:
            outer = f"{self._boundary}m"
            body = (f"--{outer}\r\nContent-Type: {content_type}\r\n\r\n".encode() + body
                    + self._attachments + f"--{outer}--\r\n".encode())
            content_type = f'multipart/mixed; boundary="{outer}"'
        headers.append(f"Content-Type: {content_type}")
        return Rendered(self.envelope_from(delivery_id, bounce_token), message_id, subject,
                        ("\r\n".join(headers) + "\r\n").encode(), body)

    def _body(self, html: str | None, text: str | None,
              jis: tuple | None = None) -> tuple[str, bytes]:
        b = self._boundary
        html_part = text_part = None
        if html is not None:
            html_part = _part("html", html, jis[1] if jis else None)
            if self._inline:
                html_part = (f'multipart/related; boundary="{b}r"', b"".join((
                    _part_bytes(html_part, b + "r"), self._inline, f"--{b}r--\r\n".encode())))
        if text is not None:
            text_part = _part("plain", text, jis[2] if jis else None)
        if html_part is None or text_part is None:
            return html_part or text_part
        body = b"".join((_part_bytes(text_part, b), _part_bytes(html_part, b),
                         f"--{b}--\r\n".encode()))
        return f'multipart/alternative; boundary="{b}"', body


def _part(kind: str, text: str, jis: bytes | None) -> tuple[str, bytes]:
    """A text part as (its Content-Type and Content-Transfer-Encoding lines, encoded body):
    JIS bytes as 7bit when the message goes out in ISO-2022-JP and its lines fit, else base64."""
    if jis is None:
        return f'text/{kind}; charset="utf-8"\r\nContent-Transfer-Encoding: base64', _b64(text)
    if _fits_7bit(jis):
        return f'text/{kind}; charset="ISO-2022-JP"\r\nContent-Transfer-Encoding: 7bit', jis
    return (f'text/{kind}; charset="ISO-2022-JP"\r\nContent-Transfer-Encoding: base64',
            _b64_bytes(jis))


def _part_bytes(part: tuple[str, bytes], boundary: str) -> bytes:
    content_type, body = part
    return f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + body


def _fits_7bit(body: bytes) -> bool:
    # RFC 5322 lines end in CRLF and carry at most 998 octets.
    return all(len(line) <= 998 for line in body.split(b"\r\n"))


def _b64_bytes(data: bytes) -> bytes:
    encoded = binascii.b2a_base64(data, newline=False)
    return b"".join([encoded[i:i + 76] + b"\r\n" for i in range(0, len(encoded), 76)])


def _jis_text(text: str) -> bytes | None:
    """Text as ISO-2022-JP with CRLF line ends, or None if a character cannot be carried."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _SHIFTS.search(text):
        return None  # a stray ESC, SO or SI would switch the reader's character set
    if not text.endswith("\n"):
        text += "\n"  # a boundary or the end of data follows on a line of its own
    try:
        return text.replace("\n", "\r\n").encode("iso2022_jp")
    except UnicodeEncodeError:
        return None


def jis_header(value: str) -> str | None:
    """An unstructured header value in ISO-2022-JP encoded words (RFC 1468/2047), each at most
    75 characters and of whole characters, or None if a character cannot be carried."""
    value = value.replace("\r", " ").replace("\n", " ")
    if _SHIFTS.search(value):
        return None
    if value.isascii():
        return value
    words, chunk = [], ""
    for char in value:
        candidate = chunk + char
        try:
            encoded = candidate.encode("iso2022_jp")
        except UnicodeEncodeError:
            return None
        # "=?ISO-2022-JP?B?" + "?=" is 18 characters; base64 grows 3 bytes into 4.
        if chunk and 18 + 4 * ((len(encoded) + 2) // 3) > 75:
            words.append(chunk)
            chunk = char
        else:
            chunk = candidate
    words.append(chunk)
    return "\r\n ".join(
        f"=?ISO-2022-JP?B?{base64.b64encode(w.encode('iso2022_jp')).decode()}?=" for w in words)


def _jis_parts(subject: str, html: str | None, text: str | None) -> tuple | None:
    """(subject header, html bytes, text bytes) in ISO-2022-JP, or None when any of them holds
    a character JIS cannot carry: that recipient's message then goes out in UTF-8 whole."""
    header = jis_header(subject)
    html_bytes = _jis_text(html) if html is not None else b""
    text_bytes = _jis_text(text) if text is not None else b""
    if header is None or html_bytes is None or text_bytes is None:
        return None
    return header, html_bytes if html is not None else None, (
        text_bytes if text is not None else None)


def _quote(filename: str) -> str:
    from urllib.parse import quote

    return quote(filename, safe="")


def compile_message(spec: MessageSpec) -> Compiled:
    """Compile once per source; raises RenderError naming the field and line."""
    return Compiled(spec)
