"""The fast path for Japanese mobile numbers gives exactly phonenumbers' answer."""

import random

import phonenumbers
import pytest

from tayori.members.values import FieldError, normalize_phone


def reference(text: str, region: str = "JP") -> str | None:
    """What phonenumbers alone says: the E.164 form, or None for an invalid number."""
    try:
        number = phonenumbers.parse(text.replace("-", ""), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def ours(text: str, region: str = "JP") -> str | None:
    try:
        return normalize_phone(text, region)
    except FieldError:
        return None


def test_it_agrees_with_phonenumbers_on_random_mobile_shaped_numbers():
    rng = random.Random(7)
    samples = [f"0{a}0{rng.randrange(10 ** 8):08d}" for a in "5789" for _ in range(1500)]
    samples += [f"0{a}0{d}{rng.randrange(10 ** 7):07d}" for a in "5789" for d in "0123456789"]
    samples += ["+81" + s[1:] for s in samples[::7]]
    assert sum(reference(s) is None for s in samples) > 10  # the sample includes invalid ranges
    for text in samples:
        assert ours(text) == reference(text), text
        assert ours("-".join((text[:3], text[3:7], text[7:]))) == reference(text), text


@pytest.mark.parametrize("text", ["０９０－１２３４－５６７８", "090 1234 5678", "(090)1234-5678",
                                  "+81 90 1234 5678", "090ー1234ー5678"])
def test_written_forms_of_one_number_normalize_alike(text):
    assert normalize_phone(text) == "+819012345678"


@pytest.mark.parametrize("text", ["03-1234-5678", "0120-123-456", "011-123-4567",
                                  "+1 650 253 0000", "0101234567890", "09012345678901"])
def test_other_numbers_still_take_the_full_parser(text):
    assert ours(text) == reference(text)
