"""API keys page: list, create (the raw key is shown once, on the response to the create) and
revoke. A key carries a subset of its creator's permissions and an optional network allow-list."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from tayori.accounts import audit, permissions
from tayori.accounts.access import requires
from tayori.accounts.forms import ApiKeyForm
from tayori.accounts.models import ApiKey

PAGE_SIZE = 50


@requires("apikeys.manage")
def apikey_list(request: HttpRequest) -> HttpResponse:
    keys = ApiKey.objects.filter(workspace=request.workspace).select_related("created_by")
    page = Paginator(keys, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "accounts/apikeys.html", {
        "page_obj": page,
        "labels": permissions.PERMISSIONS,
    })


@requires("apikeys.manage")
@never_cache
def apikey_create(request: HttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None, membership=request.membership)
    if request.method == "POST" and form.is_valid():
        key, raw = ApiKey.issue(
            request.workspace, form.cleaned_data["name"], form.cleaned_data["permissions"],
            allowed_cidrs=form.cleaned_data["allowed_networks"], created_by=request.user)
        audit.record("apikey.created", request=request, target=f"{key.name} ({key.prefix}…)",
                     permissions=key.permissions, allowed_cidrs=key.allowed_cidrs)
        return render(request, "accounts/apikey_created.html", {"key": key, "raw": raw})
    return render(request, "accounts/apikey_form.html", {"form": form})


@requires("apikeys.manage")
@require_POST
def apikey_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=key_id, workspace=request.workspace)
    # Conditional update: revoking twice keeps the first time and audits once.
    revoked = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now())
    if revoked:
        audit.record("apikey.revoked", request=request, target=f"{key.name} ({key.prefix}…)")
        messages.success(request, _("The key %(name)s was revoked; it no longer works.")
                         % {"name": key.name})
    return redirect("accounts:apikeys")


urlpatterns = [
    path("api-keys/", apikey_list, name="apikeys"),
    path("api-keys/new/", apikey_create, name="apikey-create"),
    path("api-keys/<int:key_id>/revoke/", apikey_revoke, name="apikey-revoke"),
]
