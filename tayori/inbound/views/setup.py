"""Page: Mail → Inbound settings — the domain empty mails go to, the bounce and complaint rates
that pause a send, each reason's rule for suppressing an address (Tayori's default beside it),
the provider feeds (URLs carrying the workspace's feed key, SNS topics, SendGrid's key; a new
key on request) and where to point MX records. Every change is an audit event."""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import requires
from tayori.delivery.models import DeliverySettings, SenderDomain
from tayori.inbound import rates, receiving
from tayori.inbound.consequences import (
    DEFAULT_RULES,
    NEVER,
    NOT_COUNTED,
    Rule,
    forget_rules,
    rules_of,
)
from tayori.inbound.models import BounceRule, InboundSettings
from tayori.inbound.reasons import LABELS, REASONS
from tayori.lib.netaddr import DOMAIN_NAME

_SNS_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
TARGET = "inbound_settings"


class SettingsForm(forms.ModelForm):
    class Meta:
        model = InboundSettings
        fields = ["inbound_domain", "bounce_rate_limit", "complaint_rate_limit"]

    def clean_inbound_domain(self):
        domain = self.cleaned_data["inbound_domain"].strip().lower().rstrip(".")
        if domain and not DOMAIN_NAME.fullmatch(domain):
            raise forms.ValidationError(_("Enter a domain name such as in.example.jp."))
        return domain

    def _percent(self, name):
        value = self.cleaned_data[name]
        if value is not None and not Decimal(0) < value <= Decimal(100):
            raise forms.ValidationError(_("Enter a rate above 0 and at most 100."))
        return value

    def clean_bounce_rate_limit(self):
        return self._percent("bounce_rate_limit")

    def clean_complaint_rate_limit(self):
        return self._percent("complaint_rate_limit")


class FeedsForm(forms.ModelForm):
    class Meta:
        model = InboundSettings
        fields = ["sns_topics", "sendgrid_public_key"]
        widgets = {"sns_topics": forms.Textarea(attrs={"rows": 3}),
                   "sendgrid_public_key": forms.Textarea(attrs={"rows": 3})}

    def clean_sns_topics(self):
        topics = [line.strip() for line in self.cleaned_data["sns_topics"].splitlines()]
        topics = list(dict.fromkeys(t for t in topics if t))
        wrong = [t for t in topics if not _SNS_TOPIC.fullmatch(t)]
        if wrong:
            raise forms.ValidationError(
                _("Not a topic ARN (arn:aws:sns:region:account:name): %(topics)s")
                % {"topics": ", ".join(wrong)})
        return "\n".join(topics)

    def clean_sendgrid_public_key(self):
        # Accepted as shown by SendGrid or as a PEM file: base64, armour and spaces dropped.
        lines = self.cleaned_data["sendgrid_public_key"].strip().splitlines()
        key = "".join("".join(line.split()) for line in lines if not line.startswith("-----"))
        try:
            if key and not base64.b64decode(key, validate=True):
                raise ValueError
        except (binascii.Error, ValueError):
            raise forms.ValidationError(_("Paste the verification key as SendGrid shows it "
                                          "(base64).")) from None
        return key


class RulesForm(forms.Form):
    """Three numbers per reason that can count against an address: bounces, within days,
    suppress for days (empty: until removed)."""

    FIELDS = {"threshold": ("threshold", 0, 1000), "window": ("window_days", 1, 365),
              "suppress": ("suppress_days", 1, 3650)}

    def __init__(self, data=None, *, current: dict[str, Rule]):
        super().__init__(data)
        self.reasons = [reason for reason in REASONS if reason not in NOT_COUNTED]
        for reason in self.reasons:
            rule = current.get(reason, NEVER)
            for name, (attribute, low, high) in self.FIELDS.items():
                model_field = BounceRule._meta.get_field(attribute)
                self.fields[f"{reason}-{name}"] = forms.IntegerField(
                    min_value=low, max_value=high, required=name != "suppress",
                    initial=getattr(rule, attribute),
                    label=f"{LABELS[reason]}: {model_field.verbose_name}",
                    widget=forms.NumberInput(attrs={"style": "width: 6em"}))

    def rows(self) -> list[dict]:
        return [{"reason": reason, "label": LABELS[reason],
                 "default": DEFAULT_RULES.get(reason, NEVER),
                 "fields": [self[f"{reason}-{name}"] for name in self.FIELDS]}
                for reason in self.reasons]

    def rules(self) -> dict[str, Rule]:
        data = self.cleaned_data
        return {reason: Rule(data[f"{reason}-threshold"], data[f"{reason}-window"],
                             data[f"{reason}-suppress"]) for reason in self.reasons}


def _describe(rule: Rule) -> dict:
    return {"threshold": rule.threshold, "window_days": rule.window_days,
            "suppress_days": rule.suppress_days}


def save_rules(workspace, rules: dict[str, Rule]) -> dict:
    """Keep a row for each reason whose rule is not Tayori's default (a reason left at the
    default follows it); return what changed, before and after."""
    forget_rules()  # read them fresh: this process may hold them for a few seconds
    before = rules_of(workspace.pk)
    changed = {}
    with transaction.atomic():
        for reason, rule in rules.items():
            if rule == before.get(reason, NEVER):
                continue
            changed[reason] = {"before": _describe(before.get(reason, NEVER)),
                               "after": _describe(rule)}
            if rule == DEFAULT_RULES.get(reason, NEVER):
                BounceRule.objects.filter(workspace=workspace, reason=reason).delete()
            else:
                BounceRule.objects.update_or_create(
                    workspace=workspace, reason=reason,
                    defaults={"threshold": rule.threshold, "window_days": rule.window_days,
                              "suppress_days": rule.suppress_days})
    forget_rules()
    return changed


