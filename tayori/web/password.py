"""An operator changing their own password, and the forced change after a one-time password.

The new password passes Django's ``AUTH_PASSWORD_VALIDATORS``. Wrong current passwords count
towards the sign-in lockout, so a borrowed session cannot be used to guess the password.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache

from tayori.accounts import audit
from tayori.accounts.access import requires
from tayori.web import auth


def _password_field(label, autocomplete: str, help_text="") -> forms.CharField:
    return forms.CharField(label=label, strip=False, help_text=help_text,
                           widget=forms.PasswordInput(attrs={"autocomplete": autocomplete}))


class PasswordChangeForm(forms.Form):
    current_password = _password_field(gettext_lazy("Current password"), "current-password")
    new_password = _password_field(gettext_lazy("New password"), "new-password")
    new_password_again = _password_field(gettext_lazy("New password (again)"), "new-password")

    def __init__(self, *args, operator, **kwargs):
        super().__init__(*args, **kwargs)
        self.operator = operator
        self.wrong_current_password = False
        self.fields["new_password"].help_text = " ".join(
            password_validation.password_validators_help_texts())

    def clean_current_password(self) -> str:
        password = self.cleaned_data["current_password"]
        if not self.operator.check_password(password):
            self.wrong_current_password = True
            raise ValidationError(_("The current password is not correct."))
        return password

    def clean_new_password(self) -> str:
        password = self.cleaned_data["new_password"]
        password_validation.validate_password(password, self.operator)
        # A one-time password someone else has seen must really be replaced.
        if self.operator.check_password(password):
            raise ValidationError(_("Choose a password different from the current one."))
        return password

    def clean(self):
        data = super().clean()
        new, again = data.get("new_password"), data.get("new_password_again")
        if new and again is not None and new != again:
            self.add_error("new_password_again", _("The two new passwords do not match."))
        return data


def _next_url(request: HttpRequest) -> str:
    nxt = request.POST.get("next") or request.GET.get("next")
    if nxt and url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
        return nxt
    return reverse("home")


@requires(None, while_password_change_pending=True)
@never_cache
def password_change(request: HttpRequest) -> HttpResponse:
    operator = request.user
    form = PasswordChangeForm(request.POST or None, operator=operator)
    if request.method == "POST":
        if form.is_valid():
            auth.change_password(request, operator, form.cleaned_data["new_password"])
            messages.success(request, _("Your password was changed."))
            return HttpResponseRedirect(_next_url(request))
        if form.wrong_current_password:
            audit.record("operator.password_change_failed", request=request,
                         target=operator.email)
            if auth.count_failure(request, operator):
                auth.sign_out(request)
                messages.error(request, _("Too many failed attempts. Try again later."))
                return redirect("login")
    return render(request, "web/password_change.html", {
        "form": form,
        "forced": operator.must_change_password,
        "next": request.POST.get("next") or request.GET.get("next", ""),
    })
