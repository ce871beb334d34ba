"""Creating what the engine sends: a bulk send to a segment, or one transactional message. The
one write path for the UI, the API and the CLI, so all of them refuse the same content."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from tayori.delivery import signals
from tayori.delivery.models import Delivery, Priority, Source, SourceFile
from tayori.members.models import Member, Suppression
from tayori.members.values import FieldError, normalize_email

CONTENT_FIELDS = ("subject", "html", "text")
_SYNTAX = SandboxedEnvironment()


class ContentRefused(ValueError):
    """Content or recipient that cannot be sent; `errors` name the field and why."""

    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


@dataclass
class File:
    """An attachment, or an inline image when it has a content id (``cid:`` in the HTML)."""

    filename: str
    content_type: str
    data: bytes
    content_id: str = ""


@dataclass
class Content:
    """What a message says and who it is from (templates are Jinja2, rendered per recipient).
    ``conditions`` are the segment definitions a template made from blocks tests as
    ``shown[i]`` (see content.blocks.assemble)."""

    subject: str
    from_address: str
    html: str = ""
    text: str = ""
    from_name: str = ""
    reply_to: str = ""
    tracking: bool = True
    charset: str = "utf-8"
    conditions: list = field(default_factory=list)
    files: list[File] = field(default_factory=list)


def check_content(content: Content) -> list[FieldError]:
    """Problems an operator must fix before anything is queued: missing parts, template syntax
    errors with their line, and sender addresses that are not addresses."""
    errors = []
    if not content.subject.strip():
        errors.append(FieldError("subject", _("A subject is required.")))
    if not content.html.strip() and not content.text.strip():
        errors.append(FieldError("html", _("Give an HTML body, a text body or both.")))
    for name in CONTENT_FIELDS:
        problem = _syntax_error(getattr(content, name))
        if problem:
            errors.append(FieldError(name, _("Line %(line)s: %(message)s") % {
                "line": problem[0], "message": problem[1]}))
    if not content.from_address.strip():
        errors.append(FieldError("from_address", _("A sender address is required.")))
    for name in ("from_address", "reply_to"):
        try:
            setattr(content, name, normalize_email(getattr(content, name)))
        except FieldError as error:
            errors.append(FieldError(name, error.message))
    return errors


@functools.lru_cache(maxsize=256)
def _syntax_error(template: str) -> tuple[int, str] | None:
    """Where a template's syntax breaks, if it does. Cached: a batch of a thousand order mails
    usually shares one template."""
    try:
        _SYNTAX.parse(template)
    except TemplateSyntaxError as error:
        return error.lineno, error.message
    return None


def _content_fields(content: Content) -> dict:
    return {"subject": content.subject, "html": content.html, "text": content.text,
            "from_address": content.from_address, "from_name": content.from_name,
            "reply_to": content.reply_to, "tracking": content.tracking,
            "charset": content.charset, "conditions": content.conditions}


def _source_files(content: Content, source: Source):
    return (SourceFile(source=source, filename=f.filename, content_type=f.content_type,
                       data=f.data, content_id=f.content_id) for f in content.files)


def create_bulk(workspace, content: Content, *, name: str, segment, created_by=None,
                scheduled_at: dt.datetime | None = None, **options) -> Source:
    """A bulk send to a segment, as a draft or scheduled for `scheduled_at`. Options are the
    Source's control fields (once_per_address, quiet hours, max_per_hour, contacts)."""
    errors = check_content(content)
    if segment is None or segment.workspace_id != workspace.pk:
        errors.append(FieldError("segment", _("Choose a segment of this workspace.")))
    if errors:
        raise ContentRefused(errors)
    source = Source.objects.create(
        workspace=workspace, kind=Source.Kind.BULK, name=name, segment=segment,
        created_by=created_by, scheduled_at=scheduled_at,
        status=Source.Status.SCHEDULED if scheduled_at else Source.Status.DRAFT,
        **_content_fields(content), **options)
    SourceFile.objects.bulk_create(_source_files(content, source))
    return source


@dataclass
class Message:
    """One transactional message asked for: to a member, or to an address (matched to a member
    of the workspace when there is one)."""

    content: Content
    to: str | None = None
    member: Member | None = None
    data: dict | None = None
    urgent: bool = False
    send_at: dt.datetime | None = None
    name: str = ""


