"""Operators page: listing, adding, re-roling, removing and unlocking operators."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from conftest import PASSWORD, make_operator
from tayori.accounts.models import AuditEvent, Membership, Operator
from tayori.accounts.tests.conftest import page_text, role, seat


def test_it_lists_members_with_role_two_factor_last_login_and_lock(owner_client, owner, teammate,
                                                                  outsider):
    teammate.totp_enabled = True
    teammate.locked_until = timezone.now() + timedelta(minutes=10)
    teammate.save()
    response = owner_client.get(reverse("accounts:operators"))
    assert response.status_code == 200
    seats = {s.operator.email: s for s in response.context["page_obj"]}
    assert set(seats) == {owner.email, teammate.email}  # not the other workspace's owner
    assert seats[teammate.email].role.name == "Analyst"
    html = page_text(response)
    assert outsider.email not in html
    assert reverse("accounts:operator-unlock", args=[seats[teammate.email].pk]) in html


def test_it_adds_a_new_operator_with_a_one_time_password(owner_client, workspace):
    response = owner_client.post(reverse("accounts:operator-add"),
                                 {"email": "New.Person@Example.JP", "role": role(workspace, "Editor").pk})
    assert response.status_code == 200
    password = response.context["password"]
    assert password and password in page_text(response)
    assert "no-store" in response["Cache-Control"]
    operator = Operator.objects.get(email="New.Person@example.jp")
    assert operator.check_password(password)
    assert seat(workspace, operator).role.name == "Editor"
    event = AuditEvent.objects.get(action="operator.added")
    assert event.workspace == workspace and event.target == "New.Person@example.jp"
    assert event.detail == {"role": "Editor", "new_operator": True}
    assert password not in str(event.detail)


def test_the_new_operator_can_sign_in_with_the_one_time_password(owner_client, workspace, client):
    response = owner_client.post(reverse("accounts:operator-add"),
                                 {"email": "fresh@sample.jp", "role": role(workspace, "Viewer").pk})
    password = response.context["password"]
    owner_client.logout()
    response = client.post(reverse("login"), {"email": "fresh@sample.jp", "password": password})
    assert response.status_code == 302
    # Signed in, but held at the password page until the one-time password is replaced.
    assert client.get(reverse("home")).url.startswith(reverse("password-change"))
    assert client.get(reverse("password-change")).status_code == 200


def test_it_adds_an_existing_operator_without_touching_their_password(owner_client, workspace,
                                                                      outsider):
    response = owner_client.post(reverse("accounts:operator-add"),
                                 {"email": outsider.email.upper(), "role": role(workspace, "Viewer").pk})
    assert response.status_code == 302
    outsider.refresh_from_db()
    assert outsider.check_password(PASSWORD)
    assert seat(workspace, outsider).role.name == "Viewer"
    assert Membership.objects.filter(operator=outsider).count() == 2
    assert AuditEvent.objects.get(action="operator.added").detail["new_operator"] is False


def test_it_refuses_to_add_someone_twice(owner_client, workspace, teammate):
    response = owner_client.post(reverse("accounts:operator-add"),
                                 {"email": teammate.email, "role": role(workspace, "Owner").pk})
    assert response.status_code == 200
    assert response.context["form"].errors["email"]
    assert seat(workspace, teammate).role.name == "Analyst"
    assert not AuditEvent.objects.filter(action="operator.added").exists()


def test_it_refuses_another_workspaces_role(owner_client, other_workspace):
    response = owner_client.post(reverse("accounts:operator-add"),
                                 {"email": "x@sample.jp", "role": role(other_workspace, "Owner").pk})
    assert response.context["form"].errors["role"]
    assert not Operator.objects.filter(email="x@sample.jp").exists()


def test_it_changes_a_role_and_audits_before_and_after(owner_client, workspace, teammate):
    membership = seat(workspace, teammate)
    response = owner_client.post(reverse("accounts:operator-role", args=[membership.pk]),
                                 {"role": role(workspace, "Editor").pk})
    assert response.status_code == 302
    assert seat(workspace, teammate).role.name == "Editor"
    event = AuditEvent.objects.get(action="operator.role_changed")
    assert event.target == teammate.email
    assert event.detail == {"before": "Analyst", "after": "Editor"}


def test_it_will_not_demote_the_last_owner(owner_client, workspace, owner, english):
    response = owner_client.post(reverse("accounts:operator-role", args=[seat(workspace, owner).pk]),
                                 {"role": role(workspace, "Admin").pk}, follow=True)
    assert "last Owner" in page_text(response)
    assert seat(workspace, owner).role.name == "Owner"
    assert not AuditEvent.objects.filter(action="operator.role_changed").exists()


def test_it_will_not_remove_the_last_owner(owner_client, workspace, owner, english):
    response = owner_client.post(reverse("accounts:operator-remove", args=[seat(workspace, owner).pk]),
                                 follow=True)
    assert "last Owner" in page_text(response)
    assert Membership.objects.filter(workspace=workspace, operator=owner).exists()


def test_an_owner_can_step_down_once_there_is_another_owner(owner_client, workspace, owner):
    second = make_operator(workspace, "second@sample.jp", "Owner")
    owner_client.post(reverse("accounts:operator-role", args=[seat(workspace, owner).pk]),
                      {"role": role(workspace, "Editor").pk})
    assert seat(workspace, owner).role.name == "Editor"
    assert seat(workspace, second).role.name == "Owner"


def test_the_last_owner_of_this_workspace_is_counted_here_only(owner_client, workspace, owner,
                                                               other_workspace):
    # Being Owner elsewhere does not make the operator's seat here replaceable.
    Membership.objects.create(workspace=other_workspace, operator=owner,
                              role=role(other_workspace, "Owner"))
    owner_client.post(reverse("accounts:operator-remove", args=[seat(workspace, owner).pk]))
    assert Membership.objects.filter(workspace=workspace, operator=owner).exists()


def test_it_removes_an_operator_from_this_workspace_only(owner_client, workspace, other_workspace,
                                                         teammate):
    Membership.objects.create(workspace=other_workspace, operator=teammate,
                              role=role(other_workspace, "Viewer"))
    response = owner_client.post(reverse("accounts:operator-remove",
                                         args=[seat(workspace, teammate).pk]))
    assert response.status_code == 302
    assert not Membership.objects.filter(workspace=workspace, operator=teammate).exists()
    assert Membership.objects.filter(workspace=other_workspace, operator=teammate).exists()
    assert Operator.objects.filter(pk=teammate.pk).exists()
    event = AuditEvent.objects.get(action="operator.removed")
    assert event.target == teammate.email and event.detail == {"role": "Analyst"}


def test_removing_needs_post(owner_client, workspace, teammate):
    url = reverse("accounts:operator-remove", args=[seat(workspace, teammate).pk])
    assert owner_client.get(url).status_code == 405
    assert Membership.objects.filter(workspace=workspace, operator=teammate).exists()


def test_it_unlocks_a_locked_operator(owner_client, workspace, teammate):
    teammate.locked_until = timezone.now() + timedelta(minutes=15)
    teammate.failed_logins = 3
    teammate.save()
    owner_client.post(reverse("accounts:operator-unlock", args=[seat(workspace, teammate).pk]))
    teammate.refresh_from_db()
    assert not teammate.is_locked() and teammate.failed_logins == 0
    assert AuditEvent.objects.get(action="operator.unlocked").target == teammate.email


def test_an_admin_cannot_touch_an_owner_or_make_one(client, workspace, owner, admin_op, teammate):
    client.force_login(admin_op)
    client.post(reverse("accounts:operator-remove", args=[seat(workspace, owner).pk]))
    client.post(reverse("accounts:operator-role", args=[seat(workspace, owner).pk]),
                {"role": role(workspace, "Viewer").pk})
    client.post(reverse("accounts:operator-role", args=[seat(workspace, teammate).pk]),
                {"role": role(workspace, "Owner").pk})
    assert seat(workspace, owner).role.name == "Owner"
    assert seat(workspace, teammate).role.name == "Analyst"
    response = client.post(reverse("accounts:operator-add"),
                           {"email": "boss@sample.jp", "role": role(workspace, "Owner").pk})
    assert response.context["form"].errors["role"]
    # …but an Admin may manage everyone below Owner.
    client.post(reverse("accounts:operator-role", args=[seat(workspace, teammate).pk]),
                {"role": role(workspace, "Admin").pk})
    assert seat(workspace, teammate).role.name == "Admin"


def test_a_custom_manager_cannot_hand_out_rights_they_lack(client, workspace, teammate):
    from tayori.accounts.models import Role

    Role.objects.create(workspace=workspace, name="Team leads",
                        permissions=["analytics.view", "deliveries.view", "members.view",
                                     "operators.manage"])
    lead = make_operator(workspace, "lead@sample.jp", "Team leads")
    client.force_login(lead)
    client.post(reverse("accounts:operator-role", args=[seat(workspace, teammate).pk]),
                {"role": role(workspace, "Editor").pk})
    assert seat(workspace, teammate).role.name == "Analyst"
    client.post(reverse("accounts:operator-role", args=[seat(workspace, teammate).pk]),
                {"role": role(workspace, "Viewer").pk})
    # The Analyst seat holds members.export, which the lead lacks: they may not change it either.
    assert seat(workspace, teammate).role.name == "Analyst"
    viewer = make_operator(workspace, "viewer@sample.jp", "Viewer")
    client.post(reverse("accounts:operator-role", args=[seat(workspace, viewer).pk]),
                {"role": role(workspace, "Team leads").pk})
    assert seat(workspace, viewer).role.name == "Team leads"
