"""Workspace settings page: name, time zone, default language and whether every API key must
carry an IP allow-list. Changes are audited with the values before and after."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _

from tayori.accounts import audit
from tayori.accounts.access import requires
from tayori.accounts.forms import SettingsForm, keys_without_networks
from tayori.accounts.models import Workspace


@requires("settings.manage")
def workspace_settings(request: HttpRequest) -> HttpResponse:
    # A fresh copy: a failed form must not leave half-applied values on request.workspace,
    # which the page around the form still shows.
    workspace = Workspace.objects.get(pk=request.workspace.pk)
    form = SettingsForm(request.POST or None, instance=workspace)
    if request.method == "POST" and form.is_valid():
        changed = form.changed_data
        if not changed:
            messages.info(request, _("Nothing changed."))
            return redirect("accounts:settings")
        before = {name: form.initial.get(name) for name in changed}
        form.save()
        after = {name: getattr(workspace, name) for name in changed}
        audit.record("settings.changed", request=request, target=workspace.slug,
                     before=before, after=after)
        messages.success(request, _("Settings saved."))
        if "require_key_ip_rules" in changed and workspace.require_key_ip_rules:
            unrestricted = keys_without_networks(workspace)
            if unrestricted:
                messages.warning(request, _(
                    "These API keys have no allowed networks and are refused from now on: "
                    "%(names)s") % {"names": ", ".join(unrestricted)})
        return redirect("accounts:settings")
    return render(request, "accounts/settings.html", {"form": form})


urlpatterns = [
    path("settings/", workspace_settings, name="settings"),
]
