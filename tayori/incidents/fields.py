"""A notice type's form: the kinds of field it may have, checking a type's field list, and
cleaning the values an operator's form or a monitoring system's API call gives. Both paths call
``clean``, so the console and the API accept and refuse the same values with the same words.

Values are kept as JSON: services as a list of catalogue codes, a date-time as UTC ISO text,
choices and texts as text. ``shown`` turns them into what templates print as ``notice.<key>``.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tayori.delivery.filters import WEEKDAYS
from tayori.members.values import FieldError

KINDS = {
    "services": gettext_lazy("Affected services (picked from the catalogue)"),
    "choice": gettext_lazy("Choice"),
    "datetime": gettext_lazy("Date and time"),
    "text": gettext_lazy("Short text"),
    "textarea": gettext_lazy("Long text"),
}
MAX_FIELDS = 20
MAX_CHOICES = 50
TEXT_MAX = 200
TEXTAREA_MAX = 4000
KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
SERVICES_JOINER = "、"


@dataclass(frozen=True)
class FieldSpec:
    """One field of a notice type's form."""

    key: str
    label: str
    kind: str
    required: bool = False
    choices: tuple[str, ...] = ()
    help: str = ""

    @classmethod
    def of(cls, raw: dict) -> FieldSpec:
        return cls(raw["key"], raw.get("label") or raw["key"], raw["kind"],
                   bool(raw.get("required")), tuple(raw.get("choices") or ()),
                   raw.get("help", ""))

    def as_dict(self) -> dict:
        return {"key": self.key, "label": self.label, "kind": self.kind,
                "required": self.required, "choices": list(self.choices), "help": self.help}


def specs_of(notice_type) -> list[FieldSpec]:
    return [FieldSpec.of(raw) for raw in notice_type.fields or []]


def services_field(notice_type) -> FieldSpec | None:
    """The field whose services decide who receives the notice: the first of its kind."""
    return next((spec for spec in specs_of(notice_type) if spec.kind == "services"), None)


def check_specs(raw_specs: list[dict]) -> tuple[list[dict], list[str]]:
    """A type's field list normalized, and what is wrong with it (for people to read)."""
    specs, problems, keys = [], [], set()
    if len(raw_specs) > MAX_FIELDS:
        problems.append(_("A notice type has at most %(n)s fields.") % {"n": MAX_FIELDS})
    for number, raw in enumerate(raw_specs[:MAX_FIELDS], start=1):
        key = str(raw.get("key", "")).strip()
        label = str(raw.get("label", "")).strip()[:100]
        kind = str(raw.get("kind", ""))
        where = _("Field %(n)s") % {"n": number}
        if not KEY.fullmatch(key):
            problems.append(_("%(where)s: the key must be lower-case letters, digits and _, "
                              "starting with a letter.") % {"where": where})
            continue
        if key in keys:
            problems.append(_("%(where)s: the key “%(key)s” is used twice.")
                            % {"where": where, "key": key})
            continue
        if kind not in KINDS:
            problems.append(_("%(where)s: choose a kind.") % {"where": where})
            continue
        choices = [str(c).strip()[:100] for c in raw.get("choices") or [] if str(c).strip()]
        choices = list(dict.fromkeys(choices))
        if kind == "choice" and not choices:
            problems.append(_("%(where)s: a choice field needs its choices.") % {"where": where})
            continue
        if len(choices) > MAX_CHOICES:
            problems.append(_("%(where)s: at most %(n)s choices.")
                            % {"where": where, "n": MAX_CHOICES})
            continue
        keys.add(key)
        specs.append(FieldSpec(key, label or key, kind, bool(raw.get("required")),
                               tuple(choices) if kind == "choice" else (),
                               str(raw.get("help", "")).strip()[:200]).as_dict())
    return specs, problems


