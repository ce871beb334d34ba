"""Declaring what a view needs: a signed-in operator, a workspace, and one permission.

Every UI view is wrapped by ``requires(code)`` or marked ``public``; the URL-walk test reads the
``tayori_permission`` attribute these leave on the view to prove that none was forgotten.

``requires`` also holds back an operator who must replace a one-time password: every guarded page
sends them to the password page first. Public views (sign-in and out, language switch) stay open.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from tayori.accounts import permissions


def public(view):
    """Mark a view that needs no signed-in operator (login, health check, public pages)."""
    view.tayori_permission = "public"
    return view


def _to_password_change(request):
    """Send an operator with a one-time password to the password page, then back here."""
    url = reverse("password-change")
    htmx = request.headers.get("HX-Request") == "true"
    if htmx:
        back = request.headers.get("HX-Current-URL")  # the page, not the fragment it asked for
    else:
        back = request.get_full_path() if request.method == "GET" else None
    if back:
        url += "?" + urlencode({"next": back})
    if htmx:
        # A fragment request must not swap the password page into part of the page.
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def requires(code: str | None, *, while_password_change_pending: bool = False):
    """Require a signed-in operator with a workspace membership granting ``code``.

    ``code=None`` asks only for a signed-in operator with some workspace (the dashboard,
    the workspace switcher, the operator's own profile). Only the password page itself passes
    ``while_password_change_pending=True``: it is the one guarded page an operator who must
    change their password may open.
    """
    if code is not None and code not in permissions.ALL:
        raise ValueError(f"unknown permission {code!r}")

    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if request.membership is None:
                return redirect("workspace-none")
            if request.user.must_change_password and not while_password_change_pending:
                return _to_password_change(request)
            if code is not None and not request.membership.has(code):
                raise PermissionDenied(code)
            return view(request, *args, **kwargs)

        wrapped.tayori_permission = code or "signed-in"
        return wrapped

    return decorate


def can(request, code: str) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and membership.has(code)