def enqueue_message(workspace, content: Content, *, to: str | None = None,
                    member: Member | None = None, data: dict | None = None,
                    urgent: bool = False, name: str = "", created_by=None,
                    send_at: dt.datetime | None = None) -> Delivery:
    """One transactional message (see ``enqueue_messages``); raises ContentRefused."""
    result = enqueue_messages(workspace, [Message(content, to, member, data, urgent, send_at,
                                                  name)], created_by=created_by)[0]
    if isinstance(result, ContentRefused):
        raise result
    return result


@transaction.atomic
def enqueue_messages(workspace, messages: list[Message], *,
                     created_by=None) -> list[Delivery | ContentRefused]:
    """Transactional messages queued at once (or held until ``send_at``, when the scheduler
    starts their source), each answered in order by its Delivery or by why it was refused.

    Transactional mail is the stream an unsubscribed member still receives (an order
    confirmation, an outage notice); a suppressed address or a bounced, complained or blocked
    member is skipped with the reason, so the log says why it did not go. A batch costs a few
    statements whatever its size: members and suppressions are looked up for all at once, and
    sources and deliveries are inserted in bulk."""
    now = timezone.now()
    results: list = [None] * len(messages)
    addressed: list[tuple[int, Message, str]] = []
    for index, message in enumerate(messages):
        errors = check_content(message.content)
        address = _address(message, errors)
        if errors:
            results[index] = ContentRefused(errors)
        else:
            addressed.append((index, message, address))
    if not addressed:
        return results
    addresses = {address for _i, _m, address in addressed}
    members = {m.email: m for m in Member.objects.filter(
        workspace=workspace, email__in=[a for _i, m, a in addressed if m.member is None])}
    suppressed = set(Suppression.objects.filter(
        workspace=workspace, kind="email", value__in=addresses).exclude(
        expires_at__lte=now).values_list("value", flat=True))
    sources = Source.objects.bulk_create(
        _source(workspace, message, now, created_by) for _i, message, _a in addressed)
    SourceFile.objects.bulk_create(
        file for source, (_i, message, _a) in zip(sources, addressed, strict=True)
        for file in _source_files(message.content, source))
    rows = []
    for source, (_index, message, address) in zip(sources, addressed, strict=True):
        member = message.member or members.get(address)
        reason = (member.status if member is not None and member.status in _NOT_REACHED
                  else "suppressed" if address in suppressed else "")
        later = source.scheduled_at is not None
        rows.append(Delivery(
            workspace=workspace, source=source, member=member, address=address,
            priority=source.priority, data=message.data or None,
            status="skipped" if reason else "held" if later else "queued", skip_reason=reason,
            queued_at=now, next_attempt_at=source.scheduled_at or now,
            finished_at=now if reason else None))
    deliveries = Delivery.objects.bulk_create(rows)
    for (index, _m, _a), delivery in zip(addressed, deliveries, strict=True):
        results[index] = delivery
    signals.emit("queued", deliveries)
    return results


# Members whose address no mail of any stream reaches.
_NOT_REACHED = (Member.Status.BOUNCED, Member.Status.COMPLAINED, Member.Status.BLOCKED)


def _address(message: Message, errors: list[FieldError]) -> str:
    if message.member is not None:
        if not message.member.email:
            errors.append(FieldError("to", _("This member has no email address.")))
        return message.member.email
    if not message.to:
        errors.append(FieldError("to", _("Say whom to send to.")))
        return ""
    try:
        address = normalize_email(message.to)
    except FieldError as error:
        errors.append(FieldError("to", error.message))
        return ""
    if not address:  # only spaces
        errors.append(FieldError("to", _("Say whom to send to.")))
    return address


def _source(workspace, message: Message, now: dt.datetime, created_by) -> Source:
    later = message.send_at is not None and message.send_at > now
    content = message.content
    return Source(
        workspace=workspace, kind=Source.Kind.TRANSACTIONAL,
        name=message.name or content.subject[:200],
        status=Source.Status.SCHEDULED if later else Source.Status.RUNNING,
        priority=Priority.URGENT if message.urgent else Priority.NORMAL, created_by=created_by,
        total=1, scheduled_at=message.send_at if later else None,
        started_at=None if later else now, **_content_fields(content))
