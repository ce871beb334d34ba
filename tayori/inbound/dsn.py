"""Reading a message that came back to a bounce address into a `Report`: a delivery report
(RFC 3464, RFC 6533), a complaint (ARF, RFC 5965), an auto-reply (RFC 3834) or a bounce in an
MTA's own words (qmail, Exim, old Sendmail, Exchange, carriers), with each failed recipient
classified by `reasons` and the original message identified for matching.

Pure parsing, no database; `parse` never raises.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import compat32

from flufl.bounce import all_failures

from tayori.inbound.reasons import classify, status_in

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Failure:
    recipient: str          # the original recipient, domain lower-cased; '' if not found
    status: str = ""        # enhanced status code, '5.1.1'
    reply_code: int | None = None
    diagnostic: str = ""    # the server's reply (Diagnostic-Code without 'smtp;'), <= 1000 chars
    remote_mta: str = ""
    action: str = ""        # failed, delayed or ''
    reason: str = "undefined"
    hard: bool = False


@dataclass(slots=True)
class Report:
    kind: str               # bounce, delay (warnings only), complaint, autoreply, other
    failures: list[Failure]
    reporting_mta: str = ""
    original_message_id: str = ""   # without angle brackets
    original_return_path: str = ""  # Tayori's VERP address, bounce+<token>@<bounce domain>
    original_recipients: list[str] = field(default_factory=list)
    feedback_type: str = ""         # ARF: abuse, fraud, virus, other, not-spam...
    user_agent: str = ""            # ARF User-Agent
    subject: str = ""               # the report's own, decoded
    sender: str = ""                # the report's From address


# compat32 is the fastest policy by far (the default policy builds header objects for every
# field) and keeps 8-bit bytes recoverable as surrogates.
_PARSER = BytesParser(policy=compat32)
_HEADERS = HeaderParser(policy=compat32)
# A report puts its own parts first; past this only the returned message's body gets cut, and
# only its headers matter. Bounded so a 20 MB returned attachment costs nothing.
_MAX_RAW = 256 * 1024
_MAX_TEXT = 64 * 1024
_MAX_DIAGNOSTIC = 1000

_ADDRESS = re.compile(r"[^\s<>;:,\"'()\[\]]+@[^\s<>;:,\"'()\[\]]+")
_ANGLED = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
_TYPE_PREFIX = re.compile(r"^\s*[\w.-]+\s*;\s*")
_REPLY_CODE = re.compile(r"(?<![\w.\[/-])([245]\d\d)(?:[ -]|$)", re.MULTILINE)
# The SMTP command a reply answered, as Postfix and Exim write it in their notices.
_STAGE = re.compile(r"(?:in reply to|after) (?:end of )?(?:mail from|rcpt to|data)\b", re.IGNORECASE)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_DSN_FIELDS = re.compile(r"^(final|original)-recipient\s*:", re.IGNORECASE | re.MULTILINE)
_ORIGINAL_PARTS = ("message/rfc822", "message/global", "text/rfc822-headers",
                   "message/rfc822-headers", "message/global-headers", "text/global-headers")

_DAEMON = re.compile(
    r"^(mailer-?daemon|mail-?daemon|postmaster|mdaemon|microsoftexchange\w*|mail\.?delivery\w*)@",
    re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status|fail|problem|report|notification)|returned mail|failure notice"
    r"|mail delivery|could not be delivered|non-?delivery|mail system error|delivery has failed"
    r"|配信不能|配送エラー|送信エラー|エラーメール", re.IGNORECASE)
_WARNING_SUBJECT = re.compile(r"delay|warning|遅延", re.IGNORECASE)
# Where a bounce in prose quotes the message it returns (Exim, qmail/Yahoo, Sendmail, Exchange).
_ORIGINAL_MARKER = re.compile(
    r"^[ \t-]*(this is a copy of the message|below this line is a copy of the message"
    r"|(original|unsent|returned) message (follows|headers)|message headers follow)",
    re.IGNORECASE | re.MULTILINE)
# The original's fields Tayori matches on, wherever its headers are found.
_WANTED = ("message-id", "return-path", "to", "x-original-to", "from", "x-hmxmroriginalrecipient")
_HEADER_LINE = re.compile(rf"^[ \t>]*({'|'.join(_WANTED)})[ \t]*:[ \t]*(.*(?:\r?\n[ \t]+.*)*)",
                          re.IGNORECASE | re.MULTILINE)
# A failed address on a line of its own, "<x@y>:" (qmail, carriers) or "Recipient: <x@y>".
_LISTED = re.compile(r"^[ \t]*(?:recipient:[ \t]*)?<([^\s<>@]+@[^\s<>@]+)>"
                     r"|^[ \t]*([^\s<>@]+@[^\s<>@]+?)[ \t]*$"
                     r"|rcpt to:[ \t]*<([^\s<>@]+@[^\s<>@]+)>", re.IGNORECASE | re.MULTILINE)

_AUTOREPLY_SUBJECT = re.compile(
    r"^\W*(auto(matic)?[- ]?(reply|response|answer)|autoreply|out of (the )?office"
    r"|away from (my |the )?(mail|e-?mail|office|desk)|on vacation|vacation reply"
    r"|abwesenheit|réponse automatique|自動応答|自動返信|不在|休暇中)", re.IGNORECASE)
_AUTOREPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder",
                      "X-MS-Exchange-Inbox-Rules-Loop")

_CODECS = {"shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
           "windows-31j": "cp932", "iso-2022-jp": "iso2022_jp_ext", "euc-jp": "euc_jis_2004"}


# The standard library's parser compiles a regular expression for each multipart boundary, and
# every report has its own (a third of the parse, measured): the report's own boundary is
# renamed to one fixed name first, so the compiled expression comes from the cache.
_BOUNDARY = re.compile(rb'boundary\s*=\s*"?([^";\r\n]{1,70})"?', re.IGNORECASE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIXED_BOUNDARY = b"=_tayori.report.boundary_="


def _fixed_boundary(raw: bytes) -> bytes:
    end = _HEADER_END.search(raw)
    found = _BOUNDARY.search(raw, 0, end.start() if end else len(raw))
    if not found or _FIXED_BOUNDARY in raw:
        return raw
    boundary = found.group(1).rstrip()
    # An inner part whose boundary begins with this one would be cut apart: leave it as it is.
    if any(other.group(1).rstrip() != boundary and other.group(1).startswith(boundary)
           for other in _BOUNDARY.finditer(raw, found.end())):
        return raw
    # Only where it is a boundary: in the header's parameter and after "--" on a line.
    head, body = raw[:found.end()], raw[found.end():]
    head = head[:found.start(1)] + _FIXED_BOUNDARY + head[found.start(1) + len(found.group(1)):]
    return head + body.replace(b"\n--" + boundary, b"\n--" + _FIXED_BOUNDARY)


def parse(raw: bytes) -> Report:
    """Never raises on malformed input (kind 'other' with no failures). A typical 5 KB report
    takes a few hundred microseconds, most of it in the standard library's MIME parser."""
    try:
        return _read(_PARSER.parsebytes(_fixed_boundary(raw[:_MAX_RAW])))
    except Exception:  # whatever arrives at the bounce address must not stop the queue
        log.warning("unreadable inbound report", exc_info=True)
        return Report(kind="other", failures=[])


