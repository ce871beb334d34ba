"""The incident console, four screens an operator gets through by keyboard: choose the notice
type → fill its form (pickers wherever there is a choice, the recipient count following) → read
the generated subject and body with the exact recipient count and a sample, and confirm → the
notice's page with its delivery progress and log, and the button that starts the recovery
notice with the fields filled in."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tayori.accounts.access import can, requires
from tayori.content.models import SenderIdentity
from tayori.delivery import queue
from tayori.delivery.models import Delivery
from tayori.delivery.views.sends import SKIP_REASONS
from tayori.incidents import fields, notices, rendering, setup, starter, targeting
from tayori.incidents.models import Notice, NoticeType
from tayori.members.masking import mask_email, masked_member_fields
from tayori.members.models import Attribute
from tayori.members.segments import SegmentError

LOG_PAGE = 50
PREFIX = "f-"  # form names of notice fields, apart from the page's own


@requires("notices.send")
def index(request):
    """Screen 1: the notice types as big buttons (number keys choose), notices waiting for a
    second operator, and the latest notices."""
    workspace = request.workspace
    types = list(NoticeType.objects.filter(workspace=workspace, active=True))
    recent = Notice.objects.filter(workspace=workspace).exclude(
        status=Notice.Status.CANCELLED).select_related("type", "incident", "created_by")
    page = Paginator(recent, 20).get_page(request.GET.get("page"))
    identity = SenderIdentity.objects.filter(workspace=workspace).first()
    return render(request, "incidents/index.html", {
        "types": types, "page_obj": page,
        "awaiting": list(recent.filter(status=Notice.Status.AWAITING)[:20]),
        "can_manage": can(request, "notices.manage"),
        "starter_address": identity.from_address if identity else "",
        "starter_name": identity.from_name if identity else workspace.name})


def _posted(request, notice_type: NoticeType) -> dict:
    raw = {}
    for spec in fields.specs_of(notice_type):
        name = PREFIX + spec.key
        if spec.kind == "services":
            raw[spec.key] = request.POST.getlist(name)
        elif name in request.POST:
            raw[spec.key] = request.POST[name]
    return raw


def _rows(request, notice_type: NoticeType, values: dict, errors: dict, *,
          posted: bool) -> list[dict]:
    """What the form shows for each field: its spec, value (as posted, or as stored), error
    and (services) choices."""
    zone = notices.zone_of(request.workspace)
    now = timezone.now().astimezone(zone).strftime("%Y-%m-%dT%H:%M")
    catalogue = list(notices.catalogue(request.workspace).values())
    rows = []
    for spec in fields.specs_of(notice_type):
        value = values.get(spec.key)
        shown = (value or ([] if spec.kind == "services" else "")) if posted else (
            fields.form_value(spec, value, zone))
        if spec.kind == "datetime" and not shown and not posted:
            shown = now  # operators fix a start time more often than they type one
        rows.append({"spec": spec, "name": PREFIX + spec.key, "value": shown,
                     "error": errors.get(spec.key, ""), "services": catalogue
                     if spec.kind == "services" else ()})
    return rows


def _after(request) -> Notice | None:
    """The notice a follow-up starts from (``?after=``), if it is one of this workspace's."""
    pk = request.POST.get("after") or request.GET.get("after") or ""
    if not pk.isdigit():
        return None
    return Notice.objects.filter(workspace=request.workspace, pk=pk).select_related(
        "type", "incident").first()


