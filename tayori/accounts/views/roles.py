"""Roles page: the permission grid of built-in and custom roles; create, edit and delete custom
roles. Built-in roles are read-only and a role someone holds cannot be deleted."""

from django.contrib import messages
from django.db.models import Count, ProtectedError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tayori.accounts import audit, permissions
from tayori.accounts.access import requires
from tayori.accounts.forms import RoleForm
from tayori.accounts.models import Role


def _role(request: HttpRequest, role_id: int) -> Role:
    return get_object_or_404(Role, pk=role_id, workspace=request.workspace)


@requires("operators.manage")
def role_list(request: HttpRequest) -> HttpResponse:
    roles = list(Role.objects.filter(workspace=request.workspace)
                 .annotate(seats=Count("memberships")))
    return render(request, "accounts/roles.html", {
        "roles": roles,
        "permissions": list(permissions.PERMISSIONS.items()),
    })


@requires("operators.manage")
def role_create(request: HttpRequest) -> HttpResponse:
    form = RoleForm(request.POST or None, membership=request.membership)
    if request.method == "POST" and form.is_valid():
        role = Role.objects.create(workspace=request.workspace, name=form.cleaned_data["name"],
                                   permissions=form.cleaned_data["permissions"])
        audit.record("role.created", request=request, target=role.name,
                     added=role.permissions, removed=[])
        messages.success(request, _("Role %(name)s created.") % {"name": role.name})
        return redirect("accounts:roles")
    return render(request, "accounts/role_form.html", {"form": form, "role": None})


@requires("operators.manage")
def role_edit(request: HttpRequest, role_id: int) -> HttpResponse:
    role = _role(request, role_id)
    if role.builtin:
        if request.method == "POST":
            messages.error(request, _("Built-in roles cannot be changed."))
            return redirect("accounts:roles")
        form = RoleForm(membership=request.membership, instance=role)
        for field in form.fields.values():
            field.disabled = True
        return render(request, "accounts/role_form.html", {"form": form, "role": role})
    form = RoleForm(request.POST or None, membership=request.membership, instance=role)
    if request.method == "POST" and form.is_valid():
        before_name, before = role.name, set(role.permissions)
        role.name = form.cleaned_data["name"]
        role.permissions = form.cleaned_data["permissions"]
        role.save(update_fields=["name", "permissions"])
        detail = {"added": sorted(set(role.permissions) - before),
                  "removed": sorted(before - set(role.permissions))}
        if before_name != role.name:
            detail["renamed_from"] = before_name
        audit.record("role.updated", request=request, target=role.name, **detail)
        messages.success(request, _("Role %(name)s saved.") % {"name": role.name})
        return redirect("accounts:roles")
    return render(request, "accounts/role_form.html", {"form": form, "role": role})


@requires("operators.manage")
@require_POST
def role_delete(request: HttpRequest, role_id: int) -> HttpResponse:
    role = _role(request, role_id)
    if role.builtin:
        messages.error(request, _("Built-in roles cannot be deleted."))
        return redirect("accounts:roles")
    seats = role.memberships.count()
    if seats:
        messages.error(request, _("%(name)s is held by %(n)d operator(s); give them another role "
                                  "first.") % {"name": role.name, "n": seats})
        return redirect("accounts:roles")
    name, held = role.name, list(role.permissions)
    try:
        role.delete()
    except ProtectedError:  # someone was given this role since the check above
        messages.error(request, _("%(name)s is in use; give its operators another role first.")
                       % {"name": name})
        return redirect("accounts:roles")
    audit.record("role.deleted", request=request, target=name, added=[], removed=held)
    messages.success(request, _("Role %(name)s deleted.") % {"name": name})
    return redirect("accounts:roles")


urlpatterns = [
    path("roles/", role_list, name="roles"),
    path("roles/new/", role_create, name="role-create"),
    path("roles/<int:role_id>/", role_edit, name="role-edit"),
    path("roles/<int:role_id>/delete/", role_delete, name="role-delete"),
]
