"""Validating and normalizing what operators, CSV files and API clients say about a member.

Every write path (UI forms, CSV import, REST API) goes through ``clean_member`` so that the same
input is accepted or refused, with the same message, wherever it comes from.
"""

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _
from email_validator import EmailNotValidError, validate_email

from tayori.members.models import Attribute, Member

TRUE_WORDS = {"1", "true", "yes", "y", "on", "はい", "有", "あり", "○", "◯"}
FALSE_WORDS = {"0", "false", "no", "n", "off", "いいえ", "無", "なし", "×", ""}


class FieldError(ValueError):
    """A value that cannot be stored, with the field it belongs to."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


# A plain ASCII dot-atom local part, the shape of nearly every address in a member file. Such
# addresses skip the full validator (60 µs each, a minute per million rows); their domain is still
# checked by it, once per distinct domain.
_SIMPLE_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


@lru_cache(maxsize=4096)
def _normalized_domain(domain: str) -> str:
    """The validator's verdict on a domain (raises EmailNotValidError), cached."""
    return validate_email(f"a@{domain}", check_deliverability=False).ascii_domain


# docomo and au issued addresses with dots RFC 5322 forbids (``taro..x.@docomo.ne.jp``) until
# 2009; their owners still use them, and the carriers still deliver to them.
_LEGACY_CARRIERS = frozenset({"docomo.ne.jp", "ezweb.ne.jp"})
_LEGACY_LOCAL = re.compile(r"[A-Za-z0-9._-]{1,64}")


def normalize_email(raw: str) -> str:
    """Validate syntax (IDN accepted) and return the normalized address; raise FieldError."""
    text = unicodedata.normalize("NFKC", raw or "").strip()
    if not text:
        return ""
    local, at, domain = text.rpartition("@")
    if domain.lower() in _LEGACY_CARRIERS and _LEGACY_LOCAL.fullmatch(local):
        return f"{local}@{domain.lower()}"
    if at and domain.isascii() and len(local) <= 64 and len(text) <= 254 and _SIMPLE_LOCAL.fullmatch(local):
        try:
            return f"{local}@{_normalized_domain(domain.lower())}"
        except EmailNotValidError as exc:
            raise FieldError("email", _("Not a valid email address: %(reason)s")
                             % {"reason": str(exc).replace("a@", "")}) from exc
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise FieldError("email", _("Not a valid email address: %(reason)s") % {"reason": exc}) from exc
    local, _at, domain = result.normalized.rpartition("@")
    return f"{local}@{domain.lower()}"


# Mobile (070/080/090) and IP-phone (050) numbers, the shape of nearly every number in a member
# file, written nationally or with +81. They skip phonenumbers.parse (45 µs each, most of a
# million-row import); whether the number is valid is still phonenumbers' verdict.
_JP_MOBILE = re.compile(r"(?:0|\+81)([5789]0\d{8})")
_PHONE_SEPARATORS = re.compile(r"[\s\-‐－ー()（）]")


