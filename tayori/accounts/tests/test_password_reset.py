"""Operators page: resetting another operator's password to a one-time password."""

from datetime import timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conftest import PASSWORD, make_operator
from tayori.accounts.models import AuditEvent, Membership, Operator
from tayori.accounts.tests.conftest import page_text, role, seat

NEW_PASSWORD = "blue kettle on the windowsill"


def reset(client, workspace, operator):
    return client.post(reverse("accounts:operator-reset-password",
                               args=[seat(workspace, operator).pk]))


def admin_client(admin_op) -> Client:
    client = Client()
    client.force_login(admin_op)
    return client


def messages_of(client, url) -> str:
    return page_text(client.get(url))


def test_an_admin_resets_a_password_shown_once_and_forces_a_change(admin_op, workspace,
                                                                   teammate):
    admin = admin_client(admin_op)
    response = reset(admin, workspace, teammate)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    password = response.context["password"]
    assert password and password in page_text(response)
    assert password not in page_text(admin.get(reverse("accounts:operators")))  # shown once
    teammate.refresh_from_db()
    assert teammate.check_password(password) and not teammate.check_password(PASSWORD)
    assert teammate.must_change_password
    event = AuditEvent.objects.get(action="operator.password_reset")
    assert event.operator == admin_op and event.workspace == workspace
    assert event.target == teammate.email and password not in str(event.detail)

    # The operator signs in with it and is held at the password page until they choose one.
    them = Client()
    assert them.post(reverse("login"), {"email": teammate.email, "password": password}).status_code == 302
    assert them.get(reverse("members:index")).url.startswith(reverse("password-change"))
    response = them.post(reverse("password-change"), {
        "current_password": password, "new_password": NEW_PASSWORD,
        "new_password_again": NEW_PASSWORD})
    assert response.status_code == 302
    assert them.get(reverse("members:index")).status_code == 200
    teammate.refresh_from_db()
    assert not teammate.must_change_password


def test_the_operators_page_offers_the_reset_and_shows_a_pending_change(owner_client, english,
                                                                        workspace, teammate):
    html = page_text(owner_client.get(reverse("accounts:operators")))
    assert reverse("accounts:operator-reset-password", args=[seat(workspace, teammate).pk]) in html
    # Your own password is changed on the password page, not reset here.
    assert reverse("accounts:operator-reset-password", args=[seat(workspace, english).pk]) not in html
    assert "Password change pending" not in html
    teammate.must_change_password = True
    teammate.save(update_fields=["must_change_password"])
    assert "Password change pending" in page_text(owner_client.get(reverse("accounts:operators")))


def test_a_reset_ends_the_operators_open_sessions(owner_client, workspace, teammate):
    them = Client()
    them.force_login(teammate)
    assert them.get(reverse("home")).status_code == 200
    reset(owner_client, workspace, teammate)
    assert them.get(reverse("home")).url.startswith(reverse("login"))


def test_a_reset_lifts_a_lockout(owner_client, workspace, teammate):
    teammate.locked_until = timezone.now() + timedelta(minutes=10)
    teammate.failed_logins = 2
    teammate.save()
    password = reset(owner_client, workspace, teammate).context["password"]
    teammate.refresh_from_db()
    assert not teammate.is_locked() and teammate.failed_logins == 0
    assert AuditEvent.objects.get(action="operator.password_reset").detail == {"unlocked": True}
    response = Client().post(reverse("login"), {"email": teammate.email, "password": password})
    assert response.status_code == 302


def test_a_new_operator_must_change_the_one_time_password(owner_client, workspace):
    owner_client.post(reverse("accounts:operator-add"),
                      {"email": "fresh@sample.jp", "role": role(workspace, "Viewer").pk})
    assert Operator.objects.get(email="fresh@sample.jp").must_change_password


def test_it_answers_404_for_an_operator_of_another_workspace(owner_client, other_workspace,
                                                             outsider):
    response = reset(owner_client, other_workspace, outsider)
    assert response.status_code == 404
    outsider.refresh_from_db()
    assert outsider.check_password(PASSWORD) and not outsider.must_change_password
    assert not AuditEvent.objects.filter(action="operator.password_reset").exists()


def test_an_admin_cannot_reset_an_owner(admin_op, workspace, owner):
    admin = admin_client(admin_op)
    response = reset(admin, workspace, owner)
    assert response.status_code == 302
    assert "Only an operator with at least the same rights" in messages_of(admin, response.url)
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD) and not owner.must_change_password
    assert not AuditEvent.objects.filter(action="operator.password_reset").exists()


def test_an_owner_can_reset_another_owner(owner_client, workspace):
    co_owner = make_operator(workspace, "co-owner@sample.jp", "Owner")
    assert reset(owner_client, workspace, co_owner).status_code == 200
    co_owner.refresh_from_db()
    assert co_owner.must_change_password


def test_it_refuses_to_reset_your_own_password(admin_op, workspace):
    admin = admin_client(admin_op)
    response = reset(admin, workspace, admin_op)
    assert response.status_code == 302
    assert "Change your own password on the password page." in messages_of(admin, response.url)
    admin_op.refresh_from_db()
    assert admin_op.check_password(PASSWORD)


def test_it_refuses_an_operator_who_also_belongs_to_a_workspace_you_do_not_manage(
        owner_client, english, workspace, outsider):
    # The other workspace's Owner joins this one as a Viewer: resetting their password here
    # would hand over their other workspace.
    Membership.objects.create(workspace=workspace, operator=outsider,
                              role=role(workspace, "Viewer"))
    response = reset(owner_client, workspace, outsider)
    assert response.status_code == 302
    assert "also belongs to workspaces you do not manage" in messages_of(owner_client,
                                                                         response.url)
    outsider.refresh_from_db()
    assert outsider.check_password(PASSWORD) and not outsider.must_change_password


def test_it_resets_an_operator_of_several_workspaces_you_manage_all_of(
        owner_client, owner, workspace, other_workspace, outsider):
    Membership.objects.create(workspace=workspace, operator=outsider,
                              role=role(workspace, "Viewer"))
    Membership.objects.create(workspace=other_workspace, operator=owner,
                              role=role(other_workspace, "Owner"))
    assert reset(owner_client, workspace, outsider).status_code == 200
    outsider.refresh_from_db()
    assert outsider.must_change_password


def test_it_needs_the_operators_permission(analyst_client, workspace, owner):
    assert reset(analyst_client, workspace, owner).status_code == 403
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD) and not owner.must_change_password


def test_it_needs_a_post(owner_client, workspace, teammate):
    url = reverse("accounts:operator-reset-password", args=[seat(workspace, teammate).pk])
    assert owner_client.get(url).status_code == 405
    teammate.refresh_from_db()
    assert teammate.check_password(PASSWORD)