@requires("notices.send")
def compose(request, type_pk=None, pk=None):
    """Screen 2: the type's form. Posting it makes a draft and opens its confirmation screen;
    ``pk`` is a draft sent back from there to be changed."""
    draft = None
    if pk is not None:
        draft = get_object_or_404(Notice.objects.select_related("type"), pk=pk,
                                  workspace=request.workspace)
        if draft.status != Notice.Status.DRAFT:
            return redirect("incidents:notice", draft.pk)
        notice_type, after = draft.type, None
    else:
        notice_type = get_object_or_404(NoticeType, pk=type_pk, workspace=request.workspace,
                                        active=True)
        after = _after(request)
    errors: dict[str, str] = {}
    if request.method == "POST":
        raw = _posted(request, notice_type)
        try:
            if draft is not None:
                notice = notices.revise(draft, raw, request=request)
            else:
                notice = notices.draft(notice_type, raw, request=request,
                                       incident=after.incident if after else None)
        except notices.NoticeRefused as refused:
            keys = {spec.key for spec in fields.specs_of(notice_type)}
            for error in refused.errors:
                key = error.field if error.field in keys else ""
                errors[key] = " ".join(filter(None, (errors.get(key), error.message)))
            values = raw
        else:
            return redirect("incidents:notice", notice.pk)
    else:
        values = draft.values if draft else notices.prefill(notice_type, after)
    return render(request, "incidents/compose.html", {
        "notice_type": notice_type, "draft": draft, "after": after,
        "rows": _rows(request, notice_type, values, errors, posted=request.method == "POST"),
        "general_error": errors.get(""),
        "errors": errors}, status=400 if errors else 200)


@requires("notices.send")
@require_POST
def count(request, type_pk):
    """The live recipient count of the form's services (htmx)."""
    notice_type = get_object_or_404(NoticeType, pk=type_pk, workspace=request.workspace)
    spec = fields.services_field(notice_type)
    values, errors = fields.clean(
        notice_type, {spec.key: request.POST.getlist(PREFIX + spec.key)} if spec else {},
        catalogue=notices.catalogue(request.workspace), zone=notices.zone_of(request.workspace))
    if any(e.field == (spec.key if spec else "") for e in errors):
        return HttpResponse("—")
    try:
        reach = targeting.reach(request.workspace, targeting.audience(notice_type, values),
                                sample_size=0)
    except SegmentError:
        return HttpResponse("—")
    text = _("%(n)s recipients") % {"n": f"{reach.receiving:,}"}
    if reach.skipped:
        text += " " + _("(%(n)s skipped)") % {"n": f"{sum(reach.skipped.values()):,}"}
    return HttpResponse(text)


def _sample(request, reach: targeting.Reach, notice_type: NoticeType) -> list[dict]:
    pii = can(request, "members.view_pii")
    attributes = list(Attribute.objects.filter(workspace=request.workspace))
    rows = []
    for member in reach.sample:
        seen = masked_member_fields(member, attributes, pii)
        held = seen["attributes"].get(notice_type.target_attribute) or ""
        rows.append({"email": seen["email"], "status": member.get_status_display(),
                     "active": member.status == member.Status.ACTIVE,
                     "services": ", ".join(map(str, held)) if isinstance(held, list) else held})
    return rows


def _first_member(request, reach: targeting.Reach) -> tuple[dict | None, str]:
    """The first sample member's attributes and address as this operator may see them."""
    if not reach.sample:
        return None, "preview@example.jp"
    attributes = list(Attribute.objects.filter(workspace=request.workspace))
    seen = masked_member_fields(reach.sample[0], attributes, can(request, "members.view_pii"))
    return seen["attributes"], seen["email"] or "preview@example.jp"


def _progress(notice: Notice) -> dict | None:
    source = notice.source
    if source is None:
        return None
    counts = queue.progress(source)
    skipped = sum(source.skipped.values())
    sendable = source.total - skipped
    done = counts["sent"] + counts["failed"]
    return {"source": source, "counts": counts, "sendable": sendable,
            "remaining": sendable - done - counts["cancelled"],
            "percent": min(100, round(100 * done / sendable)) if sendable else 100,
            "skipped": [(SKIP_REASONS.get(reason, reason), n)
                        for reason, n in source.skipped.items()],
            "live": source.status in ("running", "scheduled")}


