"""Operator sign-in: password (argon2), lockout after repeated failures, optional TOTP, and
changing one's own password."""

from datetime import timedelta

import pyotp
from django.conf import settings
from django.contrib.auth import (
    authenticate,
    get_user_model,
    login,
    logout,
    update_session_auth_hash,
)
from django.utils import timezone

from tayori.accounts import audit

Operator = get_user_model()
PENDING_2FA = "tayori_pending_2fa"


class LoginRefused(Exception):
    """Raised with a message the form can show."""


def check_password(request, email: str, password: str):
    """Return the operator if the password is right; count failures and lock after too many."""
    operator = Operator.objects.filter(email__iexact=email.strip()).first()
    if operator is not None and operator.is_locked():
        audit.record("login.locked", request=request, operator=operator, target=operator.email)
        raise LoginRefused("locked")
    user = authenticate(request, username=email.strip(), password=password)
    if user is None:
        audit.record("login.failed", request=request, operator=operator, target=email[:254])
        if operator is not None:
            count_failure(request, operator)
        raise LoginRefused("invalid")
    return user


def count_failure(request, operator) -> bool:
    """Count one wrong password; lock the operator after too many. Returns whether now locked."""
    operator.failed_logins += 1
    locked = operator.failed_logins >= settings.LOGIN_MAX_FAILURES
    if locked:
        operator.locked_until = timezone.now() + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
        operator.failed_logins = 0
        audit.record("operator.locked", request=request, operator=operator, target=operator.email)
    operator.save(update_fields=["failed_logins", "locked_until"])
    return locked


def complete_login(request, user):
    user.failed_logins = 0
    user.locked_until = None
    user.save(update_fields=["failed_logins", "locked_until"])
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    if user.language in ("ja", "en"):
        request.session["tayori_language"] = user.language
    audit.record("login", request=request, operator=user, target=user.email)


def verify_totp(user, code: str) -> bool:
    code = "".join(ch for ch in code if ch.isdigit())
    return bool(user.totp_secret) and pyotp.TOTP(user.totp_secret).verify(code, valid_window=1)


def change_password(request, operator, new_password: str) -> None:
    """Store the operator's own new password and keep this session signed in.

    Other sessions of the operator end (their session hash no longer matches), and a pending
    one-time-password change is done.
    """
    operator.set_password(new_password)
    operator.must_change_password = False
    operator.failed_logins = 0
    operator.save(update_fields=["password", "must_change_password", "failed_logins"])
    update_session_auth_hash(request, operator)
    audit.record("operator.password_changed", request=request, target=operator.email)


def sign_out(request):
    if request.user.is_authenticated:
        audit.record("logout", request=request, target=request.user.email)
    logout(request)
