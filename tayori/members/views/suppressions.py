"""Pages: the workspace's suppression list — addresses and numbers never sent to — with search,
adding (normalized like member contacts) and removing."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import can, requires
from tayori.members import values
from tayori.members.forms import SuppressionForm
from tayori.members.masking import mask_email, mask_phone
from tayori.members.models import Suppression
from tayori.members.views.helpers import PAGE_SIZE, can_view_pii, looks_like_contact, target_of


def _masked(suppression) -> str:
    mask = mask_email if suppression.kind == Suppression.Kind.EMAIL else mask_phone
    return mask(suppression.value)


@requires("members.view")
def index(request):
    pii = can_view_pii(request)
    suppressions = Suppression.objects.filter(workspace=request.workspace)
    kind = request.GET.get("kind", "")
    if kind in Suppression.Kind.values:
        suppressions = suppressions.filter(kind=kind)
    query = request.GET.get("q", "").strip()[:200]
    refusal = None
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
    page = Paginator(suppressions.order_by("-created_at", "-id"), PAGE_SIZE).get_page(
        request.GET.get("page"))
    now = timezone.now()
    rows = [{"suppression": s, "value": s.value if pii else _masked(s),
             "expired": s.expires_at is not None and s.expires_at <= now}
            for s in page.object_list]
    return render(request, "members/suppressions.html", {
        "page_obj": page, "rows": rows, "query": query, "kind": kind, "refusal": refusal,
        "kinds": Suppression.Kind.choices, "pii_visible": pii,
        "can_edit": can(request, "members.edit"),
    })


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
    suppression.delete()
    audit.record("suppression.removed", request=request, target=target, kind=suppression.kind,
                 value=_masked(suppression), reason=suppression.reason)
    messages.success(request, _("Suppression removed."))
    return redirect("members:suppressions")


urlpatterns = [
    path("suppressions/", index, name="suppressions"),
    path("suppressions/new/", create, name="suppression-create"),
    path("suppressions/<int:pk>/delete/", delete, name="suppression-delete"),
]
