"""Operators page: who belongs to this workspace, with which role; add, re-role, remove, unlock,
reset a password.

A workspace always keeps at least one Owner, and only Owners can make, demote or remove Owners.
One-time passwords (new operators, resets) are shown once and must be changed at the next sign-in.
"""

import secrets

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import requires
from tayori.accounts.forms import OWNER, OperatorAddForm, OperatorRoleForm, may_assign
from tayori.accounts.models import Membership, Operator, Role

PAGE_SIZE = 50


def _is_owner_role(role: Role) -> bool:
    return role.builtin and role.name == OWNER


def _is_last_owner(membership: Membership) -> bool:
    """Whether taking this seat away would leave the workspace without an Owner.

    Locks the Owner seats so that two managers demoting the last two Owners at once cannot both
    succeed (a no-op on SQLite, whose writes are serialized anyway).
    """
    if not _is_owner_role(membership.role):
        return False
    owners = list(Membership.objects.select_for_update().filter(
        workspace_id=membership.workspace_id, role__builtin=True, role__name=OWNER))
    return len(owners) <= 1


def _seat(request: HttpRequest, membership_id: int) -> Membership:
    return get_object_or_404(Membership.objects.select_related("operator", "role"),
                             pk=membership_id, workspace=request.workspace)


def _may_manage(request: HttpRequest, seat: Membership) -> bool:
    if may_assign(request.membership, seat.role):
        return True
    messages.error(request, _("Only an operator with at least the same rights can change %(who)s.")
                   % {"who": seat.operator.email})
    return False


@requires("operators.manage")
def operator_list(request: HttpRequest) -> HttpResponse:
    seats = (Membership.objects.filter(workspace=request.workspace)
             .select_related("operator", "role").order_by("operator__email"))
    page = Paginator(seats, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "accounts/operators.html", {
        "page_obj": page,
        "roles": Role.objects.filter(workspace=request.workspace),
        "owner_count": seats.filter(role__builtin=True, role__name=OWNER).count(),
    })


@requires("operators.manage")
@never_cache
def operator_add(request: HttpRequest) -> HttpResponse:
    form = OperatorAddForm(request.POST or None, membership=request.membership)
    if request.method == "POST" and form.is_valid():
        email, role = form.cleaned_data["email"], form.cleaned_data["role"]
        password = None
        with transaction.atomic():
            operator = form.existing
            if operator is None:
                # New people get a one-time password shown once, here, and stored only hashed.
                password = secrets.token_urlsafe(12)
                operator = Operator.objects.create_user(
                    username=email, email=email, password=password,
                    display_name=form.cleaned_data["display_name"], must_change_password=True)
            Membership.objects.create(workspace=request.workspace, operator=operator, role=role)
            audit.record("operator.added", request=request, target=email, role=role.name,
                         new_operator=password is not None)
        if password is None:
            messages.success(request, _("%(email)s can now use this workspace as %(role)s.")
                             % {"email": email, "role": role.name})
            return redirect("accounts:operators")
        return render(request, "accounts/operator_added.html",
                      {"operator": operator, "role": role, "password": password})
    return render(request, "accounts/operator_add.html", {"form": form})


@requires("operators.manage")
@require_POST
def operator_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    with transaction.atomic():
        seat = _seat(request, membership_id)
        form = OperatorRoleForm(request.POST, membership=request.membership)
        if not _may_manage(request, seat):
            return redirect("accounts:operators")
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            return redirect("accounts:operators")
        role = form.cleaned_data["role"]
        if role == seat.role:
            return redirect("accounts:operators")
        if not _is_owner_role(role) and _is_last_owner(seat):
            messages.error(request, _("%(email)s is the last Owner of this workspace. Make someone "
                                      "else an Owner first.") % {"email": seat.operator.email})
            return redirect("accounts:operators")
        before = seat.role
        seat.role = role
        seat.save(update_fields=["role"])
        audit.record("operator.role_changed", request=request, target=seat.operator.email,
                     before=before.name, after=role.name)
    messages.success(request, _("%(email)s is now %(role)s.")
                     % {"email": seat.operator.email, "role": role.name})
    return redirect("accounts:operators")