def _read(msg: Message) -> Report:
    report = Report(kind="other", failures=[], subject=_header_text(_raw(msg, "Subject")),
                    sender=_address(_header_text(_raw(msg, "From"))))
    leaves = list(_leaves(msg))
    report_type = str(msg.get_param("report-type", "")).lower()
    if report_type == "feedback-report" or any(c == "message/feedback-report" for c, _p in leaves):
        _read_arf(report, leaves)
        return report
    bounce_like = _bounce_like(msg, report)
    blocks = _dsn_blocks(leaves)
    text = _body_text(leaves) if blocks or report_type or bounce_like else ""
    if not blocks and (report_type or bounce_like) and _DSN_FIELDS.search(text):
        blocks = _blocks(text)  # some MTAs write the fields into a text/plain body
    if blocks:
        _read_dsn(report, blocks, text)
    elif bounce_like:
        _read_prose(report, msg, leaves, text)
    # A report that named no failure stays "other" (Exim marks its reports auto-replied too).
    elif _is_autoreply(msg, report.subject):
        report.kind = "autoreply"
    elif _jmrp(report, leaves):
        report.kind, report.feedback_type = "complaint", "abuse"
    if report.kind in ("bounce", "delay"):
        _find_original(report, leaves, text)
    return report


# -- RFC 3464 / RFC 6533 delivery status -------------------------------------------------------

