"""ISO-2022-JP for mail templates: which characters the codec cannot carry, what to write instead,
and the encoded bytes and RFC 2047 header words for text that can be carried.

The check reads Jinja comments as nothing and Jinja tags as only their string literals, since
those are the parts of a tag that can end up in the mail; everything else is checked as written.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

CODEC = "iso2022_jp"

# Well-known itaiji in names that JIS X 0208 lacks, mapped to the common form it has.
VARIANTS = {
    "髙": "高",
    "﨑": "崎",
    "德": "徳",
    "濵": "濱",
    "瀨": "瀬",
    "栁": "柳",
    "𠮷": "吉",
    # NFKC turns the half-width sound marks into combining ones, which JIS X 0208 lacks.
    "ﾞ": "゛",
    "ﾟ": "゜",
    "\u3099": "゛",
    "\u309a": "゜",
}

# Escape, shift-out and shift-in would be read as ISO-2022 controls by the receiver.
CONTROLS = frozenset("\x1b\x0e\x0f")

HALFWIDTH_KANA = re.compile("[\uff61-\uff9f]+")
JINJA_TAG = re.compile(r"\{#.*?#\}|\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
STRING_LITERAL = re.compile(r"\"((?:[^\"\\]|\\.)*)\"|'((?:[^'\\]|\\.)*)'", re.DOTALL)


@dataclass
class Unencodable:
    char: str
    count: int
    replacement: str | None
    name: str


@lru_cache(maxsize=4096)
def _encodable(text: str) -> bool:
    if CONTROLS.intersection(text):
        return False
    try:
        text.encode(CODEC)
    except UnicodeEncodeError:
        return False
    return True


def _literals(tag: re.Match[str]) -> str:
    if tag.group().startswith("{#"):
        return ""
    return " ".join(a or b for a, b in STRING_LITERAL.findall(tag.group()))


def check_iso2022jp(*texts: str) -> list[Unencodable]:
    """Characters the strict codec cannot encode, each once with its count, in order of first
    appearance across the texts."""
    counts: dict[str, int] = {}
    for text in texts:
        for char in JINJA_TAG.sub(_literals, text or ""):
            if not _encodable(char):
                counts[char] = counts.get(char, 0) + 1
    return [Unencodable(char, count, suggest(char), _name(char)) for char, count in counts.items()]


def _name(char: str) -> str:
    return unicodedata.name(char, f"U+{ord(char):04X}")


def suggest(char: str) -> str | None:
    """Something the codec can encode in place of char (char itself when it encodes already),
    or None when there is nothing close enough."""
    if _encodable(char):
        return char
    if char in VARIANTS:
        return VARIANTS[char]
    folded = unicodedata.normalize("NFKC", char)
    if unicodedata.name(char, "").startswith("CIRCLED "):
        folded = f"({folded})"  # ① -> (1), not a bare 1 that runs into the next digit
    return folded if folded != char and _encodable(folded) else None


def replace_all(text: str) -> str:
    """text with every unencodable character it can fix replaced; the rest are left in place.
    Runs of half-width katakana are normalized together so ｶﾞ becomes ガ, not カ゛."""
    text = HALFWIDTH_KANA.sub(lambda run: unicodedata.normalize("NFKC", run.group()), text)
    return "".join(c if _encodable(c) else (suggest(c) or c) for c in text)
