"""Analytics pages: the workspace's sends and how they did, two periods side by side, delivery
volume and the hours people read; one send in detail (links with editable titles, domains,
devices, clients, a timeline, how long it took); several sends compared; and one send's
per-recipient response log as CSV. The figures come from ``tracking.analytics``."""

import datetime as dt
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import can, requires
from tayori.campaigns.models import Campaign
from tayori.delivery.models import Source
from tayori.members import csvio
from tayori.members.views.helpers import can_view_pii
from tayori.tracking import analytics
from tayori.tracking.models import Kind, Link
from tayori.web.charts import chart

PAGE_SIZE = 20
MAX_COMPARED = 10
PERIOD_DAYS = 30
MAX_PERIOD_DAYS = 366
DEFAULT_ENCODING = "utf-8-sig"  # Excel opens it with Japanese intact


def _zone(request) -> ZoneInfo:
    return ZoneInfo(request.workspace.time_zone)


def _rates_chart(rows: list[analytics.Figures]) -> dict:
    return chart("bar", [row.source.name for row in rows], [
        (label, [getattr(row, key).percent for row in rows]) for key, label in (
            ("open_rate", gettext_lazy("Open rate")), ("ctr", gettext_lazy("Click rate (CTR)")),
            ("cto", gettext_lazy("Click-to-open")), ("optout_rate", gettext_lazy("Opt-out rate")))],
        percent=True)


def _kind(request) -> str:
    kind = request.GET.get("kind", Source.Kind.BULK)
    return kind if kind in Source.Kind.values else Source.Kind.BULK


# --- overview ---------------------------------------------------------------------------------

class PeriodForm(forms.Form):
    """Two date ranges, whole days in the workspace's time zone, both ends included."""

    a_from = forms.DateField(label=gettext_lazy("From"))
    a_to = forms.DateField(label=gettext_lazy("To"))
    b_from = forms.DateField(label=gettext_lazy("Compared with, from"))
    b_to = forms.DateField(label=gettext_lazy("To"))

    def __init__(self, given, *, today: dt.date):
        self.defaults = {"a_from": today - dt.timedelta(days=PERIOD_DAYS - 1), "a_to": today,
                         "b_from": today - dt.timedelta(days=2 * PERIOD_DAYS - 1),
                         "b_to": today - dt.timedelta(days=PERIOD_DAYS)}
        data = {key: given.get(key) or day.isoformat() for key, day in self.defaults.items()}
        super().__init__(data)
        for field in self.fields.values():
            field.widget.input_type = "date"

    def clean(self):
        data = super().clean()
        for side in ("a", "b"):
            start, end = data.get(f"{side}_from"), data.get(f"{side}_to")
            if start and end and not 0 <= (end - start).days < MAX_PERIOD_DAYS:
                self.add_error(f"{side}_to", _("Choose an end on or after the start, within "
                                              "%(days)s days.") % {"days": MAX_PERIOD_DAYS})
        return data

    def periods(self, zone) -> list[tuple[dt.datetime, dt.datetime]]:
        """[(start, end)] of the current and the previous period; the defaults if invalid."""
        days = self.cleaned_data if self.is_valid() else self.defaults
        return [(dt.datetime.combine(days[f"{side}_from"], dt.time(), zone),
                 dt.datetime.combine(days[f"{side}_to"] + dt.timedelta(days=1), dt.time(), zone))
                for side in ("a", "b")]


def _heat_rows(grid: list[list[int]]) -> list[tuple[str, list[tuple[int, str, bool]]]]:
    """(weekday, [(count, background opacity, dark)]) rows of a heatmap table."""
    top = max(max(row) for row in grid) or 1
    return [(str(day), [(n, f"{n / top:.2f}", n / top > 0.55) for n in row])
            for day, row in zip(analytics.WEEKDAYS, grid, strict=True)]


@requires("analytics.view")
def index(request):
    workspace, zone = request.workspace, _zone(request)
    now = timezone.now()
    kind = _kind(request)
    page = Paginator(analytics.started_sources(workspace, kind), PAGE_SIZE).get_page(
        request.GET.get("page"))
    form = PeriodForm(request.GET, today=now.astimezone(zone).date())
    current, previous = form.periods(zone)
    unit = request.GET.get("unit", "day")
    unit = unit if unit in analytics.UNITS else "day"
    volume = analytics.volume(workspace, unit, now, zone)
    heat = analytics.heatmap(workspace, *current, zone)
    return render(request, "tracking/analytics/index.html", {
        "page_obj": page, "rows": analytics.figures(page.object_list), "kind": kind,
        "kinds": Source.Kind.choices, "form": form,
        "comparison": analytics.compare_periods(analytics.period_figures(workspace, *current),
                                                analytics.period_figures(workspace, *previous)),
        "unit": unit, "units": [("hour", _("Hourly")), ("day", _("Daily")),
                                ("month", _("Monthly"))],
        "hours": range(24), "heatmaps": [(_("Opens"), _heat_rows(heat[Kind.OPEN])),
                     (_("Clicks"), _heat_rows(heat[Kind.CLICK]))],
        "charts": {"volume": chart("bar", volume.labels,
                                    [(_("Delivered"), volume.values["delivered"])])},
    })


