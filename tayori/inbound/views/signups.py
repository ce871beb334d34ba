"""Pages under Mail → Sign-up addresses: the empty-mail (空メール) addresses
join-<code>@<inbound domain> — adding, editing and deleting one, its full address or what it
still lacks to work, and the mails it received lately. Every change is an audit event."""

from __future__ import annotations

import re

from django import forms
from django.contrib import messages
from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import can, requires
from tayori.delivery import sending
from tayori.delivery.models import DeliverySettings
from tayori.inbound import signup
from tayori.inbound.models import EmptyMail, InboundSettings, SignupAddress
from tayori.members.models import MemberList
from tayori.members.views.helpers import can_view_pii, shown_email

MAILS_SHOWN = 50
_CODE = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?")
_CONFIRM_URL = re.compile(r"\{\{\s*data\.confirm_url\s*\}\}")
CODE_TAKEN = gettext_lazy("This code is already in use. Choose another.")


def default_reply(workspace) -> dict:
    """The reply a new address starts with, in the workspace's language (its members read it,
    not the operator): plain text, short lines, the link on a line of its own for phones."""
    with translation.override(workspace.language or "ja"):
        return {
            "from_name": workspace.name,
            "subject": _("Please confirm your sign-up"),
            "text": _("Thank you for your mail.\n\n"
                      "To complete your sign-up, open the page below\n"
                      "and press the button:\n\n"
                      "{{ data.confirm_url }}\n\n"
                      "The link is valid for %(days)d days.\n"
                      "If you did not send us a mail, please ignore this message.")
            % {"days": signup.CONFIRM_WITHIN.days},
        }


class SignupForm(forms.ModelForm):
    class Meta:
        model = SignupAddress
        fields = ["code", "name", "member_list", "from_name", "subject", "text",
                  "wording_version", "active"]
        widgets = {"text": forms.Textarea(attrs={"rows": 10})}

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["member_list"].queryset = MemberList.objects.filter(workspace=workspace)

    def clean_code(self):
        code = self.cleaned_data["code"].strip().lower()
        if not _CODE.fullmatch(code):
            raise forms.ValidationError(_("Use lower-case letters, digits, hyphens and "
                                          "underscores, beginning and ending with a letter or "
                                          "digit."))
        # Codes are unique across Tayori: tayori mx finds the address by its code alone.
        if SignupAddress.objects.filter(code=code).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(CODE_TAKEN)
        return code

    def clean(self):
        data = super().clean()
        subject, text = data.get("subject"), data.get("text")
        if text and not _CONFIRM_URL.search(text):
            self.add_error("text", _("The reply must contain {{ data.confirm_url }}, the link "
                                     "that confirms the sign-up."))
        if subject and text:
            content = sending.Content(subject=subject, text=text,
                                      from_address="join@example.jp")
            for problem in sending.check_content(content):
                if problem.field in ("subject", "text"):
                    self.add_error(problem.field, problem.message)
        return data


def _signup(request, pk) -> SignupAddress:
    return get_object_or_404(SignupAddress.objects.select_related("member_list"), pk=pk,
                             workspace=request.workspace)


def _target(address: SignupAddress) -> str:
    return f"signup_address:{address.pk}"


def _missing(workspace) -> dict:
    """What an empty mail needs to be answered: an inbound domain and a tracking host."""
    host = DeliverySettings.objects.filter(workspace=workspace).values_list(
        "tracking_host", flat=True).first()
    return {"no_domain": not InboundSettings.of(workspace).inbound_domain, "no_host": not host}


@requires("settings.manage")
def index(request):
    addresses = SignupAddress.objects.filter(workspace=request.workspace).select_related(
        "member_list")
    domain = InboundSettings.of(request.workspace).inbound_domain
    return render(request, "inbound/signups.html", {
        "rows": [{"signup": a, "address": f"join-{a.code}@{domain}" if domain else ""}
                 for a in addresses], **_missing(request.workspace)})


def _save(form) -> bool:
    try:
        with transaction.atomic():
            form.save()
    except IntegrityError:  # the code was taken between the check and the insert
        form.add_error("code", CODE_TAKEN)
        return False
    return True


@requires("settings.manage")
def create(request):
    form = SignupForm(request.POST or None, workspace=request.workspace,
                      instance=SignupAddress(workspace=request.workspace),
                      initial=default_reply(request.workspace))
    if request.method == "POST" and form.is_valid() and _save(form):
        address = form.instance
        audit.record("inbound.signup_created", request=request, target=_target(address),
                     code=address.code, name=address.name)
        messages.success(request, _("Sign-up address added."))
        return redirect("inbound:signup", address.pk)
    return render(request, "inbound/signup.html", {"form": form, **_missing(request.workspace)},
                  status=400 if form.errors else 200)


@requires("settings.manage")
def edit(request, pk):
    address = _signup(request, pk)
    form = SignupForm(request.POST or None, workspace=request.workspace, instance=address)
    if request.method == "POST" and form.is_valid() and _save(form):
        if form.changed_data:
            audit.record("inbound.signup_updated", request=request, target=_target(address),
                         code=address.code, changed=form.changed_data)
        messages.success(request, _("Saved."))
        return redirect("inbound:signup", address.pk)
    if request.method == "POST":
        address.refresh_from_db()  # the invalid form changed it in memory
    pii = can_view_pii(request)
    mails = EmptyMail.objects.filter(workspace=request.workspace, signup=address)[:MAILS_SHOWN]
    return render(request, "inbound/signup.html", {
        "form": form, "signup": address, "address": signup.address_of(address),
        "mails": [{"mail": m, "sender": shown_email(m.sender, pii)}
                  for m in mails],
        "mails_shown": MAILS_SHOWN, "can_see_members": can(request, "members.view"),
        **_missing(request.workspace)}, status=400 if form.errors else 200)


@requires("settings.manage")
@require_POST
def delete(request, pk):
    address = _signup(request, pk)
    target, code = _target(address), address.code
    address.delete()
    audit.record("inbound.signup_deleted", request=request, target=target, code=code)
    messages.success(request, _("Sign-up address deleted."))
    return redirect("inbound:signups")


urlpatterns = [
    path("signups/", index, name="signups"),
    path("signups/new/", create, name="signup-create"),
    path("signups/<int:pk>/", edit, name="signup"),
    path("signups/<int:pk>/delete/", delete, name="signup-delete"),
]
