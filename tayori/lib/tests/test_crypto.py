"""Secrets at rest: round trip, tampering refused, keys rotate."""

import pytest

from tayori.lib import crypto


def test_a_secret_round_trips_and_is_not_stored_in_clear():
    sealed = crypto.encrypt("-----BEGIN PRIVATE KEY----- 秘密")
    assert "PRIVATE" not in sealed
    assert crypto.decrypt(sealed) == "-----BEGIN PRIVATE KEY----- 秘密"


def test_an_altered_value_is_refused(settings):
    sealed = crypto.encrypt("password")
    altered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(altered)
    settings.ENCRYPTION_KEY = crypto.new_key()  # a different installation's key
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(sealed)


def test_keys_rotate_old_values_still_open(settings):
    old = crypto.new_key()
    settings.ENCRYPTION_KEY = old
    sealed = crypto.encrypt("relay password")
    settings.ENCRYPTION_KEY = f"{crypto.new_key()},{old}"
    assert crypto.decrypt(sealed) == "relay password"
    settings.ENCRYPTION_KEY = crypto.new_key()
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(sealed)
