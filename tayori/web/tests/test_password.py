"""Changing one's own password, and the forced change after a one-time password."""

import pytest
from django.test import Client
from django.urls import reverse

from conftest import PASSWORD
from tayori.accounts.bootstrap import create_owner
from tayori.accounts.models import AuditEvent, Operator

NEW_PASSWORD = "blue kettle on the windowsill"


@pytest.fixture
def english_owner(owner):
    owner.language = "en"
    owner.save(update_fields=["language"])
    return owner


@pytest.fixture
def pending(owner):
    """The owner still holds a one-time password."""
    owner.must_change_password = True
    owner.save(update_fields=["must_change_password"])
    return owner


def change(client, current=PASSWORD, new=NEW_PASSWORD, again=None, **extra):
    data = {"current_password": current, "new_password": new,
            "new_password_again": new if again is None else again, **extra}
    return client.post(reverse("password-change"), data)


def test_it_refuses_a_wrong_current_password(owner_client, english_owner):
    response = change(owner_client, current="not my password")
    assert response.status_code == 200
    assert response.context["form"].errors["current_password"] == [
        "The current password is not correct."]
    english_owner.refresh_from_db()
    assert english_owner.check_password(PASSWORD)
    assert english_owner.failed_logins == 1
    assert AuditEvent.objects.filter(action="operator.password_change_failed").count() == 1
    assert not AuditEvent.objects.filter(action="operator.password_changed").exists()


def test_repeated_wrong_current_passwords_lock_the_operator_and_sign_them_out(
        owner_client, owner, settings):
    settings.LOGIN_MAX_FAILURES = 3
    for _ in range(2):
        assert change(owner_client, current="guess").status_code == 200
    response = change(owner_client, current="guess")
    assert response.status_code == 302 and response.url == reverse("login")
    owner.refresh_from_db()
    assert owner.is_locked()
    assert "_auth_user_id" not in owner_client.session
    assert owner.check_password(PASSWORD)


@pytest.mark.parametrize("weak,message", [
    ("short1", "This password is too short. It must contain at least 10 characters."),
    ("password1234", "This password is too common."),
])
def test_it_refuses_a_weak_password_with_the_validators_message(owner_client, english_owner,
                                                                 weak, message):
    response = change(owner_client, new=weak)
    assert response.status_code == 200
    assert message in response.context["form"].errors["new_password"]
    assert message in response.content.decode()
    english_owner.refresh_from_db()
    assert english_owner.check_password(PASSWORD)


def test_it_refuses_new_passwords_that_do_not_match(owner_client, english_owner):
    response = change(owner_client, again=NEW_PASSWORD + "!")
    assert response.context["form"].errors["new_password_again"] == [
        "The two new passwords do not match."]
    english_owner.refresh_from_db()
    assert english_owner.check_password(PASSWORD)


def test_it_refuses_keeping_the_current_password(owner_client, english_owner):
    response = change(owner_client, new=PASSWORD)
    assert response.context["form"].errors["new_password"] == [
        "Choose a password different from the current one."]


def test_a_successful_change_keeps_the_operator_signed_in_and_is_audited(owner_client, owner):
    response = change(owner_client)
    assert response.status_code == 302 and response.url == reverse("home")
    assert owner_client.get(reverse("home")).status_code == 200
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(action="operator.password_changed")
    assert event.operator == owner and event.target == owner.email
    assert NEW_PASSWORD not in str(event.detail)


def test_a_change_ends_the_operators_other_sessions(owner_client, owner):
    elsewhere = Client()
    elsewhere.force_login(owner)
    assert elsewhere.get(reverse("home")).status_code == 200
    change(owner_client)
    assert elsewhere.get(reverse("home")).url.startswith(reverse("login"))


def test_a_pending_operator_is_sent_to_the_password_page_until_they_change_it(owner_client,
                                                                               pending):
    page = reverse("password-change")
    for url in (reverse("home"), reverse("members:index"), reverse("accounts:operators"),
                reverse("two-factor")):
        response = owner_client.get(url)
        assert response.status_code == 302, url
        assert response.url == f"{page}?next={url.replace('/', '%2F')}"
    # A form post is held too, and not carried out.
    response = owner_client.post(reverse("accounts:settings"), {"name": "Renamed"})
    assert response.status_code == 302 and response.url == page
    assert pending.memberships.get().workspace.name != "Renamed"
    # An htmx fragment request redirects the whole page instead of swapping the password form in.
    response = owner_client.get(reverse("home"), headers={
        "HX-Request": "true", "HX-Current-URL": "http://testserver/members/"})
    assert response.status_code == 204
    assert response["HX-Redirect"] == f"{page}?next=http%3A%2F%2Ftestserver%2Fmembers%2F"

    form_page = owner_client.get(page)
    assert form_page.status_code == 200 and form_page.context["forced"]
    response = change(owner_client, next=reverse("members:index"))
    assert response.status_code == 302 and response.url == reverse("members:index")
    pending.refresh_from_db()
    assert not pending.must_change_password
    assert owner_client.get(reverse("home")).status_code == 200


def test_a_pending_operator_may_still_switch_language_and_sign_out(owner_client, pending):
    response = owner_client.post(reverse("set-language"),
                                 {"language": "en", "next": reverse("password-change")})
    assert response.url == reverse("password-change")
    assert owner_client.post(reverse("logout")).url == reverse("login")
    assert "_auth_user_id" not in owner_client.session


def test_signing_in_with_a_one_time_password_leads_to_the_password_page(client, pending):
    response = client.post(reverse("login"), {"email": pending.email, "password": PASSWORD})
    response = client.get(response.url)
    assert response.url.startswith(reverse("password-change"))


def test_the_password_page_ignores_a_next_address_on_another_site(owner_client):
    response = change(owner_client, next="https://evil.example/")
    assert response.url == reverse("home")


def test_the_top_bar_links_the_password_page(owner_client):
    html = owner_client.get(reverse("home")).content.decode()
    assert f'href="{reverse("password-change")}"' in html


def test_a_generated_first_owner_password_must_be_changed(db):
    generated = create_owner("first@tayori.local", "generated-secret-1", "First",
                             must_change_password=True)
    chosen = create_owner("second@tayori.local", NEW_PASSWORD, "Second")
    assert generated.must_change_password
    assert not chosen.must_change_password


def test_ensure_owner_forces_a_change_only_of_a_generated_password(db):
    from tayori.cli.server import ensure_owner

    ensure_owner(email="boss@tayori.local", password="", workspace="Tayori")
    assert Operator.objects.get(email="boss@tayori.local").must_change_password
    Operator.objects.all().delete()
    ensure_owner(email="boss@tayori.local", password=NEW_PASSWORD, workspace="Tayori")
    assert not Operator.objects.get(email="boss@tayori.local").must_change_password
