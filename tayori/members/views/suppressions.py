"""Pages: the workspace's suppression list — addresses and numbers never sent to — with search,
filters by why (bounce, complaint, unsubscribed, by hand) and expiry, the delivery that caused
one, a CSV download of the search (masked like the page), adding (normalized like member
contacts) and removing."""

from zoneinfo import ZoneInfo

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import can, requires
from tayori.members import csvio, services, values
from tayori.members.forms import SuppressionForm
from tayori.members.masking import mask_email, mask_phone
from tayori.members.models import Suppression
from tayori.members.views.helpers import PAGE_SIZE, can_view_pii, looks_like_contact, target_of

GROUPS = {
    "bounce": (gettext_lazy("Bounces"), Q(reason__startswith="bounce:")),
    "complaint": (gettext_lazy("Complaints"), Q(reason__startswith="complaint")),
    "unsubscribed": (gettext_lazy("Unsubscribed"), Q(reason__startswith="unsubscribed")),
    "manual": (gettext_lazy("Added by hand"), Q(source="manual")),
}
EXPORT_ENCODING = "utf-8-sig"  # Excel opens it with Japanese intact


def _masked(suppression) -> str:
    mask = mask_email if suppression.kind == Suppression.Kind.EMAIL else mask_phone
    return mask(suppression.value)


def _search(request, pii: bool) -> tuple:
    """The suppressions the filters choose, the filters as given, and a refusal if any."""
    suppressions = Suppression.objects.filter(workspace=request.workspace)
    given = {key: request.GET.get(key, "").strip()[:200]
             for key in ("q", "kind", "group", "expired")}
    if given["kind"] in Suppression.Kind.values:
        suppressions = suppressions.filter(kind=given["kind"])
    if given["group"] in GROUPS:
        suppressions = suppressions.filter(GROUPS[given["group"]][1])
    if not given["expired"]:
        suppressions = suppressions.filter(Q(expires_at__isnull=True) |
                                           Q(expires_at__gt=timezone.now()))
    query, refusal = given["q"], None
    if query:
        if pii:
            condition = Q(value__icontains=query) | Q(reason__icontains=query) | Q(
                source__icontains=query)
            for normalize in (values.normalize_email, values.normalize_phone):
                try:
                    condition |= Q(value=normalize(query))
                except values.FieldError:
                    pass
            suppressions = suppressions.filter(condition)
        elif looks_like_contact(query):
            refusal = _("Your role may not see email addresses or phone numbers, so it cannot "
                        "search by them. Search by reason or source instead.")
            suppressions = suppressions.none()
        else:
            suppressions = suppressions.filter(Q(reason__icontains=query) |
                                               Q(source__icontains=query))
    return suppressions.order_by("-created_at", "-id"), given, refusal


def _expiry(suppression, now) -> str:
    if suppression.expires_at is None:
        return "permanent"
    return "expired" if suppression.expires_at <= now else "until"


@requires("members.view")
def index(request):
    pii = can_view_pii(request)
    suppressions, given, refusal = _search(request, pii)
    page = Paginator(suppressions, PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    rows = [{"suppression": s, "value": s.value if pii else _masked(s),
             "expiry": _expiry(s, now)} for s in page.object_list]
    return render(request, "members/suppressions.html", {
        "page_obj": page, "rows": rows, "query": given["q"], "kind": given["kind"],
        "group": given["group"], "show_expired": bool(given["expired"]), "refusal": refusal,
        "kinds": Suppression.Kind.choices, "pii_visible": pii,
        "groups": [(key, label) for key, (label, _q) in GROUPS.items()],
        "can_edit": can(request, "members.edit"),
        "can_export": can(request, "members.export"),
        "can_see_deliveries": can(request, "deliveries.view"),
    })


@requires("members.export")
def export(request):
    pii = can_view_pii(request)
    suppressions, given, _refusal = _search(request, pii)
    count = suppressions.count()
    # The audit log is read by roles that may not see addresses: a searched one is masked.
    audit.record("suppression.exported", request=request, count=count, masked=not pii,
                 filters={**given, "q": mask_email(given["q"]) if "@" in given["q"] else
                          ("***" if given["q"] else "")})
    now, zone = timezone.now(), ZoneInfo(request.workspace.time_zone)
    # The rows are written after the view returns, when the request's language and time zone
    # are no longer active: every word is translated here.
    header = [_("Kind"), _("Address or number"), _("Reason"), _("Source"), _("Expiry"),
              _("Expires at"), _("Delivery"), _("Created")]
    kinds = {value: str(label) for value, label in Suppression.Kind.choices}
    states = {"permanent": _("Permanent"), "expired": _("Expired"), "until": _("Until")}

    def when(moment) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if moment else ""

    def rows():
        yield header
        for s in suppressions.iterator(chunk_size=2000):
            yield [csvio.defuse_formula(str(cell)) for cell in (
                kinds.get(s.kind, s.kind), s.value if pii else _masked(s), s.reason, s.source,
                states[_expiry(s, now)], when(s.expires_at), s.delivery_id or "",
                when(s.created_at))]

    response = StreamingHttpResponse(csvio.encoded_rows(rows(), EXPORT_ENCODING),
                                     content_type="text/csv; charset=utf-8")
    stamp = now.astimezone(zone).strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="suppressions-{stamp}.csv"'
    return response


@requires("members.edit")
def create(request):
    form = SuppressionForm(request.POST or None, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        suppression = form.save(commit=False)
        suppression.workspace = request.workspace
        suppression.source = suppression.source or "manual"
        try:
            with transaction.atomic():
                suppression.save()
        except IntegrityError:  # added concurrently
            form.add_error("value", _("This is already suppressed."))
        else:
            audit.record("suppression.added", request=request, target=target_of(suppression),
                         kind=suppression.kind, value=_masked(suppression),
                         reason=suppression.reason)
            messages.success(request, _("Suppression added."))
            return redirect("members:suppressions")
    return render(request, "members/suppression_form.html", {"form": form})


@requires("members.edit")
@require_POST
def delete(request, pk):
    suppression = get_object_or_404(Suppression, pk=pk, workspace=request.workspace)
    target = target_of(suppression)
    reactivated = services.lift_suppression(suppression)
    audit.record("suppression.removed", request=request, target=target, kind=suppression.kind,
                 value=_masked(suppression), reason=suppression.reason,
                 members_reactivated=reactivated)
    messages.success(request, _("Suppression removed.") if not reactivated else
                     _("Suppression removed; the member is active again."))
    return redirect("members:suppressions")


urlpatterns = [
    path("suppressions/", index, name="suppressions"),
    path("suppressions/export.csv", export, name="suppressions-export"),
    path("suppressions/new/", create, name="suppression-create"),
    path("suppressions/<int:pk>/delete/", delete, name="suppression-delete"),
]
