"""Audit log page: events of this workspace filtered by operator, action and date range (whole
days in the workspace's time zone), paginated, and downloadable as CSV.

The CSV is UTF-8 with a byte-order mark by default, so Excel opens it with Japanese intact, or
CP932 (Shift_JIS) for older tools. Downloading is itself an audit event.
"""

import json
from collections.abc import Iterator

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _

from tayori.accounts import audit
from tayori.accounts.access import requires
from tayori.accounts.forms import AuditFilterForm
from tayori.accounts.models import AuditEvent
from tayori.members.csvio import encoded_rows

PAGE_SIZE = 50
ENCODINGS = {"utf-8": "utf-8-sig", "cp932": "cp932"}
COLUMNS = ["time", "actor", "action", "target", "ip", "detail"]
# A cell starting with one of these is a formula to Excel; prefixing a quote keeps it text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _events(request: HttpRequest):
    form = AuditFilterForm(request.GET or None, workspace=request.workspace)
    events = form.filter(AuditEvent.objects.filter(workspace=request.workspace)
                         .select_related("operator", "api_key"))
    return form, events


@requires("audit.view")
def audit_list(request: HttpRequest) -> HttpResponse:
    form, events = _events(request)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    for event in page:
        event.detail_text = _detail(event.detail)
    filters = request.GET.copy()
    filters.pop("page", None)
    return render(request, "accounts/audit.html", {
        "form": form, "page_obj": page, "query": filters.urlencode(),
    })


def _detail(detail) -> str:
    return json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else ""


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_START) else text


def _rows(events, tz) -> Iterator[list[str]]:
    yield COLUMNS
    for event in events.iterator(chunk_size=2000):
        yield [_cell(v) for v in (
            timezone.localtime(event.created_at, tz).isoformat(timespec="seconds"),
            event.actor, event.action, event.target, event.ip, _detail(event.detail))]


@requires("audit.view")
def audit_export(request: HttpRequest) -> HttpResponse:
    form, events = _events(request)
    if form.is_bound and not form.is_valid():
        return HttpResponseBadRequest(
            _("The filter is not valid: %(errors)s") % {"errors": form.errors.as_text()},
            content_type="text/plain; charset=utf-8")
    choice = request.GET.get("encoding", "utf-8")
    encoding = ENCODINGS.get(choice, "utf-8-sig")
    exported = audit.record("audit.exported", request=request,
                            target=choice if choice in ENCODINGS else "utf-8",
                            filters=form.active_filters(), rows=events.count())
    # The download lists what was there when it was asked for, not its own audit event.
    events = events.exclude(pk=exported.pk)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(
        encoded_rows(_rows(events, timezone.get_current_timezone()), encoding),
        content_type=f"text/csv; charset={'Shift_JIS' if encoding == 'cp932' else 'utf-8'}")
    response["Content-Disposition"] = (
        f'attachment; filename="audit-{request.workspace.slug}-{stamp}.csv"')
    return response


urlpatterns = [
    path("audit/", audit_list, name="audit"),
    path("audit/export.csv", audit_export, name="audit-export"),
]