def _dsn_blocks(leaves: list[tuple[str, Message]]) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    for ctype, part in leaves:
        payload = part.get_payload()
        if ctype == "message/delivery-status":
            # The parser already split the blocks (one Message each).
            blocks += ([_fields(block) for block in payload] if isinstance(payload, list)
                       else _blocks(_decoded(part)))
        elif ctype == "message/global-delivery-status":
            # UTF-8 fields; the parser took it for a message: its headers are the first block.
            if isinstance(payload, list) and payload:
                blocks.append(_fields(payload[0]))
                rest = payload[0].get_payload(decode=True)
                blocks += _blocks(_bytes_text(rest, "utf-8")) if isinstance(rest, bytes) else []
            else:
                blocks += _blocks(_decoded(part))
    return blocks


def _read_dsn(report: Report, blocks: list[dict[str, str]], notice: str) -> None:
    """notice: the human-readable part, whose sentence for a recipient can say what the fields
    do not (Postfix's "in reply to MAIL FROM command", Exim's "Unrouteable address")."""
    failed = []
    for block in blocks:
        if "reporting-mta" in block and not report.reporting_mta:
            report.reporting_mta = _untyped(block["reporting-mta"])
        if not report.original_return_path and "x-postfix-sender" in block:
            report.original_return_path = _address(block["x-postfix-sender"])
        if not report.original_message_id and "x-original-message-id" in block:
            report.original_message_id = _angled(block["x-original-message-id"])  # Gmail
        final = _address(_untyped(block.get("final-recipient", "")))
        original = _address(_untyped(block.get("original-recipient", "")))
        _add_recipients(report, original, final)
        action = (block.get("action", "").split() or [""])[0].lower()
        if (final or original) and action in ("failed", "delayed", ""):
            failed.append((original or final, action, block))  # not delivered/relayed/expanded
    recipients = [recipient for recipient, _action, _block in failed]
    for recipient, action, block in failed:
        diagnostic = _clip(_untyped(block.get("diagnostic-code", "")))
        status = status_in(block.get("status", ""))
        if not status or status.endswith(".0.0"):
            status = status_in(diagnostic) or status
        context = _near(notice, recipient, recipients) if notice else ""
        if not diagnostic:  # Exim and Sendmail leave it out and say it in the notice
            diagnostic, context = context, ""
        else:  # the fields said the rest; the classifier reads less text
            context = " ".join(_STAGE.findall(context))
        report.failures.append(_failure(
            recipient, diagnostic, status=status, remote_mta=_untyped(block.get("remote-mta", "")),
            action=action, context=context))
    _settle_kind(report)


def _failure(recipient: str, diagnostic: str, *, status: str = "", remote_mta: str = "",
             action: str = "", context: str = "") -> Failure:
    found = _REPLY_CODE.match(diagnostic)
    reply_code = int(found.group(1)) if found else None
    verdict = classify(status=status, reply_code=reply_code,
                       diagnostic=f"{diagnostic}\n{context}" if context else diagnostic,
                       recipient=recipient, remote_mta=remote_mta, action=action)
    return Failure(recipient, status=status or status_in(diagnostic), reply_code=reply_code,
                   diagnostic=diagnostic, remote_mta=remote_mta, action=action,
                   reason=verdict.reason, hard=verdict.hard)


