"""Roles page: the permission grid, custom roles, read-only built-ins, roles in use."""

from django.urls import reverse

from conftest import make_operator
from tayori.accounts.models import AuditEvent, Role
from tayori.accounts.permissions import BUILTIN_ROLES, PERMISSIONS
from tayori.accounts.tests.conftest import page_text, role


def test_it_shows_every_role_against_every_permission(owner_client, workspace, other_workspace):
    Role.objects.create(workspace=other_workspace, name="Elsewhere", permissions=[])
    response = owner_client.get(reverse("accounts:roles"))
    assert response.status_code == 200
    names = [r.name for r in response.context["roles"]]
    assert names == ["Owner", "Admin", "Editor", "Approver", "Analyst", "Viewer"]
    html = page_text(response)
    assert "Elsewhere" not in html
    for code in PERMISSIONS:
        assert code in html


def test_it_creates_a_custom_role_and_audits_its_permissions(owner_client, workspace):
    response = owner_client.post(reverse("accounts:role-create"), {
        "name": "Campaign desk", "permissions": ["campaigns.create", "members.view"]})
    assert response.status_code == 302
    created = Role.objects.get(workspace=workspace, name="Campaign desk")
    assert created.permissions == ["campaigns.create", "members.view"] and not created.builtin
    event = AuditEvent.objects.get(action="role.created")
    assert event.target == "Campaign desk"
    assert event.detail == {"added": ["campaigns.create", "members.view"], "removed": []}


def test_it_refuses_an_unknown_permission_and_a_taken_name(owner_client, workspace):
    response = owner_client.post(reverse("accounts:role-create"),
                                 {"name": "owner", "permissions": ["members.fly"]})
    errors = response.context["form"].errors
    assert "name" in errors and "permissions" in errors
    assert Role.objects.filter(workspace=workspace).count() == 6


def test_the_same_name_may_exist_in_another_workspace(owner_client, workspace, other_workspace):
    Role.objects.create(workspace=other_workspace, name="Desk", permissions=[])
    owner_client.post(reverse("accounts:role-create"), {"name": "Desk", "permissions": []})
    assert Role.objects.filter(workspace=workspace, name="Desk").exists()


def test_it_edits_a_custom_role_and_audits_the_diff(owner_client, workspace):
    desk = Role.objects.create(workspace=workspace, name="Desk",
                               permissions=["members.view", "members.export"])
    response = owner_client.post(reverse("accounts:role-edit", args=[desk.pk]), {
        "name": "Front desk", "permissions": ["members.view", "analytics.view"]})
    assert response.status_code == 302
    desk.refresh_from_db()
    assert desk.name == "Front desk" and desk.permissions == ["analytics.view", "members.view"]
    event = AuditEvent.objects.get(action="role.updated")
    assert event.detail == {"added": ["analytics.view"], "removed": ["members.export"],
                            "renamed_from": "Desk"}


def test_built_in_roles_are_read_only(owner_client, workspace, english):
    owner_role = role(workspace, "Analyst")
    response = owner_client.get(reverse("accounts:role-edit", args=[owner_role.pk]))
    assert response.status_code == 200
    assert all(field.disabled for field in response.context["form"].fields.values())
    response = owner_client.post(reverse("accounts:role-edit", args=[owner_role.pk]),
                                 {"name": "Analyst", "permissions": list(PERMISSIONS)}, follow=True)
    assert "cannot be changed" in page_text(response)
    owner_client.post(reverse("accounts:role-delete", args=[owner_role.pk]))
    owner_role.refresh_from_db()
    assert owner_role.permissions == sorted(BUILTIN_ROLES["Analyst"])
    assert not AuditEvent.objects.filter(action__startswith="role.").exists()


def test_a_role_in_use_cannot_be_deleted(owner_client, workspace, english):
    Role.objects.create(workspace=workspace, name="Desk", permissions=["members.view"])
    make_operator(workspace, "desk@sample.jp", "Desk")
    desk = role(workspace, "Desk")
    response = owner_client.post(reverse("accounts:role-delete", args=[desk.pk]), follow=True)
    assert "give them another role first" in page_text(response)
    assert Role.objects.filter(pk=desk.pk).exists()


def test_an_unused_custom_role_is_deleted_and_audited(owner_client, workspace):
    desk = Role.objects.create(workspace=workspace, name="Desk", permissions=["members.view"])
    owner_client.post(reverse("accounts:role-delete", args=[desk.pk]))
    assert not Role.objects.filter(pk=desk.pk).exists()
    event = AuditEvent.objects.get(action="role.deleted")
    assert event.target == "Desk" and event.detail == {"added": [], "removed": ["members.view"]}


def test_a_manager_cannot_grant_permissions_they_do_not_hold(client, workspace):
    Role.objects.create(workspace=workspace, name="Team leads",
                        permissions=["members.view", "operators.manage"])
    lead = make_operator(workspace, "lead@sample.jp", "Team leads")
    client.force_login(lead)
    response = client.post(reverse("accounts:role-create"),
                           {"name": "Escalated", "permissions": ["members.view_pii"]})
    assert response.context["form"].errors["permissions"]
    assert not Role.objects.filter(name="Escalated").exists()
    # Widening their own role is refused the same way.
    leads = role(workspace, "Team leads")
    client.post(reverse("accounts:role-edit", args=[leads.pk]), {
        "name": "Team leads", "permissions": ["members.view", "operators.manage", "audit.view"]})
    leads.refresh_from_db()
    assert "audit.view" not in leads.permissions