@requires("notices.send")
def detail(request, pk):
    """Screens 3 and 4: a draft's generated subject and body, exact count, sample and confirm
    button; a sent notice's progress, delivery log and follow-up buttons."""
    notice = get_object_or_404(Notice.objects.select_related(
        "type", "incident", "created_by", "confirmed_by", "source", "api_key"),
        pk=pk, workspace=request.workspace)
    waiting = notice.status in (Notice.Status.DRAFT, Notice.Status.AWAITING)
    reach, problem = targeting.Reach(), ""
    if waiting:
        try:
            reach = targeting.reach(request.workspace, notice.audience)
        except SegmentError as error:
            problem = str(error)
    words_shown = notices.shown(notice)
    member, address = _first_member(request, reach)
    words = rendering.render(notice.type, words_shown, member=member, address=address)
    log = None
    if notice.source_id:
        rows = Delivery.objects.filter(source_id=notice.source_id).order_by("id")
        log = Paginator(rows, LOG_PAGE).get_page(request.GET.get("page"))
        pii = can(request, "members.view_pii")
        for delivery in log.object_list:
            delivery.shown_address = delivery.address if pii else mask_email(delivery.address)
            delivery.reason = SKIP_REASONS.get(delivery.skip_reason, delivery.skip_reason)
    return render(request, "incidents/notice.html", {
        "notice": notice, "waiting": waiting, "reach": reach, "problem": problem,
        "skipped": [(SKIP_REASONS.get(r, r), n) for r, n in reach.skipped.items()],
        "sample": _sample(request, reach, notice.type), "words": words,
        "values": [(spec.label, words_shown.get(spec.key, ""))
                   for spec in fields.specs_of(notice.type)],
        "refusal": notices.may_confirm(notice, request.user) if waiting else "",
        "progress": _progress(notice), "page_obj": log, "followers": notices.followers(notice),
        "incident_notices": notice.incident.notices.exclude(pk=notice.pk).exclude(
            status=Notice.Status.CANCELLED).select_related("type").order_by("id")})


@requires("notices.send")
def progress(request, pk):
    notice = get_object_or_404(Notice.objects.select_related("source"), pk=pk,
                               workspace=request.workspace)
    return render(request, "incidents/_progress.html", {"notice": notice,
                                                         "progress": _progress(notice)})


def _act(request, pk, step, done: str):
    notice = get_object_or_404(Notice, pk=pk, workspace=request.workspace)
    try:
        notice = step(notice)
    except notices.NoticeRefused as refused:
        messages.error(request, " ".join(e.message for e in refused.errors))
    else:
        messages.success(request, done if notice.status != Notice.Status.AWAITING else _(
            "Waiting for a second operator to confirm and send it."))
    return redirect("incidents:notice", pk)


@requires("notices.send")
@require_POST
def confirm(request, pk):
    return _act(request, pk, lambda n: notices.confirm(n, request=request),
                _("Sent on the urgent lane."))


@requires("notices.send")
@require_POST
def cancel(request, pk):
    return _act(request, pk, lambda n: notices.cancel(n, request=request), _("Cancelled."))


@requires("notices.manage")
@require_POST
def start_starter(request):
    try:
        made = starter.create_starter(
            request.workspace, from_address=request.POST.get("from_address", ""),
            from_name=request.POST.get("from_name", "")[:200], request=request)
    except notices.NoticeRefused as refused:
        messages.error(request, " ".join(e.message for e in refused.errors))
    else:
        messages.success(request, _("%(n)s notice types and the example services were "
                                    "created. Adapt them under Notice types.") % {"n": made})
    return redirect("incidents:index")


app_name = "incidents"
urlpatterns = [
    path("", index, name="index"),
    path("new/<int:type_pk>/", compose, name="compose"),
    path("new/<int:type_pk>/count/", count, name="count"),
    path("<int:pk>/", detail, name="notice"),
    path("<int:pk>/edit/", compose, name="edit"),
    path("<int:pk>/progress/", progress, name="progress"),
    path("<int:pk>/confirm/", confirm, name="confirm"),
    path("<int:pk>/cancel/", cancel, name="cancel"),
    path("starter/", start_starter, name="starter"),
    *setup.urlpatterns,
]