# --- one send ---------------------------------------------------------------------------------

def _duration(span: dt.timedelta | None) -> str:
    if span is None:
        return "—"
    seconds = int(span.total_seconds())
    return f"{seconds // 3600}:{seconds // 60 % 60:02}:{seconds % 60:02}"


class LinkTitleForm(forms.ModelForm):
    class Meta:
        model = Link
        fields = ["title"]


@requires("analytics.view")
def source(request, pk):
    send = get_object_or_404(Source, pk=pk, workspace=request.workspace)
    zone = _zone(request)
    figures = analytics.figures([send])[0]
    links = analytics.links(send, figures.delivered)
    timeline = analytics.timeline(send, zone)
    took = analytics.durations(send, figures.delivered)
    return render(request, "tracking/analytics/source.html", {
        "source": send, "f": figures, "links": links,
        "campaign": (Campaign.objects.filter(workspace=request.workspace, source=send).first()
                     if can(request, "campaigns.create") else None),
        "can_see_send": can(request, "deliveries.view"),
        "can_title": can(request, "campaigns.edit"),
        "breakdowns": [(_("Recipient domains"), analytics.breakdown(send, "domain")),
                       (_("Devices"), analytics.breakdown(send, "device")),
                       (_("Mail clients and browsers"), analytics.breakdown(send, "client"))],
        "took": _duration(took.took), "median_wait": _duration(took.median_wait),
        "p90_wait": _duration(took.p90_wait), "durations": took,
        "encodings": [(e, csvio.label_of(e)) for e in csvio.ENCODINGS],
        "default_encoding": DEFAULT_ENCODING,
        "charts": {
            "timeline": chart("line", timeline.labels, [
                (_("Opens"), timeline.values["opens"]), (_("Clicks"), timeline.values["clicks"]),
                (_("Conversions"), timeline.values["conversions"])]),
            "links": chart("bar", [row.link.title or row.link.url for row in links],
                            [(_("Recipients who clicked"), [row.unique for row in links])]),
        },
    })


@requires("campaigns.edit")
@require_POST
def link_title(request, pk):
    send = get_object_or_404(Source, pk=pk, workspace=request.workspace)
    index = request.POST.get("index", "")
    link = get_object_or_404(Link, source=send, index=int(index) if index.isdigit() else -1)
    before = link.title
    form = LinkTitleForm(request.POST, instance=link)
    if form.is_valid():
        form.save()
        audit.record("analytics.link_titled", request=request, target=f"source:{send.pk}",
                     index=link.index, title=link.title, before=before)
        messages.success(request, _("Link title saved."))
    else:
        messages.error(request, form.errors.as_text())
    return redirect(reverse("analytics:source", args=[send.pk]) + "#links")


@requires("analytics.view")
def responses_csv(request, pk):
    send = get_object_or_404(Source, pk=pk, workspace=request.workspace)
    encoding = request.GET.get("encoding", DEFAULT_ENCODING)
    encoding = encoding if encoding in csvio.ENCODINGS else DEFAULT_ENCODING
    pii = can_view_pii(request)
    audit.record("analytics.responses_exported", request=request, target=f"source:{send.pk}",
                 encoding=encoding, masked=not pii)
    response = StreamingHttpResponse(
        csvio.encoded_rows(analytics.response_rows(send, _zone(request), pii=pii), encoding),
        content_type=f"text/csv; charset={'Shift_JIS' if encoding == 'cp932' else 'utf-8'}")
    stamp = timezone.now().astimezone(_zone(request)).strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="responses-{send.pk}-{stamp}.csv"'
    return response


# --- several sends ----------------------------------------------------------------------------

@requires("analytics.view")
def compare(request):
    workspace = request.workspace
    chosen = [int(v) for v in request.GET.getlist("source") if v.isdigit()][:MAX_COMPARED]
    sources = {s.pk: s for s in Source.objects.filter(workspace=workspace, pk__in=chosen)}
    rows = analytics.figures(sources[pk] for pk in dict.fromkeys(chosen) if pk in sources)
    kind = _kind(request)
    page = Paginator(analytics.started_sources(workspace, kind), PAGE_SIZE).get_page(
        request.GET.get("page"))
    return render(request, "tracking/analytics/compare.html", {
        "rows": rows, "chosen": [row.source.pk for row in rows], "page_obj": page,
        "page_ids": [s.pk for s in page.object_list],
        "kind": kind, "kinds": Source.Kind.choices, "max_compared": MAX_COMPARED,
        "charts": {"rates": _rates_chart(rows)}})


app_name = "analytics"
urlpatterns = [
    path("", index, name="index"),
    path("compare/", compare, name="compare"),
    path("sources/<int:pk>/", source, name="source"),
    path("sources/<int:pk>/links/", link_title, name="link-title"),
    path("sources/<int:pk>/responses.csv", responses_csv, name="responses-csv"),
]