def clean(notice_type, raw: dict, *, catalogue: dict,
          zone: ZoneInfo) -> tuple[dict, list[FieldError]]:
    """The values a notice of ``notice_type`` keeps, and every problem by field key.

    ``raw`` maps field keys to what a form posted (text, or a list for services) or what an
    API client sent (JSON). ``catalogue`` maps the workspace's active service codes to their
    Service. A naive date-time is read in ``zone``. Keys the type does not have are refused.
    """
    values, errors = {}, []
    specs = specs_of(notice_type)
    known = {spec.key for spec in specs}
    for key in raw:
        if key not in known:
            errors.append(FieldError(str(key), _("This notice type has no field “%(key)s”.")
                                     % {"key": key}))
    for spec in specs:
        given = raw.get(spec.key)
        try:
            value = _clean_one(spec, given, catalogue, zone)
        except FieldError as error:
            errors.append(error)
            continue
        if value in (None, "", []):
            if spec.required:
                errors.append(FieldError(spec.key, _("%(label)s is required.")
                                         % {"label": spec.label}))
            continue
        values[spec.key] = value
    return values, errors


def _clean_one(spec: FieldSpec, given, catalogue: dict, zone: ZoneInfo):
    if given is None:
        return None
    if spec.kind == "services":
        if isinstance(given, str):
            given = [given]
        if not isinstance(given, list) or not all(isinstance(c, str) for c in given):
            raise FieldError(spec.key, _("Give a list of service codes."))
        codes = list(dict.fromkeys(c.strip() for c in given if c.strip()))
        unknown = [c for c in codes if c not in catalogue]
        if unknown:
            raise FieldError(spec.key, _("Unknown service: %(codes)s")
                             % {"codes": ", ".join(unknown[:10])})
        order = list(catalogue)
        return sorted(codes, key=order.index)
    if not isinstance(given, str):
        raise FieldError(spec.key, _("Expected text."))
    text = unicodedata.normalize("NFC", given).strip()
    if "\x00" in text:
        raise FieldError(spec.key, _("Text may not contain NUL characters."))
    if not text:
        return None
    if spec.kind == "choice":
        if text not in spec.choices:
            raise FieldError(spec.key, _("“%(value)s” is not one of the choices: %(choices)s")
                             % {"value": text[:100], "choices": "、".join(spec.choices)})
        return text
    if spec.kind == "datetime":
        return _instant(spec, text, zone)
    if spec.kind == "text":
        text = " ".join(text.split())  # one line: it may stand in a subject
        limit = TEXT_MAX
    else:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        limit = TEXTAREA_MAX
    if len(text) > limit:
        raise FieldError(spec.key, _("At most %(n)s characters.") % {"n": limit})
    return text


def _instant(spec: FieldSpec, text: str, zone: ZoneInfo) -> str:
    """A date-time as UTC ISO text. A form's ``2026-11-30T03:12`` (datetime-local) and naive
    API values are read in the workspace's zone."""
    try:
        moment = parse_datetime(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        moment = None
    if moment is None or not 2000 <= moment.year <= 2999:
        raise FieldError(spec.key, _("Not a date and time: give it as 2026-11-30T03:12 "
                                     "(ISO 8601)."))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


def local(value: str, zone: ZoneInfo) -> dt.datetime | None:
    """A stored date-time in ``zone`` (None if it is not one)."""
    moment = parse_datetime(value) if isinstance(value, str) else None
    return moment.astimezone(zone) if moment and moment.tzinfo else None


def datetime_text(moment: dt.datetime) -> str:
    """How a notice prints a time: 2026年11月30日（月）03:12."""
    return (f"{moment.year}年{moment.month}月{moment.day}日（{WEEKDAYS[moment.weekday()]}）"
            f"{moment:%H:%M}")


def shown(notice_type, values: dict, *, names: dict[str, str], zone: ZoneInfo) -> dict:
    """What templates print as ``notice.<key>``: every field of the type, as text (services
    by name, joined with "、"; times in the workspace's zone); empty when not given."""
    out = {}
    for spec in specs_of(notice_type):
        value = values.get(spec.key)
        if value in (None, "", []):
            out[spec.key] = ""
        elif spec.kind == "services":
            out[spec.key] = SERVICES_JOINER.join(names.get(code, code) for code in value)
        elif spec.kind == "datetime":
            moment = local(value, zone)
            out[spec.key] = datetime_text(moment) if moment else str(value)
        else:
            out[spec.key] = str(value)
    return out


def form_value(spec: FieldSpec, value, zone: ZoneInfo):
    """A stored value as the console's form shows it (datetime-local text, a list of codes)."""
    if spec.kind == "datetime":
        moment = local(value, zone) if value else None
        return moment.strftime("%Y-%m-%dT%H:%M") if moment else ""
    if spec.kind == "services":
        return list(value or [])
    return value or ""
