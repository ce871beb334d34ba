"""Importing a mail template from an uploaded .eml, .mht/.mhtml or .html file (plus its images):
subject, HTML, text, inline images and attachments, with warnings for what was left out."""

from __future__ import annotations

import codecs
import email
import html as htmllib
import mimetypes
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import EmailMessage
from urllib.parse import unquote, urljoin, urlsplit

MAX_IMPORT_BYTES = 10 * 1024 * 1024

MIME_EXTENSIONS = (".eml", ".mht", ".mhtml")
HTML_EXTENSIONS = (".html", ".htm")
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif", ".webp": "image/webp", ".svg": "image/svg+xml"}

FALLBACK_CHARSETS = ("utf-8", "cp932", "iso2022_jp", "euc_jp")
# Japanese mailers label Windows text "Shift_JIS", but it carries cp932 characters such as ①.
CHARSET_ALIASES = {"shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
                   "ms_kanji": "cp932", "csshiftjis": "cp932", "windows-31j": "cp932",
                   "x-euc-jp": "euc_jp"}
# Labels that decode any bytes without error, so they cannot tell a wrong label from a right one.
WEAK_CHARSETS = {"iso-8859-1", "latin1", "latin-1", "windows-1252", "cp1252"}

# Patterns stop at "<" so that a file full of unclosed tags is still read in linear time.
_SCRIPT_OPEN = re.compile(r"<script\b[^<>]*>?", re.IGNORECASE)
_SCRIPT_CLOSE = re.compile(r"</script\b[^<>]*>?", re.IGNORECASE)
_TAG = re.compile(r"<([a-zA-Z][^\s/<>]*)([\s/](?:[^<>\"']|\"[^\"]*\"|'[^']*')*)>")
_ATTRIBUTE = re.compile(r"(\s*)([^\s\"'>/=]+)(?:(\s*=\s*)(\"[^\"]*\"|'[^']*'|[^\s>\"']*))?")
_TITLE_OPEN = re.compile(r"<title\b[^<>]*>", re.IGNORECASE)
_TITLE_CLOSE = re.compile(r"</title\b", re.IGNORECASE)
_ISO2022_ESCAPE = re.compile(rb"\x1b(\$[@B]|\([BJI])")
_META_CHARSET = re.compile(rb"<meta\b[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
IMAGE_ATTRIBUTES = ("src", "background")


@dataclass
class Asset:
    filename: str
    content_type: str
    data: bytes = field(repr=False)
    content_id: str = ""  # set for inline images, referenced as cid:<content_id> in html
    inline: bool = False


@dataclass
class ImportedMail:
    subject: str = ""
    html: str = ""
    text: str = ""
    assets: list[Asset] = field(default_factory=list)  # inline images and attachments
    warnings: list[str] = field(default_factory=list)  # things skipped, said for people


class ImportRefused(ValueError):
    """The file cannot be turned into a template; the message says why."""


def import_message(filename: str, data: bytes,
                   images: Sequence[tuple[str, bytes]] = ()) -> ImportedMail:
    """The parts of a new template from an uploaded file (and, for HTML, its images)."""
    extension = posixpath.splitext(filename.lower())[1]
    if extension not in MIME_EXTENSIONS + HTML_EXTENSIONS:
        raise ImportRefused(f"“{filename}” cannot be imported: upload an .eml, .mht/.mhtml or "
                            ".html/.htm file (with its images).")
    total = len(data) + sum(len(content) for _, content in images)
    if total > MAX_IMPORT_BYTES:
        raise ImportRefused(f"The upload is {total / 1024 / 1024:.1f} MB; "
                            f"the limit is {MAX_IMPORT_BYTES // 1024 // 1024} MB.")
    if extension in HTML_EXTENSIONS:
        return _import_html(data, images)
    mail = _import_mime(filename, data)
    if images:
        mail.warnings.append("Separate images are only used with an HTML file; they were ignored.")
    return mail


# MIME (.eml, .mht)

def _import_mime(filename: str, data: bytes) -> ImportedMail:
    message = email.message_from_bytes(data, policy=policy.default)
    if not message.keys():
        raise ImportRefused(f"“{filename}” does not look like an email message (no headers).")
    mail = ImportedMail(subject=_decode_header(_raw_header(message, "subject")))
    walk = _MimeWalk(mail)
    walk.visit(message, related=False)
    if walk.skipped:
        mail.warnings.append("Skipped parts a mail cannot use: " + ", ".join(walk.skipped) + ".")
    if not mail.html.strip() and not mail.text.strip():
        raise ImportRefused(f"“{filename}” has neither an HTML nor a text body.")
    shown = {unquote(ref).lower()
             for ref in re.findall(r"cid:([^\s\"'>)]+)", mail.html, re.IGNORECASE)}
    for asset in mail.assets:
        if not asset.inline and asset.content_id:
            asset.inline = asset.content_id.lower() in shown
            asset.content_id = asset.content_id if asset.inline else ""
    if mail.html:
        html = _strip_scripts(mail.html, mail.warnings)
        locations = {unquote(location): cid for location, cid in walk.locations.items()}
        page = walk.html_location

        def target(ref: str) -> str | None:
            # Saved pages refer to their files relative to the page itself.
            for candidate in (ref, urljoin(page, ref) if page else ""):
                if unquote(candidate) in locations:
                    return locations[unquote(candidate)]
            return None

        mail.html = _edit_images(html, target)
        _warn_missing_images(mail)
        if not mail.subject:
            mail.subject = _title(mail.html)
    return mail


class _MimeWalk:
    def __init__(self, mail: ImportedMail):
        self.mail = mail
        self.locations: dict[str, str] = {}  # Content-Location -> content id
        self.html_location = ""
        self.skipped: list[str] = []
        self.generated = 0

    def visit(self, part: EmailMessage, related: bool) -> None:
        if part.get_content_maintype() == "multipart":
            inside = related or part.get_content_subtype() == "related"
            for child in part.iter_parts():
                self.visit(child, inside)
            return
        content_type = part.get_content_type()
        disposition = part.get_content_disposition()
        name = _filename(part)
        content_id = (part.get("Content-ID") or "").strip().strip("<>")
        if disposition != "attachment" and content_type in ("text/html", "text/plain"):
            key = "html" if content_type == "text/html" else "text"
            if not getattr(self.mail, key):
                setattr(self.mail, key, self._text(part))
                if key == "html":
                    self.html_location = (part.get("Content-Location") or "").strip()
                return
            if not name:
                self.mail.warnings.append(f"An extra {content_type} part was skipped.")
                return
        is_image = part.get_content_maintype() == "image"
        if disposition == "attachment" or not (content_id or (related and is_image)):
            if related and not is_image and disposition != "attachment":
                # Saved pages carry their stylesheets, scripts and fonts: no mail client loads them.
                self.skipped.append(name or self._name(part, "part"))
                return
            # The content id stays until the walk ends: mailers (Python's among them) mark
            # images the HTML shows as attachments.
            self.mail.assets.append(Asset(name or self._name(part, "attachment"), content_type,
                                          _payload(part), content_id=content_id))
            return
        location = (part.get("Content-Location") or "").strip()
        if not content_id:
            content_id = self._new_id()
        if location:
            self.locations[location] = content_id
        self.mail.assets.append(Asset(name or self._name(part, "image"), content_type,
                                      _payload(part), content_id=content_id, inline=True))

    def _text(self, part: EmailMessage) -> str:
        text, clean = _decode(_payload(part), part.get_content_charset())
        if not clean:
            self.mail.warnings.append(f"The {part.get_content_type()} part is not in a known "
                                      "character set; unreadable characters were replaced.")
        return text

    def _new_id(self) -> str:
        used = {asset.content_id for asset in self.mail.assets}
        while True:
            self.generated += 1
            content_id = f"img{self.generated}@tayori"
            if content_id not in used:
                return content_id

    def _name(self, part: EmailMessage, stem: str) -> str:
        location = urlsplit((part.get("Content-Location") or "").strip()).path
        if posixpath.basename(location):
            return posixpath.basename(unquote(location))
        extension = mimetypes.guess_extension(part.get_content_type()) or ".bin"
        return f"{stem}{len(self.mail.assets) + 1}{extension}"


def _payload(part: EmailMessage) -> bytes:
    if part.get_content_type() == "message/rfc822":
        return part.get_payload(0).as_bytes()
    return part.get_payload(decode=True) or b""


def _raw_header(part: EmailMessage, name: str) -> str:
    # The raw value, so a wrongly labelled or unlabelled charset can still be decoded here.
    for key, value in part.raw_items():
        if key.lower() == name:
            return str(value)
    return ""


def _filename(part: EmailMessage) -> str:
    name = part.get_filename() or ""
    raw = _raw_header(part, "content-disposition") + ";" + _raw_header(part, "content-type")
    encoded = re.search(r"\b(?:file)?name\s*=\s*\"(=\?[^\"]*)\"", raw, re.IGNORECASE)
    if encoded:  # encoded words inside quotes: common from Japanese mailers, not in the RFCs
        name = _decode_header(encoded.group(1))
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def _decode_header(raw: str) -> str:
    raw = re.sub(r"\r?\n(?=[ \t])", "", raw)
    try:
        pieces = decode_header(raw)
    except (ValueError, HeaderParseError):  # a broken encoded word: show it as it came
        pieces = [(raw, None)]
    text = []
    for piece, charset in pieces:
        if isinstance(piece, str):  # no encoded words; 8-bit bytes arrive surrogate-escaped
            piece = piece.encode("utf-8", "surrogateescape")
        text.append(_decode(piece, charset)[0])
    return re.sub(r"\s+", " ", "".join(text)).strip()


def _decode(data: bytes, declared: str | None) -> tuple[str, bool]:
    """The text, and whether it decoded without replacing anything."""
    declared = (declared or "").strip().lower()
    declared = CHARSET_ALIASES.get(declared, declared)
    candidates = list(FALLBACK_CHARSETS)
    if declared in WEAK_CHARSETS:
        candidates.append(declared)
    elif declared:
        candidates.insert(0, declared)
    if b"\x1b$" in data or declared.replace("-", "").startswith("iso2022"):
        # 7-bit ISO-2022-JP passes for UTF-8 too, so it goes first when it is likely.
        candidates[:0] = ["iso2022_jp", "cp50220"]
    for charset in candidates:
        try:
            return (_cp50220(data) if charset == "cp50220" else data.decode(charset)), True
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", "replace"), False


def _cp50220(data: bytes) -> str:
    """ISO-2022-JP with the NEC and IBM characters (①, ㈱, 髙) Windows mailers put in it, which
    Python's codec refuses: converted to Shift_JIS byte by byte and read as cp932."""
    out = bytearray()
    mode = b"(B"
    for index, chunk in enumerate(_ISO2022_ESCAPE.split(data)):
        if index % 2:
            mode = chunk
        elif mode in (b"$B", b"$@"):
            if len(chunk) % 2:
                raise UnicodeDecodeError("cp50220", data, 0, len(data), "odd double-byte run")
            for first, second in zip(chunk[::2], chunk[1::2], strict=True):
                if not (0x21 <= first <= 0x7E and 0x21 <= second <= 0x7E):
                    raise UnicodeDecodeError("cp50220", data, 0, len(data), "not JIS X 0208")
                lead = (first + 1) // 2 + 0x70
                trail = second + (0x1F if first % 2 else 0x7E)
                out += bytes((lead + 0x40 if lead >= 0xA0 else lead,
                              trail + 1 if first % 2 and trail >= 0x7F else trail))
        elif mode == b"(I":
            out += bytes(byte | 0x80 for byte in chunk)  # half-width katakana
        else:
            out += chunk
    return out.decode("cp932")


# HTML files

def _import_html(data: bytes, images: Sequence[tuple[str, bytes]]) -> ImportedMail:
    mail = ImportedMail()
    if data.startswith(codecs.BOM_UTF8):
        html = data[3:].decode("utf-8", "replace")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Notepad's "Unicode"
        html = data.decode("utf-16", "replace")
    else:
        declared = _META_CHARSET.search(data[:16384])
        html, clean = _decode_html(data, declared.group(1).decode("ascii") if declared else "")
        if not clean:
            mail.warnings.append("The HTML file is not in a known character set; "
                                 "unreadable characters were replaced.")
    if not html.strip():
        raise ImportRefused("The HTML file is empty.")
    mail.subject = _title(html)
    html = _strip_scripts(html, mail.warnings)
    by_name: dict[str, str] = {}
    for name, content in images:
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        content_type = IMAGE_TYPES.get(posixpath.splitext(base.lower())[1])
        if content_type is None:
            mail.warnings.append(f"“{base}” is not an image (PNG, JPEG, GIF, WebP or SVG) "
                                 "and was skipped.")
            continue
        if base.casefold() in by_name:
            mail.warnings.append(f"“{base}” was uploaded twice; the first one is used.")
            continue
        content_id = f"img{len(mail.assets) + 1}@tayori"
        by_name[base.casefold()] = content_id
        mail.assets.append(Asset(base, content_type, content, content_id=content_id, inline=True))

    used: set[str] = set()

    def target(ref: str) -> str | None:
        if _is_remote(ref) or ref.lower().startswith(("cid:", "data:")):
            return None
        path = unquote(urlsplit(ref.replace("\\", "/")).path)
        content_id = by_name.get(path.rsplit("/", 1)[-1].casefold())
        if content_id:
            used.add(content_id)
        return content_id

    mail.html = _edit_images(html, target)
    _warn_missing_images(mail)
    unused = [asset.filename for asset in mail.assets if asset.content_id not in used]
    if unused:
        mail.warnings.append("Images not used in the HTML: " + ", ".join(unused) + ".")
    return mail


def _decode_html(data: bytes, declared: str) -> tuple[str, bool]:
    # Valid UTF-8 is UTF-8 whatever the page says (pages are re-saved and keep an old <meta>);
    # otherwise the declaration goes first, as EUC-JP often passes for cp932 without an error.
    if b"\x1b$" not in data:
        try:
            return data.decode("utf-8"), True
        except UnicodeDecodeError:
            pass
    return _decode(data, declared)


def _title(html: str) -> str:
    opening = _TITLE_OPEN.search(html)
    closing = _TITLE_CLOSE.search(html, opening.end()) if opening else None
    if not opening or not closing:
        return ""
    return re.sub(r"\s+", " ", htmllib.unescape(html[opening.end():closing.start()])).strip()


# HTML editing, tag by tag so everything else stays as it was

def _strip_scripts(html: str, warnings: list[str]) -> str:
    kept: list[str] = []
    scripts = position = 0
    closed = True  # until a search for </script> fails, after which none can succeed
    while opening := _SCRIPT_OPEN.search(html, position):
        kept.append(html[position:opening.start()])
        scripts += 1
        closing = _SCRIPT_CLOSE.search(html, opening.end()) if closed else None
        closed = bool(closing)
        position = closing.end() if closing else opening.end()  # unclosed: drop the tag only
    kept.append(html[position:])
    html = _SCRIPT_CLOSE.sub("", "".join(kept))
    handlers = 0

    def drop_handlers(name: str, value: str) -> str | None:
        nonlocal handlers
        if name.startswith("on"):
            handlers += 1
            return None
        return value

    html = _edit_attributes(html, drop_handlers)
    removed = [_count(number, noun) for number, noun in
               ((scripts, "<script> element"), (handlers, "on… event attribute"))
               if number]
    if removed:
        warnings.append(f"Removed {' and '.join(removed)} from the HTML; mail clients ignore "
                        "them.")
    return html


def _edit_images(html: str, target: Callable[[str], str | None]) -> str:
    """Points image references that ``target`` knows (it gets the URL) at cid:<content id>."""
    def edit(name: str, value: str) -> str | None:
        if name in IMAGE_ATTRIBUTES and value:
            content_id = target(htmllib.unescape(value).strip())
            if content_id:
                return f"cid:{content_id}"
        return value

    return _edit_attributes(html, edit)


def _edit_attributes(html: str, edit: Callable[[str, str], str | None]) -> str:
    """Rewrites the tags whose attributes ``edit`` (lower-cased name, raw value, "" for a bare
    attribute) changes: None drops the attribute, a new value replaces it."""
    def tag(match: re.Match[str]) -> str:
        changed = False

        def attribute(found: re.Match[str]) -> str:
            nonlocal changed
            space, name, equals, quoted = found.groups()
            value = quoted or ""
            if quoted and quoted[0] in "\"'":
                value = quoted[1:-1]
            edited = edit(name.lower(), value)
            if edited == value:
                return found.group(0)
            changed = True
            if edited is None:
                return ""
            quote = quoted[0] if quoted and quoted[0] in "\"'" else '"'
            return f"{space}{name}{equals or '='}{quote}{edited}{quote}"

        rest = _ATTRIBUTE.sub(attribute, match.group(2))
        return f"<{match.group(1)}{rest}>" if changed else match.group(0)

    return _TAG.sub(tag, html)


def _warn_missing_images(mail: ImportedMail) -> None:
    known = {asset.content_id.lower() for asset in mail.assets if asset.content_id}
    missing: list[str] = []

    def check(name: str, value: str) -> str:
        ref = htmllib.unescape(value).strip()
        if name in IMAGE_ATTRIBUTES and ref and not _is_remote(ref) \
                and not ref.lower().startswith("data:") and ref not in missing:
            if not ref.lower().startswith("cid:") or unquote(ref[4:]).lower() not in known:
                missing.append(ref)
        return value

    _edit_attributes(mail.html, check)
    if missing:
        mail.warnings.append("The HTML refers to images that were not included: "
                             + ", ".join(missing) + ".")


def _is_remote(ref: str) -> bool:
    return ref.lower().startswith(("http://", "https://", "//"))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
