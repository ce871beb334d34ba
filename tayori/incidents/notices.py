"""A notice's life: drafted from a filled form (or an API call), confirmed — by a second
operator when its type asks for one — and sent as a delivery Source on the urgent lane, or
cancelled. Every step is audited; the console and the API call these and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tayori.accounts import audit
from tayori.delivery import queue
from tayori.delivery.models import Priority, Source
from tayori.incidents import fields, rendering, targeting
from tayori.incidents.models import Incident, Notice, NoticeType, Service
from tayori.members.segments import SegmentError
from tayori.members.values import FieldError

S = Notice.Status
SUBJECT_MAX = Source._meta.get_field("subject").max_length


class NoticeRefused(ValueError):
    """A notice that cannot be drafted or sent; ``errors`` name the field (a field key, or
    ``type``, ``incident``, ``status``, ``recipients``) and say why."""

    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def _refuse(field: str, message: str) -> NoticeRefused:
    return NoticeRefused([FieldError(field, message)])


def zone_of(workspace) -> ZoneInfo:
    return ZoneInfo(workspace.time_zone)


def catalogue(workspace) -> dict[str, Service]:
    """The workspace's services operators may pick, by code, in display order."""
    return {s.code: s for s in Service.objects.filter(workspace=workspace, active=True)}


def names(workspace) -> dict[str, str]:
    """Every service's name by code (retired ones too: old notices still name them)."""
    return dict(Service.objects.filter(workspace=workspace).values_list("code", "name"))


def shown(notice: Notice) -> dict[str, str]:
    return fields.shown(notice.type, notice.values, names=names(notice.workspace),
                        zone=zone_of(notice.workspace))


@dataclass
class Plan:
    """What a notice would be: its values, their words, whom it reaches."""

    values: dict
    shown: dict
    audience: dict | None
    reach: targeting.Reach
    words: rendering.Words


def plan(notice_type: NoticeType, raw: dict, *, sample: bool = True) -> Plan:
    """Clean ``raw`` field values and work out the notice they make; raises NoticeRefused
    naming every bad field."""
    workspace = notice_type.workspace
    values, errors = fields.clean(notice_type, raw, catalogue=catalogue(workspace),
                                  zone=zone_of(workspace))
    if errors:
        raise NoticeRefused(errors)
    words_shown = fields.shown(notice_type, values, names=names(workspace),
                               zone=zone_of(workspace))
    _subject(notice_type, words_shown)
    definition = targeting.audience(notice_type, values)
    try:
        reach = targeting.reach(workspace, definition,
                                sample_size=targeting.SAMPLE_SIZE if sample else 0)
    except SegmentError as error:  # the segment or attribute of the type was deleted
        raise _refuse("type", _("The notice type's targeting no longer works: %(error)s")
                      % {"error": error}) from None
    words = rendering.render(notice_type, words_shown)
    if words.error:  # refused now rather than failing for every recipient
        raise _refuse("type", _("The notice type's templates cannot be rendered: %(error)s")
                      % {"error": words.error})
    return Plan(values, words_shown, definition, reach, words)


def _subject(notice_type: NoticeType, words_shown: dict) -> str:
    """The subject template with the values bound, which the Source must be able to hold."""
    subject = rendering.bind(notice_type.subject, words_shown)
    if len(subject) > SUBJECT_MAX:
        raise _refuse("subject", _("The subject is too long with these values; choose fewer "
                                   "services or shorten the texts."))
    return subject


def prefill(notice_type: NoticeType, after: Notice | None) -> dict:
    """The values a new notice of ``notice_type`` starts with: those of the notice it follows
    (same keys, same kinds), else none. Date-times not carried over start empty."""
    if after is None:
        return {}
    kinds = {spec.key: spec.kind for spec in fields.specs_of(after.type)}
    return {spec.key: after.values[spec.key] for spec in fields.specs_of(notice_type)
            if spec.key in after.values and kinds.get(spec.key) == spec.kind}


def _title(notice_type: NoticeType, planned: Plan) -> str:
    spec = fields.services_field(notice_type)
    services = planned.shown.get(spec.key, "") if spec else ""
    when = fields.datetime_text(timezone.now().astimezone(zone_of(notice_type.workspace)))
    return f"{services or notice_type.name} ({when})"[:300]


@transaction.atomic
def draft(notice_type: NoticeType, raw: dict, *, request, incident: Incident | None = None,
          via: str = Notice.Via.UI) -> Notice:
    """A draft notice from ``raw`` field values, in ``incident`` or a new one."""
    planned = plan(notice_type, raw, sample=False)
    if incident is None:
        incident = Incident.objects.create(workspace=notice_type.workspace,
                                           title=_title(notice_type, planned))
    user = getattr(request, "user", None)
    notice = Notice.objects.create(
        workspace=notice_type.workspace, type=notice_type, incident=incident,
        values=planned.values, subject=planned.words.subject[:500], text=planned.words.text,
        audience=planned.audience, recipients=planned.reach.receiving, via=via,
        created_by=user if user is not None and user.is_authenticated else None,
        api_key=getattr(request, "api_key", None))
    audit.record("notice.draft", request=request, target=f"notice:{notice.pk}",
                 type=notice_type.name, incident=incident.pk, recipients=notice.recipients,
                 via=via)
    return notice


