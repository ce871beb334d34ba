"""Pages: the delivery log — every recipient of every send, searchable by address, send, status,
date and SMTP reply — one delivery's story, and the search as CSV."""

import csv
import datetime as dt
from zoneinfo import ZoneInfo

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.utils.translation import gettext as _

from tayori.accounts import audit
from tayori.accounts.access import requires
from tayori.delivery.models import Delivery, OutboxMessage, Source
from tayori.delivery.views.sends import SKIP_REASONS
from tayori.members import values
from tayori.members.masking import mask_email
from tayori.members.views.helpers import can_view_pii

PAGE_SIZE = 50
EXPORT_LIMIT = 1_000_000
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _search(request) -> tuple:
    """The filtered deliveries, the filters as given, and a refusal message if any."""
    workspace = request.workspace
    rows = Delivery.objects.filter(workspace=workspace)
    given = {key: request.GET.get(key, "").strip()[:200]
             for key in ("q", "source", "status", "since", "until", "reply")}
    refusal = None
    if given["q"]:
        if not can_view_pii(request):
            refusal = _("Your role may not see email addresses, so it cannot search by them.")
            rows = rows.none()
        else:
            try:
                address = values.normalize_email(given["q"])
            except values.FieldError:
                rows = rows.filter(address__startswith=given["q"].lower())
            else:
                # Exact (index-friendly) in the spelling given and in lower case, which is how
                # nearly every address is stored.
                rows = rows.filter(address__in={address, address.lower()})
    if given["source"].isdigit():
        rows = rows.filter(source_id=int(given["source"]))
    if given["status"] in Delivery.Status.values:
        rows = rows.filter(status=given["status"])
    zone = ZoneInfo(workspace.time_zone)
    for key, lookup, shift in (("since", "queued_at__gte", 0), ("until", "queued_at__lt", 1)):
        try:
            day = dt.date.fromisoformat(given[key])
        except ValueError:
            continue
        start = dt.datetime.combine(day + dt.timedelta(days=shift), dt.time(), zone)
        rows = rows.filter(**{lookup: start})
    if given["reply"]:
        rows = rows.filter(smtp_reply__icontains=given["reply"])
    return rows.select_related("source"), given, refusal


def _shown(address: str, pii: bool) -> str:
    return address if pii else mask_email(address)


@requires("deliveries.view")
def index(request):
    rows, given, refusal = _search(request)
    pii = can_view_pii(request)
    before = request.GET.get("before", "")
    if before.isdigit():
        rows = rows.filter(pk__lt=int(before))
    page = list(rows.order_by("-id")[:PAGE_SIZE + 1])
    more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    sources = Source.objects.filter(workspace=request.workspace, kind=Source.Kind.BULK)[:200]
    return render(request, "delivery/log.html", {
        "rows": [{"delivery": d, "address": _shown(d.address, pii),
                  "reason": SKIP_REASONS.get(d.skip_reason, d.skip_reason)} for d in page],
        "given": given, "refusal": refusal, "statuses": Delivery.Status.choices,
        "sources": sources, "next_before": page[-1].pk if more and page else None})


@requires("deliveries.view")
def detail(request, pk):
    delivery = get_object_or_404(Delivery.objects.select_related("source", "member"), pk=pk,
                                 workspace=request.workspace)
    pii = can_view_pii(request)
    outbox = OutboxMessage.objects.filter(delivery=delivery).values_list("pk", flat=True).first()
    return render(request, "delivery/delivery.html", {
        "delivery": delivery, "address": _shown(delivery.address, pii), "outbox": outbox,
        "reason": SKIP_REASONS.get(delivery.skip_reason, delivery.skip_reason)})


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text  # no formulas in spreadsheets


class _Echo:
    def write(self, value):
        return value


@requires("deliveries.view")
def export(request):
    rows, given, refusal = _search(request)
    pii = can_view_pii(request)
    codec = "cp932" if request.GET.get("encoding") == "cp932" else "utf-8"
    zone = ZoneInfo(request.workspace.time_zone)
    writer = csv.writer(_Echo())

    def when(moment):
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if moment else ""

    def lines():
        if codec == "utf-8":
            yield "\ufeff".encode()  # so spreadsheet programs read it as UTF-8
        yield writer.writerow([
            _("Delivery"), _("Send"), _("Address"), _("Status"), _("Reason"), _("Attempts"),
            _("Queued at"), _("Sent at"), _("SMTP reply")]).encode(codec, "replace")
        for d in rows.order_by("id")[:EXPORT_LIMIT].iterator(chunk_size=2000):
            yield writer.writerow([_cell(v) for v in (
                d.pk, d.source.name, _shown(d.address, pii), d.get_status_display(),
                SKIP_REASONS.get(d.skip_reason, d.skip_reason), d.attempts, when(d.queued_at),
                when(d.sent_at), d.smtp_reply)]).encode(codec, "replace")

    # The audit log is read by roles that may not see addresses: the searched one is masked.
    audit.record("deliveries.exported", request=request, masked=not pii,
                 filters={**given, "q": mask_email(given["q"]) if "@" in given["q"] else
                          ("***" if given["q"] else "")})
    response = StreamingHttpResponse(lines(), content_type=f"text/csv; charset={codec}")
    response["Content-Disposition"] = 'attachment; filename="deliveries.csv"'
    return response


urlpatterns = [
    path("deliveries/", index, name="log"),
    path("deliveries/export.csv", export, name="log-export"),
    path("deliveries/<int:pk>/", detail, name="delivery"),
]
