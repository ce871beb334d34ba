"""Pages under Mail → Bounces: what came back over the last 7, 30 or 90 days — by reason, by
recipient domain and per day, with the complaints — for all mail or one stream, the bounces
one by one, and one bounce's evidence. Roles without the right to see personal information
see addresses masked (inside diagnostics too) and never a raw report."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tayori.accounts.access import can, requires
from tayori.delivery.models import Source
from tayori.inbound.models import Bounce, Complaint
from tayori.inbound.reasons import LABELS, is_carrier
from tayori.members.masking import mask_emails_in
from tayori.members.views.helpers import can_view_pii, shown_email
from tayori.tracking.clients import CARRIERS
from tayori.web.charts import chart

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30
PAGE_SIZE = 50
TOP_DOMAINS = 20
# Mail a person asked for (a receipt, an incident notice) against mail sent to many.
STREAM_KINDS = {
    "broadcast": (Source.Kind.BULK, Source.Kind.STEP),
    "transactional": (Source.Kind.TRANSACTIONAL, Source.Kind.NOTICE),
}
STREAMS = {"all": gettext_lazy("All mail"), "broadcast": gettext_lazy("Broadcast"),
           "transactional": gettext_lazy("Transactional")}
def scrub(text: str, pii: bool) -> str:
    """A diagnostic as the viewer may read it: relays quote the recipient's address."""
    return text if pii else mask_emails_in(text)


def reason_label(reason: str) -> str:
    return str(LABELS.get(reason, reason))


@dataclass(frozen=True)
class Chosen:
    """The period (whole days in the workspace's time zone, today included) and stream."""

    days: int
    stream: str
    reason: str
    zone: ZoneInfo
    first: dt.date

    @property
    def since(self) -> dt.datetime:
        return dt.datetime.combine(self.first, dt.time(), self.zone)

    def dates(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=n) for n in range(self.days)]

    def of(self, model, workspace):
        rows = model.objects.filter(workspace=workspace, received_at__gte=self.since)
        kinds = STREAM_KINDS.get(self.stream)
        return rows.filter(source__kind__in=kinds) if kinds else rows


def _chosen(request) -> Chosen:
    days = {str(p): p for p in PERIODS}.get(request.GET.get("days", ""), DEFAULT_PERIOD)
    stream = request.GET.get("stream", "all")
    reason = request.GET.get("reason", "")
    zone = ZoneInfo(request.workspace.time_zone)
    today = timezone.now().astimezone(zone).date()
    return Chosen(days=days, stream=stream if stream in STREAMS else "all",
                  reason=reason if reason in LABELS else "", zone=zone,
                  first=today - dt.timedelta(days=days - 1))


def _by_reason(bounces) -> list[dict]:
    rows = (bounces.order_by().values("reason")
            .annotate(total=Count("id"), hard=Count("id", filter=Q(hard=True)),
                      not_counted=Count("id", filter=Q(counts=False)))
            .order_by("-total", "reason"))
    return [{**row, "label": reason_label(row["reason"]), "soft": row["total"] - row["hard"]}
            for row in rows]


def _by_domain(bounces, total: int) -> list[dict]:
    rows = (bounces.order_by().values("domain")
            .annotate(total=Count("id"), hard=Count("id", filter=Q(hard=True)))
            .order_by("-total", "domain")[:TOP_DOMAINS])
    return [{**row, "carrier": _carrier(row["domain"]),
             "share": f"{row['total'] / total * 100:.1f}%" if total else "—"} for row in rows]


def _carrier(domain: str) -> str:
    """A mobile carrier's name for its domain ("docomo"), else ''."""
    if not is_carrier(domain):
        return ""
    return CARRIERS.get(domain.lower()) or _("Mobile carrier")


def _per_day(rows, chosen: Chosen) -> list[int]:
    counts = dict(rows.order_by()
                  .annotate(day=TruncDate("received_at", tzinfo=chosen.zone))
                  .values("day").annotate(n=Count("id")).values_list("day", "n"))
    return [counts.get(day, 0) for day in chosen.dates()]


def bounce_row(bounce: Bounce, pii: bool) -> dict:
    return {"bounce": bounce, "address": shown_email(bounce.address, pii),
            "label": reason_label(bounce.reason), "diagnostic": scrub(bounce.diagnostic, pii)}


@requires("deliveries.view")
def index(request):
    chosen = _chosen(request)
    bounces = chosen.of(Bounce, request.workspace)
    complaints = chosen.of(Complaint, request.workspace)
    reasons = _by_reason(bounces)
    total = sum(row["total"] for row in reasons)
    listed = bounces.filter(reason=chosen.reason) if chosen.reason else bounces
    page = Paginator(listed.defer("raw").order_by("-received_at", "-id"), PAGE_SIZE).get_page(
        request.GET.get("page"))
    pii = can_view_pii(request)
    complaint_total = complaints.count()
    dates = chosen.dates()
    return render(request, "inbound/bounces.html", {
        "chosen": chosen, "periods": PERIODS, "streams": STREAMS.items(),
        "reasons": reasons, "total": total, "complaint_total": complaint_total,
        "hard_total": sum(row["hard"] for row in reasons),
        "not_counted_total": sum(row["not_counted"] for row in reasons),
        "domains": _by_domain(bounces, total), "top_domains": TOP_DOMAINS,
        "page_obj": page, "rows": [bounce_row(b, pii) for b in page.object_list],
        "pii_visible": pii, "can_see_members": can(request, "members.view"),
        "reason_name": reason_label(chosen.reason) if chosen.reason else "",
        "charts": {
            "reasons": chart("bar", [row["label"] for row in reasons],
                              [(_("Bounces"), [row["total"] for row in reasons])]),
            "days": chart("line", [day.strftime("%m/%d") for day in dates], [
                (_("Bounces"), _per_day(bounces, chosen)),
                (_("Complaints"), _per_day(complaints, chosen))]),
        },
    })


@requires("deliveries.view")
def detail(request, pk):
    bounce = get_object_or_404(Bounce.objects.select_related("source"), pk=pk,
                               workspace=request.workspace)
    pii = can_view_pii(request)
    raw = bytes(bounce.raw or b"")
    return render(request, "inbound/bounce.html", {
        **bounce_row(bounce, pii), "pii_visible": pii,
        "can_see_members": can(request, "members.view"),
        # A report is mail: 7-bit headers, and bodies mostly UTF-8 or 7-bit encodings.
        "raw": raw.decode("utf-8", "replace") if pii else "", "raw_size": len(raw),
        "raw_cut": len(raw) >= settings.TAYORI_INBOUND_RAW_LIMIT,
    })


urlpatterns = [
    path("bounces/", index, name="bounces"),
    path("bounces/<int:pk>/", detail, name="bounce"),
]
