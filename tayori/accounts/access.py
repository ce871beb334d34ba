"""Declaring what a view needs: a signed-in operator, a workspace, and one permission.

Every UI view is wrapped by ``requires(code)`` or marked ``public``; the URL-walk test reads the
``tayori_permission`` attribute these leave on the view to prove that none was forgotten.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect

from tayori.accounts import permissions


def public(view):
    """Mark a view that needs no signed-in operator (login, health check, public pages)."""
    view.tayori_permission = "public"
    return view


def requires(code: str | None):
    """Require a signed-in operator with a workspace membership granting ``code``.

    ``code=None`` asks only for a signed-in operator with some workspace (the dashboard,
    the workspace switcher, the operator's own profile).
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
            if code is not None and not request.membership.has(code):
                raise PermissionDenied(code)
            return view(request, *args, **kwargs)

        wrapped.tayori_permission = code or "signed-in"
        return wrapped

    return decorate


def can(request, code: str) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and membership.has(code)
