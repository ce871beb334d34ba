"""Signatures: made over the timestamp and the raw body, refused when the body, the secret or the
time is wrong, accepted with either secret during a rotation — by Tayori's verify and by the
standalone check the README gives customers."""

import hashlib
import hmac
import time

import pytest

from tayori.webhooks import signing

SECRET = "whsec_test-secret"
BODY = '{"id":"evt_1","type":"message.sent","data":{"address":"太郎@example.jp"}}'.encode()


def verify_tayori_signature(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """The README's receiver-side check, word for word (standard library only)."""
    parts = [p.strip().split("=", 1) for p in header.split(",") if "=" in p]
    timestamps = [v for k, v in parts if k == "t"]
    signatures = [v for k, v in parts if k == "v1"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not signatures:
        return False
    t = int(timestamps[0])
    if abs(time.time() - t) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s) for s in signatures)


CHECKS = [signing.verify, verify_tayori_signature]


def test_the_header_is_a_timestamp_and_an_hmac_of_timestamp_dot_body():
    header = signing.header([SECRET], BODY, timestamp=1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_secrets_are_prefixed_and_random():
    first, second = signing.new_secret(), signing.new_secret()
    assert first.startswith("whsec_") and len(first) > 40 and first != second


@pytest.mark.parametrize("check", CHECKS)
def test_a_fresh_signature_of_the_body_verifies(check):
    assert check(SECRET, signing.header([SECRET], BODY), BODY)


@pytest.mark.parametrize("check", CHECKS)
def test_a_tampered_body_is_refused(check):
    header = signing.header([SECRET], BODY)
    assert not check(SECRET, header, BODY.replace(b"sent", b"failed"))
    assert not check(SECRET, header, BODY + b" ")


@pytest.mark.parametrize("check", CHECKS)
def test_a_wrong_secret_is_refused(check):
    assert not check("whsec_other", signing.header([SECRET], BODY), BODY)


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("age", [301, -301, 86_400])
def test_an_old_or_future_timestamp_is_refused(check, age):
    header = signing.header([SECRET], BODY, timestamp=int(time.time()) - age)
    assert not check(SECRET, header, BODY)


@pytest.mark.parametrize("check", CHECKS)
def test_a_changed_timestamp_breaks_the_signature(check):
    header = signing.header([SECRET], BODY, timestamp=int(time.time()) - 10)
    moved = header.replace(header.split(",")[0], f"t={int(time.time())}")
    assert not check(SECRET, moved, BODY)


@pytest.mark.parametrize("check", CHECKS)
def test_during_a_rotation_either_secret_verifies(check):
    header = signing.header(["whsec_new", "whsec_old"], BODY)
    assert header.count("v1=") == 2
    assert check("whsec_new", header, BODY) and check("whsec_old", header, BODY)
    assert not check("whsec_third", header, BODY)


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("header", ["", "garbage", "t=,v1=", "v1=abc", "t=123", "t=x,v1=00"])
def test_a_malformed_header_is_refused(check, header):
    assert not check(SECRET, header, BODY)


def test_the_tolerance_can_be_chosen():
    header = signing.header([SECRET], BODY, timestamp=int(time.time()) - 600)
    assert not signing.verify(SECRET, header, BODY)
    assert signing.verify(SECRET, header, BODY, tolerance=900)