def normalize_phone(raw: str, region: str = "JP") -> str:
    """Return E.164 (+81…). Full-width digits, hyphens and spaces are accepted."""
    text = unicodedata.normalize("NFKC", raw or "").strip()
    if not text:
        return ""
    text = _PHONE_SEPARATORS.sub("", text)
    mobile = _JP_MOBILE.fullmatch(text) if region == "JP" or text.startswith("+81") else None
    if mobile:
        national = mobile.group(1)
        number = phonenumbers.PhoneNumber(country_code=81, national_number=int(national))
        if not phonenumbers.is_valid_number(number):
            raise FieldError("phone", _("Not a valid phone number."))
        return "+81" + national
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise FieldError("phone", _("Not a valid phone number.")) from exc
    if not phonenumbers.is_valid_number(number):
        raise FieldError("phone", _("Not a valid phone number."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def clean_value(attribute: Attribute, raw):
    """Convert one raw value (string from CSV/forms, or JSON from the API) to its stored form.

    Stored forms are JSON-friendly and sort correctly as text: numbers as int/float, dates as
    ``YYYY-MM-DD``, datetimes as ISO 8601 in UTC, booleans as true/false, multi-choice as lists.
    Returns None for an empty value.
    """
    field = attribute.key
    if raw is None or (isinstance(raw, str) and raw.strip() == "") or raw == []:
        if attribute.required:
            raise FieldError(field, _("This field is required."))
        return None
    kind = attribute.type
    T = Attribute.Type
    if kind == T.TEXT:
        if not isinstance(raw, str | int | float) or isinstance(raw, bool):
            raise FieldError(field, _("Expected text."))
        value = str(raw).strip()
        if len(value) > 2000:
            raise FieldError(field, _("Text is longer than 2000 characters."))
        return value
    if kind == T.NUMBER:
        if isinstance(raw, bool):
            raise FieldError(field, _("Expected a number."))
        if isinstance(raw, int | float):
            return raw
        text = unicodedata.normalize("NFKC", str(raw)).strip().replace(",", "")
        try:
            number = float(text)
        except ValueError as exc:
            raise FieldError(field, _("Expected a number, got “%(value)s”.") % {"value": raw}) from exc
        if number != number or number in (float("inf"), float("-inf")):
            raise FieldError(field, _("Expected a number, got “%(value)s”.") % {"value": raw})
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == T.DATE:
        if isinstance(raw, dt.datetime):
            return raw.date().isoformat()
        if isinstance(raw, dt.date):
            return raw.isoformat()
        text = unicodedata.normalize("NFKC", str(raw)).strip().replace("/", "-").replace(".", "-")
        m = re.fullmatch(r"(\d{4})年(\d{1,2})月(\d{1,2})日", text)
        if m:
            text = "-".join(m.groups())
        m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
        try:
            value = dt.date(*map(int, m.groups())) if m else parse_date(text)
        except ValueError:
            value = None
        if value is None:
            raise FieldError(field, _("Expected a date (YYYY-MM-DD), got “%(value)s”.") % {"value": raw})
        return value.isoformat()
    if kind == T.DATETIME:
        text = unicodedata.normalize("NFKC", str(raw)).strip().replace("/", "-")
        try:
            value = raw if isinstance(raw, dt.datetime) else parse_datetime(text.replace(" ", "T"))
        except ValueError:
            value = None
        if value is None:
            raise FieldError(field, _("Expected a date and time (YYYY-MM-DD HH:MM), got “%(value)s”.")
                             % {"value": raw})
        try:
            if value.tzinfo is None:
                from django.utils import timezone
                value = timezone.make_aware(value)
            # Times at the calendar's ends (0001-01-01 in JST) have no UTC equivalent.
            return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        except (OverflowError, ValueError) as exc:
            raise FieldError(field, _("Expected a date and time (YYYY-MM-DD HH:MM), got “%(value)s”.")
                             % {"value": raw}) from exc
    if kind == T.BOOLEAN:
        if isinstance(raw, bool):
            return raw
        text = unicodedata.normalize("NFKC", str(raw)).strip().lower()
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
        raise FieldError(field, _("Expected yes or no, got “%(value)s”.") % {"value": raw})
    if kind == T.CHOICE:
        value = str(raw).strip()
        if value not in attribute.choices:
            raise FieldError(field, _("“%(value)s” is not one of the choices: %(choices)s")
                             % {"value": value, "choices": ", ".join(attribute.choices)})
        return value
    if kind == T.MULTI_CHOICE:
        items = raw if isinstance(raw, list) else re.split(r"[;|、]", str(raw))
        values = [str(item).strip() for item in items if str(item).strip()]
        bad = [v for v in values if v not in attribute.choices]
        if bad:
            raise FieldError(field, _("“%(value)s” is not one of the choices: %(choices)s")
                             % {"value": ", ".join(bad), "choices": ", ".join(attribute.choices)})
        return sorted(set(values), key=attribute.choices.index)
    raise FieldError(field, f"unknown attribute type {kind}")


@dataclass
class CleanMember:
    email: str
    phone: str
    status: str | None
    attributes: dict


def clean_member(attributes_by_key: dict[str, Attribute], data: dict, *, partial: bool = False,
                 existing: dict | None = None,
                 memo: dict[str, dict] | None = None) -> tuple[CleanMember | None, list[FieldError]]:
    """Validate one member's fields. Returns (cleaned, errors); every error is collected.

    ``data`` maps "email", "phone", "status" and attribute keys to raw values. With ``partial``
    (updates), absent keys keep their ``existing`` value and required checks apply only to keys
    present. Unknown keys are errors, so a typo in a CSV header or API body is never silently lost.
    ``memo`` (attribute key → dict) lets a batch clean each repeated raw value once.
    """
    errors: list[FieldError] = []
    email = phone = ""
    status = None
    try:
        email = normalize_email(data.get("email") or "")
    except FieldError as e:
        errors.append(e)
    try:
        phone = normalize_phone(data.get("phone") or "")
    except FieldError as e:
        errors.append(e)
    if data.get("status") not in (None, ""):
        status = str(data["status"]).strip()
        if status not in Member.Status.values:
            errors.append(FieldError("status", _("Unknown status “%(value)s”.") % {"value": status}))
    values = dict(existing or {})
    for key, raw in data.items():
        if key in ("email", "phone", "status"):
            continue
        attribute = attributes_by_key.get(key)
        if attribute is None:
            errors.append(FieldError(key, _("Unknown attribute “%(key)s”.") % {"key": key}))
            continue
        slot = memo.get(key) if memo is not None else None
        try:
            value = clean_value(attribute, raw) if slot is None else _memoized(attribute, raw, slot)
        except FieldError as e:
            errors.append(e)
            continue
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    if not partial:
        for key, attribute in attributes_by_key.items():
            if attribute.required and key not in data and key not in values:
                errors.append(FieldError(key, _("This field is required.")))
    contact_error = any(e.field in ("email", "phone") for e in errors)
    if not partial and not email and not phone and not contact_error:
        errors.append(FieldError("email", _("An email address or a phone number is required.")))
    if errors:
        return None, errors
    return CleanMember(email=email, phone=phone, status=status, attributes=values), []


MEMO_LIMIT = 100_000  # raw values remembered per attribute and batch


def _memoized(attribute: Attribute, raw, slot: dict):
    """clean_value, remembering the outcome per raw text (choices, dates and numbers repeat)."""
    hit = slot.get(raw) if isinstance(raw, str) else None
    if hit is None:
        try:
            hit = (clean_value(attribute, raw), None)
        except FieldError as e:
            hit = (None, e.message)
        if isinstance(raw, str) and len(slot) < MEMO_LIMIT:
            slot[raw] = hit
    value, error = hit
    if error is not None:
        raise FieldError(attribute.key, error)
    return list(value) if isinstance(value, list) else value


def attributes_of(workspace) -> dict[str, Attribute]:
    return {a.key: a for a in Attribute.objects.filter(workspace=workspace)}
