"""Creating what the engine sends: a bulk send to a segment, or one transactional message. The
one write path for the UI, the API and the CLI, so all of them refuse the same content."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

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
        try:
            _SYNTAX.parse(getattr(content, name))
        except TemplateSyntaxError as error:
            errors.append(FieldError(name, _("Line %(line)s: %(message)s") % {
                "line": error.lineno, "message": error.message}))
    if not content.from_address.strip():
        errors.append(FieldError("from_address", _("A sender address is required.")))
    for name in ("from_address", "reply_to"):
        try:
            setattr(content, name, normalize_email(getattr(content, name)))
        except FieldError as error:
            errors.append(FieldError(name, error.message))
    return errors


def _content_fields(content: Content) -> dict:
    return {"subject": content.subject, "html": content.html, "text": content.text,
            "from_address": content.from_address, "from_name": content.from_name,
            "reply_to": content.reply_to, "tracking": content.tracking,
            "charset": content.charset, "conditions": content.conditions}


def _store_files(content: Content, source: Source) -> None:
    SourceFile.objects.bulk_create(
        SourceFile(source=source, filename=f.filename, content_type=f.content_type, data=f.data,
                   content_id=f.content_id) for f in content.files)


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
    _store_files(content, source)
    return source


@transaction.atomic
def enqueue_message(workspace, content: Content, *, to: str | None = None,
                    member: Member | None = None, data: dict | None = None,
                    urgent: bool = False, name: str = "", created_by=None,
                    send_at: dt.datetime | None = None) -> Delivery:
    """One transactional message to a member or an external address, queued at once (or held
    until ``send_at``, when the scheduler starts its source).

    Transactional mail is the stream an unsubscribed member still receives (an order
    confirmation, an outage notice); a suppressed address or a bounced, complained or blocked
    member is skipped with the reason, so the log says why it did not go."""
    errors = check_content(content)
    address = ""
    if member is not None:
        address = member.email
        if not address:
            errors.append(FieldError("to", _("This member has no email address.")))
    elif to:
        try:
            address = normalize_email(to)
        except FieldError as error:
            errors.append(FieldError("to", error.message))
        else:
            member = Member.objects.filter(workspace=workspace, email=address).first()
    else:
        errors.append(FieldError("to", _("Say whom to send to.")))
    if errors:
        raise ContentRefused(errors)
    now = timezone.now()
    later = send_at is not None and send_at > now
    priority = Priority.URGENT if urgent else Priority.NORMAL
    source = Source.objects.create(
        workspace=workspace, kind=Source.Kind.TRANSACTIONAL, name=name or content.subject[:200],
        status=Source.Status.SCHEDULED if later else Source.Status.RUNNING, priority=priority,
        created_by=created_by, total=1, scheduled_at=send_at if later else None,
        started_at=None if later else now, **_content_fields(content))
    _store_files(content, source)
    reason = _transactional_skip_reason(workspace, address, member, now)
    status = "skipped" if reason else "held" if later else "queued"
    return Delivery.objects.create(
        workspace=workspace, source=source, member=member, address=address, priority=priority,
        data=data or None, status=status, skip_reason=reason, queued_at=now,
        next_attempt_at=send_at if later else now, finished_at=now if reason else None)


def _transactional_skip_reason(workspace, address, member, now) -> str:
    if member is not None and member.status in (Member.Status.BOUNCED, Member.Status.COMPLAINED,
                                                Member.Status.BLOCKED):
        return member.status
    suppressed = Suppression.objects.filter(workspace=workspace, kind="email", value=address)
    if suppressed.exclude(expires_at__lte=now).exists():
        return "suppressed"
    return ""
