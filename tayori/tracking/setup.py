"""The tracking settings page: how event IP addresses are kept, the conversion and scanner
windows, the workspace's tracking domains (several hosts, each a CNAME to Tayori, chosen per
campaign) and the conversion tag to paste into the company's landing and goal pages."""

import re

from django import forms
from django.contrib import messages
from django.db import IntegrityError
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tayori.accounts import audit
from tayori.accounts.access import requires
from tayori.delivery import tokens
from tayori.delivery.models import DeliverySettings
from tayori.tracking.models import TrackingDomain, TrackingSettings

_HOST = r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"


class SettingsForm(forms.ModelForm):
    class Meta:
        model = TrackingSettings
        fields = ["ip_mode", "conversion_days", "scanner_seconds"]

    def clean_conversion_days(self):
        days = self.cleaned_data["conversion_days"]
        if not 1 <= days <= 90:
            raise forms.ValidationError(_("Between 1 and 90 days."))
        return days

    def clean_scanner_seconds(self):
        seconds = self.cleaned_data["scanner_seconds"]
        if seconds > 300:
            raise forms.ValidationError(_("At most 300 seconds."))
        return seconds


class DomainForm(forms.Form):
    host = forms.CharField(max_length=253, label=gettext_lazy("Tracking domain"))

    def clean_host(self):
        host = self.cleaned_data["host"].strip().lower()
        if not re.match(_HOST, host):
            raise forms.ValidationError(_("Enter a host name such as t.example.jp."))
        if TrackingDomain.objects.filter(host=host).exists():
            raise forms.ValidationError(_("This host is already in use."))
        return host


def settings_of(workspace) -> TrackingSettings:
    return TrackingSettings.objects.get_or_create(workspace=workspace)[0]


@requires("settings.manage")
def tracking_settings(request):
    options = settings_of(request.workspace)
    form = SettingsForm(instance=options)
    domain_form = DomainForm()
    if request.method == "POST" and request.POST.get("form") == "settings":
        form = SettingsForm(request.POST, instance=options)
        if form.is_valid():
            form.save()
            audit.record("tracking.settings", request=request, target="tracking_settings",
                         **{name: str(form.cleaned_data[name]) for name in form.changed_data})
            messages.success(request, _("Tracking settings saved."))
            return redirect("tracking_setup:settings")
    elif request.method == "POST" and request.POST.get("form") == "domain":
        domain_form = DomainForm(request.POST)
        if domain_form.is_valid():
            try:
                domain = TrackingDomain.objects.create(workspace=request.workspace,
                                                       host=domain_form.cleaned_data["host"])
            except IntegrityError:  # taken between the check and the insert
                domain_form.add_error("host", _("This host is already in use."))
            else:
                audit.record("tracking.domain_add", request=request,
                             target=f"tracking_domain:{domain.pk}", host=domain.host)
                messages.success(request, _("Tracking domain added."))
                return redirect("tracking_setup:settings")
    elif request.method == "POST" and request.POST.get("form") == "remove":
        domain = TrackingDomain.objects.filter(workspace=request.workspace,
                                               pk=request.POST.get("domain") or 0).first()
        if domain is not None:
            audit.record("tracking.domain_remove", request=request,
                         target=f"tracking_domain:{domain.pk}", host=domain.host)
            domain.delete()
            messages.success(request, _("Tracking domain removed."))
        return redirect("tracking_setup:settings")
    delivery = DeliverySettings.objects.filter(workspace=request.workspace).first()
    host = delivery.tracking_host if delivery and delivery.tracking_host else ""
    base = tokens.base_url(host) if host else ""
    return render(request, "tracking/settings.html", {
        "form": form, "domain_form": domain_form, "default_host": host,
        "domains": TrackingDomain.objects.filter(workspace=request.workspace),
        "landing_tag": f'<script src="{base}/t/tag.js" async></script>' if base else "",
        "goal_tag": (f'<script src="{base}/t/tag.js" data-conversion data-value="12800">'
                     "</script>") if base else ""}, status=400 if form.errors or
                  domain_form.errors else 200)


app_name = "tracking_setup"
urlpatterns = [path("", tracking_settings, name="settings")]
