"""The UI shell: sign-in and out, two-factor setup, dashboard, language and workspace switch."""

from datetime import datetime, time, timedelta

import pyotp
import segno
from django import forms
from django.contrib import messages
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import public, requires
from tayori.accounts.middleware import SESSION_LANGUAGE, SESSION_WORKSPACE
from tayori.accounts.models import Membership
from tayori.members.models import Job, Member, Segment
from tayori.web import auth


class LoginForm(forms.Form):
    email = forms.EmailField(label=gettext_lazy("Email address"))
    password = forms.CharField(label=gettext_lazy("Password"), widget=forms.PasswordInput)


class CodeForm(forms.Form):
    code = forms.CharField(label=gettext_lazy("Authentication code"), max_length=10)


def _next_url(request, default="home"):
    nxt = request.POST.get("next") or request.GET.get("next")
    if nxt and url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}):
        return nxt
    from django.urls import reverse
    return reverse(default)


@public
def login_view(request):
    form = LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = auth.check_password(request, form.cleaned_data["email"],
                                       form.cleaned_data["password"])
        except auth.LoginRefused as refused:
            if str(refused) == "locked":
                form.add_error(None, _("Too many failed attempts. Try again later."))
            else:
                form.add_error(None, _("Email or password is incorrect."))
        else:
            if user.totp_enabled:
                request.session[auth.PENDING_2FA] = user.pk
                return redirect(f"{_reverse('login-2fa')}?next={_next_url(request)}")
            auth.complete_login(request, user)
            return HttpResponseRedirect(_next_url(request))
    return render(request, "web/login.html", {"form": form, "next": request.GET.get("next", "")})


def _reverse(name):
    from django.urls import reverse
    return reverse(name)


@public
def login_2fa_view(request):
    pending = request.session.get(auth.PENDING_2FA)
    user = auth.Operator.objects.filter(pk=pending).first() if pending else None
    if user is None:
        return redirect("login")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if auth.verify_totp(user, form.cleaned_data["code"]):
            del request.session[auth.PENDING_2FA]
            auth.complete_login(request, user)
            return HttpResponseRedirect(_next_url(request))
        audit.record("login.failed_2fa", request=request, operator=user, target=user.email)
        form.add_error("code", _("The code is not valid."))
    return render(request, "web/login_2fa.html", {"form": form})


@public
@require_POST
def logout_view(request):
    auth.sign_out(request)
    return redirect("login")


@public
def health(request):
    return HttpResponse("ok", content_type="text/plain")


@public
@require_POST
def set_language(request):
    lang = request.POST.get("language")
    if lang in ("ja", "en"):
        request.session[SESSION_LANGUAGE] = lang
        if request.user.is_authenticated:
            request.user.language = lang
            request.user.save(update_fields=["language"])
    return HttpResponseRedirect(_next_url(request))


@public
def no_workspace(request):
    if not request.user.is_authenticated:
        return redirect("login")
    return render(request, "web/no_workspace.html")


def _joined_per_day(members, days: int) -> list[tuple[str, int]]:
    """Members added on each of the last ``days`` days, in the workspace's time zone."""
    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, time.min))
    counted = dict(members.filter(created_at__gte=start)
                   .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
                   .values_list("day").annotate(n=Count("id")).order_by())
    return [(f"{d.month}/{d.day}", counted.get(d, 0))
            for d in (first + timedelta(days=i) for i in range(days))]


@requires(None)
def home(request):
    ws = request.workspace
    members = Member.objects.filter(workspace=ws)
    by_status = dict(members.values_list("status").annotate(n=Count("id")).order_by())
    context = {
        "member_total": sum(by_status.values()),
        "by_status": [(label, by_status.get(value, 0)) for value, label in Member.Status.choices],
        "joined": _joined_per_day(members, days=30),
        "segment_total": Segment.objects.filter(workspace=ws).count(),
        "recent_jobs": Job.objects.filter(workspace=ws)[:5],
    }
    return render(request, "web/home.html", context)


@requires(None)
@require_POST
def switch_workspace(request):
    membership = Membership.objects.filter(
        operator=request.user, workspace_id=request.POST.get("workspace")).first()
    if membership is not None:
        request.session[SESSION_WORKSPACE] = membership.workspace_id
        audit.record("workspace.switch", request=request, workspace=membership.workspace,
                     target=membership.workspace.slug)
    return redirect("home")


@requires(None)
def two_factor(request):
    """Turn TOTP on (scan a QR code, confirm a code) or off (confirm a code)."""
    user = request.user
    if not user.totp_enabled and not user.totp_secret:
        user.totp_secret = pyotp.random_base32()
        user.save(update_fields=["totp_secret"])
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if auth.verify_totp(user, form.cleaned_data["code"]):
            user.totp_enabled = not user.totp_enabled
            if not user.totp_enabled:
                user.totp_secret = ""
            user.save(update_fields=["totp_enabled", "totp_secret"])
            audit.record("operator.2fa_enabled" if user.totp_enabled else "operator.2fa_disabled",
                         request=request, target=user.email)
            messages.success(request, _("Two-factor authentication updated."))
            return redirect("two-factor")
        form.add_error("code", _("The code is not valid."))
    qr = None
    if not user.totp_enabled:
        uri = pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name="Tayori")
        qr = segno.make(uri).svg_inline(scale=4)
    return render(request, "web/two_factor.html",
                  {"form": form, "qr": qr, "secret": user.totp_secret})
