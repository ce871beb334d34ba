"""Transactional messages by API: one, or a batch of up to 1,000, by template or inline content,
to a member (by id, email or phone) or — where the key may — to any address; with merge data,
attachments, urgent or normal priority and an optional later time. A message's status comes
back with its event history.

Every write goes through ``tayori.delivery.sending``, so the API refuses what the UI refuses.
"""

import base64
import binascii
import datetime as dt
import mimetypes
import re
from typing import Literal

from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Path, Router, Schema
from ninja.responses import Status

from tayori.accounts import audit
from tayori.api.auth import can, requires
from tayori.api.common import MAX_ID, InSchema, aware, errors, get_scoped
from tayori.api.delivery import DeliveryOut, refused, render_deliveries
from tayori.api.errors import ApiError, conflict, invalid
from tayori.content.blocks import assemble, shared_of
from tayori.content.models import SenderIdentity, Template, TemplateFile
from tayori.delivery import queue, sending
from tayori.delivery.models import Delivery
from tayori.members.models import Member
from tayori.members.values import FieldError, normalize_email, normalize_phone
from tayori.tracking.history import delivery_history

router = Router(tags=["Messages"])

BATCH_MAX = 1_000
MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024  # all of one message's files, decoded
MAX_SCHEDULE = dt.timedelta(days=30)
# Files mail filters quarantine on sight: refused here rather than bounced there.
BLOCKED_EXTENSIONS = frozenset({"exe", "bat", "cmd", "com", "scr", "pif", "js", "jse", "vbs",
                                "vbe", "wsf", "msi", "jar", "ps1", "hta", "cpl", "lnk"})


