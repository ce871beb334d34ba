import pyotp
from django.urls import reverse

from tayori.accounts.models import AuditEvent


def test_it_shows_a_qr_code_and_turns_two_factor_on_with_a_valid_code(owner_client, owner):
    page = owner_client.get(reverse("two-factor"))
    assert page.status_code == 200
    assert b"<svg" in page.content
    owner.refresh_from_db()
    assert owner.totp_secret and not owner.totp_enabled
    owner_client.post(reverse("two-factor"), {"code": "000000"})
    owner.refresh_from_db()
    assert not owner.totp_enabled
    owner_client.post(reverse("two-factor"), {"code": pyotp.TOTP(owner.totp_secret).now()})
    owner.refresh_from_db()
    assert owner.totp_enabled
    assert AuditEvent.objects.filter(action="operator.2fa_enabled").exists()


def test_turning_two_factor_off_needs_a_current_code(owner_client, owner):
    owner.totp_secret = pyotp.random_base32()
    owner.totp_enabled = True
    owner.save()
    assert owner_client.get(reverse("two-factor")).status_code == 200
    owner_client.post(reverse("two-factor"), {"code": pyotp.TOTP(owner.totp_secret).now()})
    owner.refresh_from_db()
    assert not owner.totp_enabled and not owner.totp_secret