@requires("operators.manage")
@require_POST
def operator_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    with transaction.atomic():
        seat = _seat(request, membership_id)
        if not _may_manage(request, seat):
            return redirect("accounts:operators")
        if _is_last_owner(seat):
            messages.error(request, _("%(email)s is the last Owner of this workspace and cannot be "
                                      "removed.") % {"email": seat.operator.email})
            return redirect("accounts:operators")
        email, role = seat.operator.email, seat.role.name
        leaving_myself = seat.operator_id == request.user.pk
        seat.delete()
        audit.record("operator.removed", request=request, target=email, role=role)
    messages.success(request, _("%(email)s was removed from this workspace.") % {"email": email})
    return redirect("home" if leaving_myself else "accounts:operators")


@requires("operators.manage")
@require_POST
def operator_unlock(request: HttpRequest, membership_id: int) -> HttpResponse:
    seat = _seat(request, membership_id)
    operator = seat.operator
    if operator.is_locked() or operator.failed_logins:
        operator.locked_until = None
        operator.failed_logins = 0
        operator.save(update_fields=["locked_until", "failed_logins"])
        audit.record("operator.unlocked", request=request, target=operator.email)
        messages.success(request, _("%(email)s can sign in again.") % {"email": operator.email})
    return redirect("accounts:operators")


def _may_manage_everywhere(request: HttpRequest, operator: Operator) -> bool:
    """Whether the acting operator could manage ``operator`` in every workspace they belong to.

    A password opens the whole account, so resetting it from one workspace must not hand over the
    operator's seats in workspaces the actor has no say in.
    """
    mine = {seat.workspace_id: seat for seat in Membership.objects.select_related("role")
            .filter(operator=request.user)}
    for theirs in operator.memberships.select_related("role"):
        actor = mine.get(theirs.workspace_id)
        if actor is None or not actor.has("operators.manage") or not may_assign(actor, theirs.role):
            return False
    return True


@requires("operators.manage")
@require_POST
@never_cache
def operator_reset_password(request: HttpRequest, membership_id: int) -> HttpResponse:
    seat = _seat(request, membership_id)
    operator = seat.operator
    if operator.pk == request.user.pk:
        messages.error(request, _("Change your own password on the password page."))
        return redirect("accounts:operators")
    if not _may_manage(request, seat):
        return redirect("accounts:operators")
    if not _may_manage_everywhere(request, operator):
        messages.error(request, _("%(email)s also belongs to workspaces you do not manage; only "
                                  "they can change their password.") % {"email": operator.email})
        return redirect("accounts:operators")
    password = secrets.token_urlsafe(12)
    with transaction.atomic():
        # A new password hash also ends the operator's open sessions; a lockout from guessing the
        # forgotten password would only keep the new one from working.
        operator.set_password(password)
        operator.must_change_password = True
        was_locked = operator.is_locked()
        operator.locked_until, operator.failed_logins = None, 0
        operator.save(update_fields=["password", "must_change_password", "locked_until",
                                     "failed_logins"])
        audit.record("operator.password_reset", request=request, target=operator.email,
                     unlocked=was_locked)
    return render(request, "accounts/operator_password_reset.html",
                  {"operator": operator, "role": seat.role, "password": password})


urlpatterns = [
    path("operators/", operator_list, name="operators"),
    path("operators/add/", operator_add, name="operator-add"),
    path("operators/<int:membership_id>/role/", operator_role, name="operator-role"),
    path("operators/<int:membership_id>/remove/", operator_remove, name="operator-remove"),
    path("operators/<int:membership_id>/unlock/", operator_unlock, name="operator-unlock"),
    path("operators/<int:membership_id>/reset-password/", operator_reset_password,
         name="operator-reset-password"),
]