# What goes into MIME part headers verbatim: RFC 2045 tokens, and a plain Content-ID.
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,63}/[A-Za-z0-9!#$&^_.+-]{1,63}")
_CONTENT_ID = re.compile(r"[A-Za-z0-9._@-]{1,200}")


class AttachmentIn(InSchema):
    filename: str = Field(..., min_length=1, max_length=255)
    content: str = Field(..., description="The file, base64-encoded.")
    content_type: str = Field("", max_length=100, description="Guessed from the name if empty.")
    content_id: str = Field("", max_length=200, description="Set to show an image inline: "
                                                            "`<img src=\"cid:…\">`.")


class MessageIn(InSchema):
    # Recipient: exactly one of these.
    to: str | None = Field(None, max_length=254, description="An email address. Outside the "
                           "members needs the key's `messages.send_external`.")
    member_id: int | None = Field(None, ge=1, le=MAX_ID)
    phone: str | None = Field(None, max_length=40, description="A member's phone number; the "
                              "mail goes to that member's email address.")
    # Content: a template, or inline subject and body.
    template_id: int | None = Field(None, ge=1, le=MAX_ID)
    sender_id: int | None = Field(None, ge=1, le=MAX_ID, description="A sender identity: its "
                                  "address, name and footer details.")
    subject: str | None = Field(None, max_length=500, description="Jinja2 template; merge "
                                "fields like `{{ data.order_id }}`.")
    html: str = Field("", max_length=500_000)
    text: str = Field("", max_length=500_000)
    from_address: str = Field("", max_length=254, description="Required without sender_id.")
    from_name: str = Field("", max_length=200)
    reply_to: str = Field("", max_length=254)
    tracking: bool = True
    data: dict = Field(default_factory=dict, description="Merge data, e.g. line items: "
                       "`{% for item in data['items'] %}`.")
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    priority: Literal["urgent", "normal"] = "normal"
    send_at: dt.datetime | None = Field(None, description="Send later (within 30 days); "
                                        "naive times are in the workspace's zone.")

    model_config = {"json_schema_extra": {"examples": [{
        "to": "taro@example.jp", "priority": "urgent", "from_address": "support@example.jp",
        "subject": "【障害】{{ data.service }}の停止について",
        "text": "{{ data.service }}は{{ data.since }}から停止しています。",
        "data": {"service": "決済API", "since": "03:12"}}]}}


class EventOut(Schema):
    type: str = Field(description="queued, scheduled, deferred, sent, failed, skipped, "
                                  "cancelled, bounced, complained, opened, clicked, converted, "
                                  "unsubscribed")
    at: dt.datetime
    reply: str | None = None
    reason: str | None = Field(None, description="Why it was skipped, or a bounce's reason "
                                                 "(userunknown, mailboxfull, filtered…).")
    hard: bool | None = Field(None, description="Whether a bounce is permanent.")
    attempts: int | None = None
    next_attempt_at: dt.datetime | None = None
    machine: str | None = Field(None, description="Set when a scanner or privacy proxy, not "
                                                  "a person, opened or clicked.")
    link_index: int | None = None
    url: str | None = None
    value: int | None = None


class MessageOut(DeliveryOut):
    send_at: dt.datetime | None
    events: list[EventOut]


def _template_content(request, payload: MessageIn, identity) -> tuple:
    template = Template.objects.filter(workspace=request.workspace,
                                       pk=payload.template_id).first()
    if template is None:
        raise invalid("template_id", _("No template with this id."))
    assembled = assemble(template.content(), identity, shared_of(request.workspace))
    files = [sending.File(f.filename, f.content_type, bytes(f.data), f.content_id)
             for f in TemplateFile.objects.filter(template=template).order_by("pk")]
    return assembled, template.charset, files


def _content(request, payload: MessageIn) -> sending.Content:
    identity = None
    if payload.sender_id is not None:
        identity = SenderIdentity.objects.filter(workspace=request.workspace,
                                                 pk=payload.sender_id).first()
        if identity is None:
            raise invalid("sender_id", _("No sender identity with this id."))
    content = sending.Content(
        subject=payload.subject or "", html=payload.html, text=payload.text,
        from_address=payload.from_address or (identity.from_address if identity else ""),
        from_name=payload.from_name or (identity.from_name if identity else ""),
        reply_to=payload.reply_to or (identity.reply_to if identity else ""),
        tracking=payload.tracking, files=_attachments(payload.attachments))
    if payload.template_id is not None:
        if payload.subject or payload.html or payload.text:
            raise invalid("template_id", _("Give a template or inline subject and body, not "
                                           "both."))
        assembled, content.charset, files = _template_content(request, payload, identity)
        content.subject, content.html, content.text = (assembled.subject, assembled.html,
                                                       assembled.text)
        content.conditions, content.files = assembled.conditions, files + content.files
    return content


def _attachments(items: list[AttachmentIn]) -> list[sending.File]:
    files, total = [], 0
    for index, item in enumerate(items):
        field = f"attachments[{index}]"
        name = item.filename
        if any(c in name for c in "/\\\r\n\0"):
            raise invalid(f"{field}.filename", _("A file name may not contain slashes or line "
                                                 "breaks."))
        # Windows drops trailing dots and spaces: "setup.exe." runs as setup.exe.
        if name.rstrip(". ").rpartition(".")[2].lower() in BLOCKED_EXTENSIONS:
            raise invalid(f"{field}.filename", _("Programs and scripts cannot be attached: mail "
                                                 "filters would reject the message."))
        try:
            data = base64.b64decode(item.content, validate=True)
        except (binascii.Error, ValueError):
            raise invalid(f"{field}.content", _("This is not valid base64.")) from None
        total += len(data)
        if total > MAX_ATTACHMENT_BYTES:
            raise invalid(f"{field}.content", _("Attachments may total %(mb)s MB at most.")
                          % {"mb": MAX_ATTACHMENT_BYTES // 2**20})
        kind = item.content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        if not _MEDIA_TYPE.fullmatch(kind):
            raise invalid(f"{field}.content_type", _("Give a media type such as "
                                                     "application/pdf."))
        if item.content_id and not _CONTENT_ID.fullmatch(item.content_id):
            raise invalid(f"{field}.content_id", _("Use letters, digits and . - _ @ only."))
        files.append(sending.File(name, kind, data, item.content_id))
    return files


def _recipient(request, payload: MessageIn) -> tuple[str | None, Member | None]:
    given = [name for name in ("to", "member_id", "phone") if getattr(payload, name)]
    if len(given) != 1:
        raise invalid(given[1] if given else "to",
                      _("Give exactly one recipient: to, member_id or phone."))
    members = Member.objects.filter(workspace=request.workspace)
    if payload.member_id is not None:
        member = members.filter(pk=payload.member_id).first()
        if member is None:
            raise invalid("member_id", _("No member with this id."))
        return None, member
    if payload.phone:
        try:
            phone = normalize_phone(payload.phone)
        except FieldError as error:
            raise invalid("phone", error.message) from None
        member = members.filter(phone=phone).first()
        if member is None:
            raise invalid("phone", _("No member with this phone number."))
        return None, member
    if not can(request, "messages.send_external"):
        try:
            address = normalize_email(payload.to)
        except FieldError:
            address = None  # sending.enqueue_message names the problem
        if address and not members.filter(email=address).exists():
            raise ApiError(403, "permission_denied", _("This API key may send only to members "
                                                       "(it lacks “messages.send_external”)."),
                           field="to")
    return payload.to, None


def _send_at(payload: MessageIn) -> dt.datetime | None:
    send_at = aware(payload.send_at, "send_at")
    if send_at is not None and send_at > timezone.now() + MAX_SCHEDULE:
        raise invalid("send_at", _("A message can be scheduled at most 30 days ahead."))
    return send_at


def _message(request, payload: MessageIn) -> sending.Message:
    """The message asked for, or an ApiError naming the field at fault."""
    to, member = _recipient(request, payload)
    return sending.Message(_content(request, payload), to=to, member=member, data=payload.data,
                           urgent=payload.priority == "urgent", send_at=_send_at(payload))


@router.post("", response={201: DeliveryOut, **errors(422)},
             summary="Send a transactional message", **requires("messages.send"))
def send_message(request, payload: MessageIn):
    """Queues one message at once (or holds it until `send_at`); `urgent` overtakes any bulk
    backlog. A suppressed or bounced recipient answers 201 with status `skipped` and the
    reason, so callers can log why. An unsubscribed member still receives transactional
    mail."""
    result = sending.enqueue_messages(request.workspace, [_message(request, payload)])[0]
    if isinstance(result, sending.ContentRefused):
        raise refused(result)
    delivery = result
    audit.record("message.queued", request=request, target=f"delivery:{delivery.pk}",
                 priority=payload.priority, via="api")
    return Status(201, render_deliveries(request, [delivery])[0])


class BatchIn(InSchema):
    messages: list[MessageIn] = Field(..., min_length=1, max_length=BATCH_MAX)


class BatchItem(Schema):
    index: int
    id: int | None
    status: str
    skip_reason: str = ""
    error: dict | None = None


class BatchOut(Schema):
    results: list[BatchItem]


@router.post("/batch", response={200: BatchOut, **errors(422)},
             summary=f"Send up to {BATCH_MAX:,} transactional messages",
             **requires("messages.send"))
def send_batch(request, payload: BatchIn):
    """Each message succeeds or fails on its own: the results say which, in request order,
    with the field and reason of each refusal. The good ones are queued together."""
    results: list = [None] * len(payload.messages)
    asked: list[tuple[int, sending.Message]] = []
    for index, item in enumerate(payload.messages):
        try:
            asked.append((index, _message(request, item)))
        except ApiError as error:
            results[index] = _batch_error(index, error)
    answers = sending.enqueue_messages(request.workspace, [m for _i, m in asked])
    for (index, _m), answer in zip(asked, answers, strict=True):
        if isinstance(answer, sending.ContentRefused):
            results[index] = _batch_error(index, refused(answer))
        else:
            results[index] = {"index": index, "id": answer.pk, "status": answer.status,
                              "skip_reason": answer.skip_reason}
    queued = sum(1 for r in results if r["id"])
    audit.record("message.batch_queued", request=request, count=queued, via="api")
    return {"results": results}


def _batch_error(index: int, error: ApiError) -> dict:
    return {"index": index, "id": None, "status": "error",
            "error": {"code": error.code, "field": error.field, "message": error.message}}


def _message_out(request, delivery: Delivery) -> dict:
    return {**render_deliveries(request, [delivery])[0],
            "send_at": delivery.source.scheduled_at, "events": delivery_history(delivery)}


@router.get("/{delivery_id}", response={200: MessageOut, **errors(404)},
            summary="Get a message's status and event history", **requires("deliveries.view"))
def get_message(request, delivery_id: int = Path(..., ge=1, le=MAX_ID)):
    """Any delivery's story, oldest first: queued, sent (with the relay's reply) or deferred,
    failed, skipped (with the reason), then opens, clicks (with the link) and conversions."""
    delivery = get_scoped(Delivery, request, delivery_id, _("Message"))
    return _message_out(request, delivery)


@router.post("/{delivery_id}/cancel", response={200: MessageOut, **errors(404, 409)},
             summary="Cancel a message not sent yet", **requires("messages.send"))
def cancel_message(request, delivery_id: int = Path(..., ge=1, le=MAX_ID)):
    """A scheduled or deferred message can be called back until it is handed to a relay."""
    delivery = get_scoped(Delivery, request, delivery_id, _("Message"),
                          source__kind__in=("transactional",))
    if not queue.cancel_message(delivery):
        delivery.refresh_from_db()
        raise conflict(_("This message cannot be cancelled: it is %(status)s.")
                       % {"status": delivery.status}, field="status")
    audit.record("message.cancelled", request=request, target=f"delivery:{delivery.pk}",
                 via="api")
    delivery.refresh_from_db()
    return _message_out(request, delivery)
