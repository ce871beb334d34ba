"""ISO-2022-JP: checking templates, suggesting replacements, encoding bodies and headers."""

import pytest

from tayori.content.charset import (
    VARIANTS,
    Unencodable,
    check_iso2022jp,
    replace_all,
    suggest,
)


def encodes(text: str) -> bool:
    try:
        text.encode("iso2022_jp")
    except UnicodeEncodeError:
        return False
    return True


def test_check_lists_each_character_once_with_its_count_in_order():
    found = check_iso2022jp("①のご案内 ①②", "髙橋様 ｶﾀｶﾅ 😀", "😀")
    assert [(u.char, u.count) for u in found] == [
        ("①", 2), ("②", 1), ("髙", 1), ("ｶ", 2), ("ﾀ", 1), ("ﾅ", 1), ("😀", 2)]
    assert found[0] == Unencodable("①", 2, "(1)", "CIRCLED DIGIT ONE")
    assert found[2] == Unencodable("髙", 1, "高", "CJK UNIFIED IDEOGRAPH-9AD9")
    assert found[3].replacement == "カ"
    assert found[-1] == Unencodable("😀", 2, None, "GRINNING FACE")


def test_check_finds_nothing_in_ordinary_japanese():
    assert check_iso2022jp("株式会社サンプルのご案内。〜 ― ¥1,000（税込）…", "") == []


def test_what_the_codec_really_does_with_tildes_and_dashes():
    # WAVE DASH, HORIZONTAL BAR and MINUS SIGN are the JIS X 0208 code points; the full-width
    # tilde and hyphen-minus and the em dash (their Windows look-alikes) are not.
    assert [u.char for u in check_iso2022jp("〜―−～－—")] == ["～", "－", "—"]
    assert [suggest(c) for c in "～－—"] == ["~", "-", None]


def test_characters_without_a_name_are_named_by_code_point():
    [escape] = check_iso2022jp("a\x1bb")
    assert escape.name == "U+001B" and escape.replacement is None


def test_jinja_comments_and_code_are_not_checked_but_string_literals_are():
    template = '{# ①メモ #}{{ member.髙 }}{% if x == "②" %}{{ "③" }}{% endif %}\n{{ name|yen }}'
    assert [u.char for u in check_iso2022jp(template)] == ["②", "③"]


@pytest.mark.parametrize(("char", "expected"), [
    ("①", "(1)"),
    ("⑳", "(20)"),
    ("㉑", "(21)"),
    ("⑴", "(1)"),
    ("Ⅰ", "I"),
    ("ⅻ", "xii"),
    ("㈱", "(株)"),
    ("№", "No"),
    ("㍉", "ミリ"),
    ("髙", "高"),
    ("﨑", "崎"),
    ("\ufa10", "塚"),  # CJK compatibility ideograph, by NFKC
    ("德", "徳"),
    ("濵", "濱"),
    ("𠮷", "吉"),
    ("ｶ", "カ"),
    ("ﾞ", "゛"),
    ("｡", "。"),
    ("あ", "あ"),
    ("😀", None),
    ("©", None),
])
def test_suggestions(char, expected):
    assert suggest(char) == expected
    if expected is not None:
        assert encodes(expected)


def test_every_variant_maps_an_unencodable_character_to_an_encodable_one():
    for char, target in VARIANTS.items():
        assert not encodes(char) and encodes(target), char


def test_replace_all_combines_voiced_marks_and_keeps_what_it_cannot_fix():
    assert replace_all("ｶﾞｷﾞ①髙橋") == "ガギ(1)高橋"
    assert replace_all("ﾊﾟｰﾃｨｰ😀㈱") == "パーティー😀(株)"
    assert replace_all("ﾝﾞ") == "ン゛"
    assert replace_all("ご案内") == "ご案内"