@transaction.atomic
def revise(notice: Notice, raw: dict, *, request) -> Notice:
    """New values for a draft (the operator went back from the confirmation screen)."""
    notice = Notice.objects.select_for_update().get(pk=notice.pk)
    if notice.status != S.DRAFT:
        raise _refuse("status", _("Only a draft can be changed."))
    planned = plan(notice.type, raw, sample=False)
    notice.values, notice.audience = planned.values, planned.audience
    notice.subject, notice.text = planned.words.subject[:500], planned.words.text
    notice.recipients = planned.reach.receiving
    notice.save(update_fields=["values", "audience", "subject", "text", "recipients"])
    audit.record("notice.revise", request=request, target=f"notice:{notice.pk}",
                 recipients=notice.recipients)
    return notice


def may_confirm(notice: Notice, operator) -> str:
    """"" when ``operator`` may confirm the notice now, else the reason they may not."""
    if notice.status == S.DRAFT:
        return ""
    if notice.status != S.AWAITING:
        return _("This notice is %(status)s.") % {"status": notice.get_status_display()}
    if operator is not None and operator.pk == notice.created_by_id:
        return _("A second operator confirms this notice: you created it.")
    return ""


@transaction.atomic
def confirm(notice: Notice, *, request) -> Notice:
    """The confirm button (or an API call): a draft of a type that needs a second operator
    waits for one; otherwise, and when that second operator confirms, it is sent."""
    notice = Notice.objects.select_for_update().select_related("type", "workspace").get(
        pk=notice.pk)
    user = getattr(request, "user", None)
    operator = user if user is not None and user.is_authenticated else None
    reason = may_confirm(notice, operator)
    if reason:
        raise _refuse("status", reason)
    if notice.status == S.DRAFT and notice.type.requires_second_confirmation:
        _check_sendable(notice)
        notice.status = S.AWAITING
        notice.save(update_fields=["status"])
        audit.record("notice.awaiting", request=request, target=f"notice:{notice.pk}",
                     recipients=notice.recipients)
        return notice
    return _send(notice, request, confirmed_by=operator if notice.status == S.AWAITING else None)


def _check_sendable(notice: Notice) -> targeting.Reach:
    try:
        reach = targeting.reach(notice.workspace, notice.audience, sample_size=0)
    except SegmentError as error:
        raise _refuse("type", _("The notice type's targeting no longer works: %(error)s")
                      % {"error": error}) from None
    if not reach.receiving:
        raise _refuse("recipients", _("No member would receive this notice: check the "
                                      "services chosen."))
    return reach


def _send(notice: Notice, request, *, confirmed_by) -> Notice:
    """Fan the notice out on the urgent lane: one statement inserts every recipient's row."""
    _check_sendable(notice)
    notice_type, words_shown = notice.type, shown(notice)
    source = Source.objects.create(
        workspace=notice.workspace, kind=Source.Kind.NOTICE,
        name=f"{notice_type.name}: {notice.incident.title}"[:200], status=Source.Status.DRAFT,
        priority=Priority.URGENT, audience=notice.audience, once_per_address=True,
        tracking=False, subject=_subject(notice_type, words_shown),
        text=rendering.bind(notice_type.text, words_shown),
        html=rendering.bind(notice_type.html, words_shown), from_name=notice_type.from_name,
        from_address=notice_type.from_address, reply_to=notice_type.reply_to,
        created_by=confirmed_by or notice.created_by)
    queue.start(source)
    source.refresh_from_db()
    if source.status != Source.Status.RUNNING:  # the fan-out refused the definition
        raise _refuse("type", source.pause_reason or _("The notice could not be sent."))
    notice.source, notice.status, notice.sent_at = source, S.SENT, timezone.now()
    notice.confirmed_by = confirmed_by
    notice.recipients = source.total - sum(source.skipped.values())
    notice.save(update_fields=["source", "status", "sent_at", "confirmed_by", "recipients"])
    audit.record("notice.sent", request=request, target=f"notice:{notice.pk}",
                 source=source.pk, recipients=notice.recipients, skipped=source.skipped,
                 confirmed_by=confirmed_by.email if confirmed_by else None)
    return notice


@transaction.atomic
def cancel(notice: Notice, *, request) -> Notice:
    notice = Notice.objects.select_for_update().get(pk=notice.pk)
    if notice.status not in (S.DRAFT, S.AWAITING):
        raise _refuse("status", _("A sent notice cannot be cancelled."))
    notice.status = S.CANCELLED
    notice.save(update_fields=["status"])
    audit.record("notice.cancelled", request=request, target=f"notice:{notice.pk}")
    return notice


def followers(notice: Notice) -> list[NoticeType]:
    """The types that may follow this notice (a recovery after an outage notice)."""
    return list(NoticeType.objects.filter(workspace=notice.workspace, follows=notice.type_id,
                                          active=True))
