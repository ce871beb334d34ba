import pyotp
import pytest
from django.urls import reverse

from conftest import PASSWORD
from tayori.accounts.models import AuditEvent


def login(client, email, password=PASSWORD):
    return client.post(reverse("login"), {"email": email, "password": password})


def test_it_signs_in_with_the_right_password_and_audits_it(client, owner):
    response = login(client, owner.email)
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200
    assert AuditEvent.objects.filter(action="login", operator=owner).exists()


def test_it_refuses_a_wrong_password_and_audits_the_failure(client, owner):
    response = login(client, owner.email, "wrong password")
    assert response.status_code == 200
    assert client.get(reverse("home")).status_code == 302
    assert AuditEvent.objects.filter(action="login.failed").count() == 1


def test_it_locks_out_after_repeated_failures(client, owner, settings):
    settings.LOGIN_MAX_FAILURES = 3
    for _ in range(3):
        login(client, owner.email, "wrong password")
    owner.refresh_from_db()
    assert owner.is_locked()
    response = login(client, owner.email)  # even the right password is refused while locked
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_it_asks_for_the_totp_code_when_two_factor_is_on(client, owner):
    owner.totp_secret = pyotp.random_base32()
    owner.totp_enabled = True
    owner.save()
    response = login(client, owner.email)
    assert response.url.startswith(reverse("login-2fa"))
    assert "_auth_user_id" not in client.session
    client.post(reverse("login-2fa"), {"code": "000000"})
    assert "_auth_user_id" not in client.session
    client.post(reverse("login-2fa"), {"code": pyotp.TOTP(owner.totp_secret).now()})
    assert client.session["_auth_user_id"] == str(owner.pk)


def test_it_stores_passwords_with_argon2(db, settings):
    from tayori.accounts.models import Operator

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    operator = Operator.objects.create_user(username="a@b.jp", email="a@b.jp", password=PASSWORD)
    assert operator.password.startswith("argon2")


def test_signing_out_needs_post_and_is_audited(owner_client, owner):
    assert owner_client.get(reverse("logout")).status_code == 405
    owner_client.post(reverse("logout"))
    assert AuditEvent.objects.filter(action="logout", operator=owner).exists()


@pytest.mark.parametrize("lang,word", [("ja", "メンバー"), ("en", "Members")])
def test_the_dashboard_speaks_the_chosen_language(owner_client, lang, word):
    owner_client.post(reverse("set-language"), {"language": lang})
    assert word in owner_client.get(reverse("home")).content.decode()


def test_the_dashboard_counts_members_added_per_day_in_the_workspace_zone(owner_client, workspace):
    from datetime import timedelta

    from django.utils import timezone

    from tayori.members.models import Member

    now = timezone.now()
    Member.objects.create(workspace=workspace, email="a@example.jp", created_at=now)
    Member.objects.create(workspace=workspace, email="b@example.jp", created_at=now)
    Member.objects.create(workspace=workspace, email="c@example.jp", created_at=now - timedelta(days=2))
    Member.objects.create(workspace=workspace, email="d@example.jp", created_at=now - timedelta(days=40))
    joined = owner_client.get(reverse("home")).context["joined"]
    assert len(joined) == 30
    assert joined[-1][1] == 2 and joined[-3][1] == 1 and sum(n for _d, n in joined) == 3