def _settle_kind(report: Report) -> None:
    if any(f.action != "delayed" for f in report.failures):
        report.kind = "bounce"
    elif report.failures:
        report.kind = "delay"  # a warning: the MTA is still trying


# -- RFC 5965 feedback reports -------------------------------------------------------------------

def _read_arf(report: Report, leaves: list[tuple[str, Message]]) -> None:
    report.kind = "complaint"
    for ctype, part in leaves:
        if ctype == "message/feedback-report":
            payload = part.get_payload()
            fields = payload[0] if isinstance(payload, list) and payload else \
                _HEADERS.parsestr(_decoded(part), headersonly=True)
            report.feedback_type = (fields.get("Feedback-Type") or "").strip().lower()
            report.user_agent = _header_text(fields.get("User-Agent"))
            for value in fields.get_all("Original-Rcpt-To") or []:
                _add_recipients(report, *_addresses(value))
            report.original_return_path = _address(fields.get("Original-Mail-From") or "")
            break
    _find_original(report, leaves, "")


def _jmrp(report: Report, leaves: list[tuple[str, Message]]) -> bool:
    """Outlook.com's older complaint format: not ARF, the original attached with the
    complaining recipient in X-HmXmrOriginalRecipient."""
    for ctype, part in leaves:
        payload = part.get_payload()
        if ctype == "message/rfc822" and isinstance(payload, list) and payload \
                and payload[0].get("X-HmXmrOriginalRecipient"):
            _find_original(report, leaves, "")
            return True
    return False


# -- bounces in prose ----------------------------------------------------------------------------

def _read_prose(report: Report, msg: Message, leaves: list[tuple[str, Message]],
                text: str) -> None:
    marker = _ORIGINAL_MARKER.search(text)
    section = text[:marker.start()] if marker else text
    failed: dict[str, str] = {}
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # flufl's heuristics choke on some inputs; the other sources still count
        log.debug("flufl.bounce failed", exc_info=True)
        temporary, permanent = frozenset(), frozenset()
    for raw in permanent:
        failed.setdefault(_address(raw.decode("ascii", "replace")), "failed")
    for value in msg.get_all("X-Failed-Recipients") or []:
        for address in _addresses(value):
            failed.setdefault(address, "failed")
    for raw in temporary:
        failed.setdefault(_address(raw.decode("ascii", "replace")), "delayed")
    if not failed:
        # A carrier or appliance flufl does not know: the addresses it lists on their own line.
        warning = "delayed" if _WARNING_SUBJECT.search(report.subject) else "failed"
        for found in _LISTED.finditer(section):
            failed.setdefault(_address(next(filter(None, found.groups()))), warning)
    ours = _ours(report, msg, _original(leaves, text))
    failed = {address: action for address, action in failed.items()
              if address and address.lower() not in ours}
    lowered = section.lower()
    first = min((i for i in (lowered.find(a.lower()) for a in failed) if i >= 0), default=0)
    # The summary above the list can name the cause ("The user(s) account is disabled.").
    context = section[max(0, first - 300):first]
    for address, action in failed.items():
        report.failures.append(_failure(address, _near(section, address, list(failed)),
                                        action=action, context=context))
    _settle_kind(report)


def _near(section: str, address: str, recipients: list[str]) -> str:
    """The SMTP reply (or, failing that, the words) that follows an address, up to a blank line
    or the next failed recipient (Exim lists them without one)."""
    lowered, target = section.lower(), address.lower()
    others = [r.lower() for r in recipients if r.lower() != target]
    fallback, start = "", 0
    for _ in range(6):
        at = lowered.find(target, start)
        if at < 0:
            break
        start = at + len(target)
        blank = _BLANK_LINE.search(section, start)
        ends = [blank.start() if blank else len(section), start + 1500]
        ends += [i for i in (lowered.find(other, start) for other in others) if i >= 0]
        paragraph = section[start:min(ends)]
        code = _REPLY_CODE.search(paragraph)
        if code:
            return _clip(paragraph[code.start(1):])
        if status_in(paragraph):
            return _clip(paragraph.lstrip(" \t>:"))
        fallback = fallback or paragraph.lstrip(" \t>:")
    return _clip(fallback)


