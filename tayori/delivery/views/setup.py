"""Pages: how a workspace sends — sandbox or relays, bounce and tracking domains, quiet hours —,
its SMTP relays (passwords sealed at rest, never shown back) and its sender domains with DKIM
keys and the DNS record to publish."""

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import requires
from tayori.delivery import dkim
from tayori.delivery.models import DeliverySettings, Relay, SenderDomain
from tayori.lib import crypto
from tayori.lib.netaddr import DOMAIN_NAME


def _domain(**options) -> forms.RegexField:
    return forms.RegexField(regex=rf"^{DOMAIN_NAME.pattern}$", max_length=253, required=False,
                            error_messages={"invalid": gettext_lazy("Enter a domain name.")},
                            **options)


class SettingsForm(forms.ModelForm):
    class Meta:
        model = DeliverySettings
        fields = ["mode", "bounce_domain", "transactional_bounce_domain", "tracking_host",
                  "quiet_start", "quiet_end"]
        widgets = {"quiet_start": forms.TimeInput(attrs={"type": "time"}),
                   "quiet_end": forms.TimeInput(attrs={"type": "time"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("bounce_domain", "transactional_bounce_domain"):
            model_field = DeliverySettings._meta.get_field(name)
            self.fields[name] = _domain(label=model_field.verbose_name.capitalize(),
                                        help_text=model_field.help_text)

    def clean(self):
        data = super().clean()
        if data.get("mode") == DeliverySettings.Mode.RELAYS and not Relay.objects.filter(
                workspace=self.instance.workspace, active=True).exists():
            self.add_error("mode", _("Add a relay in use before switching to relays."))
        return data


class RelayForm(forms.ModelForm):
    new_password = forms.CharField(label=gettext_lazy("Password"), required=False,
                                   widget=forms.PasswordInput(render_value=False),
                                   help_text=gettext_lazy("Leave empty to keep the current one."))

    class Meta:
        model = Relay
        fields = ["name", "host", "port", "tls", "stream", "username", "max_connections",
                  "max_per_connection", "max_per_hour", "weight", "active"]

    def save(self, commit=True):
        relay = super().save(commit=False)
        if self.cleaned_data["new_password"]:
            relay.password = crypto.encrypt(self.cleaned_data["new_password"])
        if commit:
            relay.save()
        return relay


class DomainForm(forms.Form):
    domain = _domain()
    selector = forms.RegexField(regex=r"^[a-z0-9][a-z0-9-]{0,62}$", initial="tayori",
                                label=gettext_lazy("DKIM selector"))
    ed25519 = forms.BooleanField(label=gettext_lazy("Add an Ed25519 signature too"),
                                 required=False)


@requires("settings.manage")
def settings_page(request):
    current = DeliverySettings.of(request.workspace)
    form = SettingsForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        form.save()
        audit.record("delivery.settings_changed", request=request, mode=current.mode,
                     changed=form.changed_data)
        messages.success(request, _("Saved."))
        return redirect("delivery:settings")
    domains = [{"domain": d, "records": _records(d)}
               for d in SenderDomain.objects.filter(workspace=request.workspace)]
    return render(request, "delivery/settings.html", {
        "form": form, "relays": Relay.objects.filter(workspace=request.workspace),
        "domains": domains, "domain_form": DomainForm()}, status=400 if form.errors else 200)


def _records(domain: SenderDomain) -> list[tuple[str, str]]:
    name = f"{domain.selector}._domainkey.{domain.domain}"
    records = []
    if domain.rsa_key:
        records.append((name, dkim.dns_record(crypto.decrypt_bytes(domain.rsa_key))))
    if domain.ed25519_key:
        records.append((f"{domain.ed25519_selector}._domainkey.{domain.domain}",
                        dkim.dns_record(crypto.decrypt_bytes(domain.ed25519_key))))
    return records


@requires("settings.manage")
def relay_edit(request, pk=None):
    relay = get_object_or_404(Relay, pk=pk, workspace=request.workspace) if pk else Relay(
        workspace=request.workspace)
    form = RelayForm(request.POST or None, instance=relay)
    if request.method == "POST" and form.is_valid():
        form.save()
        audit.record("relay.saved", request=request, target=f"relay:{relay.pk}",
                     host=relay.host, port=relay.port, changed=form.changed_data)
        messages.success(request, _("Relay saved."))
        return redirect("delivery:settings")
    return render(request, "delivery/relay.html", {"form": form, "relay": relay},
                  status=400 if form.errors else 200)


@requires("settings.manage")
@require_POST
def relay_delete(request, pk):
    relay = get_object_or_404(Relay, pk=pk, workspace=request.workspace)
    relay.delete()
    audit.record("relay.deleted", request=request, target=f"relay:{pk}", host=relay.host)
    messages.success(request, _("Relay deleted."))
    return redirect("delivery:settings")


@requires("settings.manage")
@require_POST
def domain_add(request):
    form = DomainForm(request.POST)
    if not form.is_valid() or not form.cleaned_data["domain"]:
        messages.error(request, _("Enter a domain name and a selector of letters, digits and "
                                  "hyphens."))
        return redirect("delivery:settings")
    data = form.cleaned_data
    domain, created = SenderDomain.objects.get_or_create(
        workspace=request.workspace, domain=data["domain"],
        defaults={"selector": data["selector"]})
    if not created:
        messages.error(request, _("This domain is already set up."))
        return redirect("delivery:settings")
    domain.rsa_key = crypto.encrypt(dkim.generate_key("rsa"))
    if data["ed25519"]:
        domain.ed25519_key = crypto.encrypt(dkim.generate_key("ed25519"))
    domain.save()
    audit.record("sender_domain.created", request=request, target=f"sender_domain:{domain.pk}",
                 domain=domain.domain, selector=domain.selector)
    messages.success(request, _("DKIM key generated: publish the DNS record shown below."))
    return redirect("delivery:settings")


@requires("settings.manage")
@require_POST
def domain_delete(request, pk):
    domain = get_object_or_404(SenderDomain, pk=pk, workspace=request.workspace)
    domain.delete()
    audit.record("sender_domain.deleted", request=request, target=f"sender_domain:{pk}",
                 domain=domain.domain)
    messages.success(request, _("Sender domain deleted."))
    return redirect("delivery:settings")


urlpatterns = [
    path("sending/", settings_page, name="settings"),
    path("sending/relays/new/", relay_edit, name="relay-new"),
    path("sending/relays/<int:pk>/", relay_edit, name="relay"),
    path("sending/relays/<int:pk>/delete/", relay_delete, name="relay-delete"),
    path("sending/domains/new/", domain_add, name="domain-new"),
    path("sending/domains/<int:pk>/delete/", domain_delete, name="domain-delete"),
]