def _save_fields(form) -> None:
    # Only the form's own fields: a feed key made meanwhile is not written back.
    form.instance.save(update_fields=list(form.fields))


def _save_settings(request, form) -> None:
    before = {name: str(form.initial.get(name, "")) for name in form.changed_data}
    _save_fields(form)
    if form.changed_data:
        audit.record("inbound.settings_changed", request=request, target=TARGET, changed={
            name: {"before": before[name], "after": str(form.cleaned_data[name])}
            for name in form.changed_data})
    if "inbound_domain" in form.changed_data:
        receiving.forget_domains()


def _save_feeds(request, form) -> None:
    _save_fields(form)
    if form.changed_data:
        audit.record("inbound.feeds_changed", request=request, target=TARGET,
                     changed=form.changed_data,
                     sns_topics=form.cleaned_data["sns_topics"].splitlines())


def _save_rules(request, form) -> None:
    changed = save_rules(request.workspace, form.rules())
    if changed:
        audit.record("inbound.rules_changed", request=request, target=TARGET, changed=changed)


FORMS = {"settings": (SettingsForm, _save_settings), "feeds": (FeedsForm, _save_feeds),
         "rules": (RulesForm, _save_rules)}


def _mx_domains(workspace, inbound_domain: str) -> list[tuple[str, str]]:
    """(domain, what it is for) of this workspace's domains tayori mx takes mail for. The
    accepted set spans every workspace; only this one's own domains are shown."""
    delivery = DeliverySettings.objects.filter(workspace=workspace).first() or DeliverySettings()
    roles = {}
    for domain in SenderDomain.objects.filter(workspace=workspace).values_list("domain",
                                                                              flat=True):
        roles[domain.lower()] = _("sender domain: point its MX here only if it receives no "
                                  "other mail")
    for domain, role in ((delivery.transactional_bounce_domain,
                          _("bounce domain (transactional mail)")),
                         (delivery.bounce_domain, _("bounce domain")),
                         (inbound_domain, _("inbound domain (sign-up addresses)"))):
        if domain:
            roles[domain.lower()] = role
    accepted = receiving.accepted_domains()
    return sorted((d, str(role)) for d, role in roles.items() if d in accepted)


@requires("settings.manage")
@never_cache  # the feed URLs carry the workspace's feed key
def settings_page(request):
    options = InboundSettings.of(request.workspace)
    current = rules_of(request.workspace.pk)
    forms_ = {"settings": SettingsForm(instance=options), "feeds": FeedsForm(instance=options),
              "rules": RulesForm(current=current)}
    chosen = request.POST.get("form")
    if request.method == "POST" and chosen in FORMS:
        form_class, save = FORMS[chosen]
        options_of = {"current": current} if form_class is RulesForm else {"instance": options}
        form = forms_[chosen] = form_class(request.POST, **options_of)
        if form.is_valid():
            save(request, form)
            messages.success(request, _("Saved."))
            return redirect("inbound:settings")
    return render(request, "inbound/settings.html", {
        "form": forms_["settings"], "feeds_form": forms_["feeds"], "rules_form": forms_["rules"],
        **_page_context(request)}, status=400 if any(f.errors for f in forms_.values()) else 200)


def _page_context(request) -> dict:
    saved = InboundSettings.of(request.workspace)  # not what an invalid form left in memory
    host = request.get_host()
    return {
        "customized": set(BounceRule.objects.filter(workspace=request.workspace)
                          .values_list("reason", flat=True)),
        "not_counted": [LABELS[r] for r in REASONS if r in NOT_COUNTED],
        "feeds": [(name, request.build_absolute_uri(
            reverse(f"inbound_feeds:{feed}", kwargs={"key": saved.feed_key})))
            for feed, name in (("ses", "Amazon SES (SNS)"), ("sendgrid", "SendGrid"))],
        "mx_domains": _mx_domains(request.workspace, saved.inbound_domain),
        "shared_mx_domains": sorted(settings.MX_DOMAINS),
        # The name tayori mx greets with, unless left at its default: then this site's host.
        "mx_hostname": settings.MX_HOSTNAME if settings.MX_HOSTNAME != "localhost"
        else host.rpartition(":")[0] or host,
        "mx_listen": f"{settings.MX_HOST}:{settings.MX_PORT}",
        "min_sent": rates.MIN_SENT, "min_sent_complaints": rates.MIN_SENT_COMPLAINTS,
    }


@requires("settings.manage")
@require_POST
def new_feed_key(request):
    options = InboundSettings.of(request.workspace)
    options.feed_key = InboundSettings._meta.get_field("feed_key").get_default()
    options.save(update_fields=["feed_key"])
    audit.record("inbound.feed_key_changed", request=request, target=TARGET)
    messages.success(request, _("New feed key made. Update the URLs at Amazon SNS and SendGrid: "
                                "the old ones no longer work."))
    return redirect("inbound:settings")


urlpatterns = [
    path("settings/", settings_page, name="settings"),
    path("settings/feed-key/", new_feed_key, name="feed-key"),
]