def _ours(report: Report, msg: Message, original: dict[str, str]) -> set[str]:
    """Our own addresses, which heuristics may take for failed recipients."""
    ours = [report.sender, *_addresses(original.get("from", "")),
            *_addresses(original.get("return-path", ""))]
    for name in ("To", "Cc", "Delivered-To", "X-Original-To"):
        ours += [a for value in msg.get_all(name) or [] for a in _addresses(value)]
    return {address.lower() for address in ours}


# -- the original message ------------------------------------------------------------------------

def _original(leaves: list[tuple[str, Message]], text: str) -> dict[str, str]:
    """The fields of the message a report returns: attached, or quoted after a marker in the
    text (or, without a marker, only its IDs from anywhere in the text)."""
    for ctype, part in leaves:
        if ctype in _ORIGINAL_PARTS:
            payload = part.get_payload()
            if not isinstance(payload, list):
                return _header_fields(_decoded(part))
            fields: dict[str, str] = {}
            for name, value in payload[0].raw_items() if payload else ():
                name, value = name.lower(), _raw8(value)
                if name in _WANTED:  # all To fields, the first of the others
                    fields[name] = f"{fields[name]}, {value}" if name == "to" and name in fields \
                        else fields.get(name, value)
            return fields
    marker = _ORIGINAL_MARKER.search(text)
    if not marker:
        found = _header_fields(text)
        return {name: found[name] for name in ("message-id", "return-path") if name in found}
    quoted = text[marker.end():].partition("\n")[2].lstrip()
    end = _BLANK_LINE.search(quoted)
    return _header_fields(quoted[:end.start()] if end else quoted)


def _header_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for found in _HEADER_LINE.finditer(text):
        fields.setdefault(found.group(1).lower(), found.group(2))
    return fields


def _find_original(report: Report, leaves: list[tuple[str, Message]], text: str) -> None:
    """Message-ID, Return-Path and recipients of the message the report is about."""
    original = _original(leaves, text)
    report.original_message_id = (report.original_message_id
                                  or _angled(original.get("message-id", "")))
    return_path = _angled(original.get("return-path", ""))
    if "@" in return_path:
        report.original_return_path = _address(return_path)
    for name in ("x-hmxmroriginalrecipient", "x-original-to", "to"):
        _add_recipients(report, *_addresses(original.get(name, "")))


def _add_recipients(report: Report, *addresses: str) -> None:
    for address in addresses:
        if address and address not in report.original_recipients:
            report.original_recipients.append(address)


# -- what kind of message ------------------------------------------------------------------------

def _bounce_like(msg: Message, report: Report) -> bool:
    if msg.get("X-Failed-Recipients") or _DAEMON.match(report.sender):
        return True
    automatic = (msg.get("Return-Path") or "").strip() == "<>" or msg.get("Auto-Submitted")
    return bool(automatic and _BOUNCE_SUBJECT.search(report.subject))


def _is_autoreply(msg: Message, subject: str) -> bool:
    """RFC 3834 and the de-facto markers of vacation and out-of-office replies."""
    if (msg.get("Auto-Submitted") or "").strip().lower().startswith("auto-replied"):
        return True
    if any(str(msg.get(name, "no")).strip().lower() not in ("no", "false", "0")
           for name in _AUTOREPLY_HEADERS):
        return True
    if (msg.get("Precedence") or "").strip().lower() == "auto_reply":
        return True
    return bool(_AUTOREPLY_SUBJECT.search(subject))


# -- MIME and text helpers -----------------------------------------------------------------------

def _leaves(part: Message, depth: int = 0) -> Iterator[tuple[str, Message]]:
    """The parts of a message, not descending into attached messages."""
    ctype = part.get_content_type()
    payload = part.get_payload()
    if ctype.startswith("multipart/") and isinstance(payload, list) and depth < 5:
        for sub in payload:
            yield from _leaves(sub, depth + 1)
    else:
        yield ctype, part


