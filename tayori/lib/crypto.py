"""Secrets at rest (DKIM private keys, relay passwords, later bank data): Fernet tokens keyed from
TAYORI_ENCRYPTION_KEY, or, when it is unset, from a key derived from SECRET_KEY with HKDF.

TAYORI_ENCRYPTION_KEY may list several comma-separated keys: the first encrypts, all decrypt,
so a key can be rotated without losing what the old one sealed."""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class DecryptionFailed(ValueError):
    """The value was not sealed by any of this installation's keys, or was altered."""


def _derived(secret_key: str) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tayori.crypto",
               info=b"secrets at rest").derive(secret_key.encode())
    return base64.urlsafe_b64encode(key)


@lru_cache(maxsize=4)
def _fernet(keys: str, secret_key: str) -> MultiFernet:
    listed = [k.strip() for k in keys.split(",") if k.strip()]
    return MultiFernet([Fernet(k) for k in listed] or [Fernet(_derived(secret_key))])


def _current() -> MultiFernet:
    return _fernet(getattr(settings, "ENCRYPTION_KEY", ""), settings.SECRET_KEY)


def encrypt(value: str | bytes) -> str:
    data = value.encode() if isinstance(value, str) else value
    return _current().encrypt(data).decode()


def decrypt_bytes(token: str) -> bytes:
    try:
        return _current().decrypt(token.encode())
    except InvalidToken:
        raise DecryptionFailed("the value cannot be decrypted with the configured keys") from None


def decrypt(token: str) -> str:
    return decrypt_bytes(token).decode()


def new_key() -> str:
    """A fresh key for TAYORI_ENCRYPTION_KEY."""
    return Fernet.generate_key().decode()