def _body_text(leaves: list[tuple[str, Message]]) -> str:
    chunks, size = [], 0
    for ctype, part in leaves:
        if ctype == "text/plain" and size < _MAX_TEXT:
            chunks.append(_decoded(part))
            size += len(chunks[-1])
    if not chunks:  # an HTML-only notice: its words are enough
        html = next((_decoded(part) for ctype, part in leaves if ctype == "text/html"), "")
        chunks.append(re.sub(r"<[^>]*>", " ", html))
    return "\n\n".join(chunks)[:_MAX_TEXT].replace("\r\n", "\n")


def _decoded(part: Message) -> str:
    data = part.get_payload(decode=True)
    return _bytes_text(data[:_MAX_TEXT], part.get_content_charset()) \
        if isinstance(data, bytes) else ""


def _bytes_text(data: bytes, charset: str | None) -> str:
    if not charset and b"\x1b$" in data:
        charset = "iso-2022-jp"
    if charset:
        try:
            return data.decode(_CODECS.get(charset.lower(), charset), "replace")
        except LookupError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp932", "replace")  # 8-bit without a charset: Shift_JIS in Japan


def _raw8(value: str) -> str:
    """A str from the compat32 parser whose 8-bit bytes were kept as surrogates, decoded."""
    if value.isascii():
        return value
    try:
        return _bytes_text(value.encode("ascii", "surrogateescape"), None)
    except UnicodeEncodeError:
        return value


def _raw(msg: Message, name: str) -> str | None:
    """A header as received: compat32's get() replaces 8-bit text (raw UTF-8 subjects)."""
    name = name.lower()
    return next((value for key, value in msg.raw_items() if key.lower() == name), None)


def _header_text(value: object) -> str:
    if not value:
        return ""
    value = str(value)[:2000]
    try:
        chunks = decode_header(value)
    except Exception:  # a broken encoded word: keep the raw text
        return _raw8(value)
    text = "".join(_raw8(chunk) if isinstance(chunk, str) else _bytes_text(chunk, charset)
                   for chunk, charset in chunks)
    return " ".join(text.split())


def _fields(block: Message) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in block.raw_items():
        fields.setdefault(name.strip().lower(), " ".join(_raw8(str(value)).split()))
    return fields


def _blocks(text: str) -> list[dict[str, str]]:
    """Delivery-status fields in plain text: blank-line separated blocks, folded lines."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current, name = {}, ""
        elif line[0] in " \t":
            if name:
                current[name] += " " + line.strip()
        else:
            key, colon, value = line.partition(":")
            name = key.strip().lower() if colon and _FIELD_NAME.fullmatch(key.strip()) else ""
            if name in current:
                name = ""
            elif name:
                current[name] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def _untyped(value: str) -> str:
    """A DSN field without its type: 'rfc822; a@b', 'dns; mx.example', 'smtp; 550 ...'."""
    return _TYPE_PREFIX.sub("", value, count=1).strip()


def _clip(text: str) -> str:
    return " ".join(text.split())[:_MAX_DIAGNOSTIC]


def _angled(value: str) -> str:
    found = re.search(r"<([^<>]*)>", value)
    return (found.group(1) if found else value).strip()


def _addresses(value: str) -> list[str]:
    return [_normal(found) for found in _ADDRESS.findall(value or "")]


def _address(value: str) -> str:
    """The address in a field: the bracketed one if there is one ('Name <a@b>')."""
    found = _ANGLED.search(value)
    if found:
        return _normal(found.group(1))
    found = _ADDRESS.search(value)
    return _normal(found.group(0)) if found else ""


def _normal(address: str) -> str:
    local, _at, domain = address.strip().strip(".").rpartition("@")
    if local.lower().startswith("mailto:"):
        local = local[7:]
    return f"{local}@{domain.lower()}" if local and domain else ""
