"""Changing an attribute's definition (type, choices, required, unique) without losing data.

Every stored value is first checked against the new definition with the same ``clean_value`` that
every write path uses. If any member blocks the change nothing is written and the blocking members
are reported; otherwise the values are converted to the new type's stored form (text "42" becomes
the number 42) and the attribute is saved, all in one transaction.
"""

import datetime as dt
import json
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from tayori.members.models import Attribute, Member
from tayori.members.values import FieldError, clean_value

SHOWN_BLOCKERS = 20
_CHUNK = 1000
T = Attribute.Type


@dataclass
class Blocker:
    """One member whose stored value does not fit the new definition."""

    member_id: int
    email: str
    phone: str
    value: object
    reason: str


@dataclass
class ChangeResult:
    blockers: list[Blocker] = field(default_factory=list)  # the first SHOWN_BLOCKERS
    blocked: int = 0  # how many members block the change in all
    converted: int = 0  # members whose stored value was rewritten

    @property
    def ok(self) -> bool:
        return self.blocked == 0

    def block(self, member, value, reason: str) -> None:
        self.blocked += 1
        if len(self.blockers) < SHOWN_BLOCKERS:
            self.blockers.append(Blocker(member.pk, member.email, member.phone, value, reason))


class _Blocked(Exception):
    """Raised inside the transaction so that conversions already written are rolled back."""


def needs_check(old: Attribute, new: Attribute) -> bool:
    """Whether existing values must be revalidated: a new type, changed choices, or a newly
    switched-on required or unique flag. Label, PII and order changes never need it."""
    return (old.type != new.type
            or (new.type in (T.CHOICE, T.MULTI_CHOICE) and list(old.choices) != list(new.choices))
            or (new.required and not old.required)
            or (new.unique and not old.unique))


def save_attribute(attribute: Attribute) -> ChangeResult:
    """Save a changed attribute, converting existing values when its definition changes.

    ``attribute`` carries the new definition (not yet saved); the stored row is the old one.
    Returns a result whose ``ok`` is False, with nothing written, when members block the change.
    """
    if attribute.pk is None:
        raise ValueError("save_attribute changes an existing attribute; create new ones directly")
    result = ChangeResult()
    try:
        with transaction.atomic():
            old = Attribute.objects.select_for_update().get(pk=attribute.pk)
            if old.key != attribute.key:
                raise ValueError("an attribute's key cannot change")
            if needs_check(old, attribute):
                with timezone.override(attribute.workspace.time_zone):
                    _convert_values(old, attribute, result)
                if not result.ok:
                    raise _Blocked
            attribute.save()
    except _Blocked:
        pass
    return result


def _convert_values(old: Attribute, new: Attribute, result: ChangeResult) -> None:
    members = Member.objects.filter(workspace_id=new.workspace_id)
    key = new.key
    if new.required:
        missing = members.exclude(attributes__has_key=key).order_by("pk")
        shown = list(missing.only("pk", "email", "phone")[:SHOWN_BLOCKERS])
        for member in shown:
            result.block(member, None, _("This field is required."))
        result.blocked += missing.count() - len(shown)  # the rest, counted without loading them
    seen: dict = {}
    pending: list[Member] = []
    # Locked so that a member edited meanwhile cannot have its other attributes overwritten
    # by the rewrite below (PostgreSQL; SQLite serializes writers anyway).
    having = (members.filter(attributes__has_key=key).select_for_update()
              .only("pk", "email", "phone", "attributes").order_by("pk"))
    for member in having.iterator(chunk_size=2000):
        stored = member.attributes.get(key)
        try:
            value = clean_value(new, _as_input(old.type, new.type, stored))
        except FieldError as error:
            result.block(member, stored, error.message)
            continue
        if new.unique and value is not None:
            marker = json.dumps(value, sort_keys=True)
            first = seen.setdefault(marker, member.pk)
            if first != member.pk:
                result.block(member, stored, _("Member #%(id)s has the same value.") % {"id": first})
                continue
        if _differs(stored, value):
            if value is None:
                member.attributes.pop(key, None)
            else:
                member.attributes[key] = value
            pending.append(member)
            result.converted += 1
        if result.ok and len(pending) >= _CHUNK:
            Member.objects.bulk_update(pending, ["attributes"])
            pending = []
        elif not result.ok:
            pending = []  # nothing more will be written; the transaction will roll back
    if result.ok and pending:
        Member.objects.bulk_update(pending, ["attributes"])


def _differs(stored, value) -> bool:
    # 1 == True and 1 == 1.0 in Python, but they are different JSON values.
    return json.dumps(stored, sort_keys=True) != json.dumps(value, sort_keys=True)


def _as_input(old_type: str, new_type: str, stored):
    """Turn a value stored under ``old_type`` into raw input that ``clean_value`` reads for
    ``new_type``. Only what clean_value cannot read on its own is translated here."""
    if old_type == new_type or stored is None:
        return stored
    if isinstance(stored, bool):
        if new_type == T.NUMBER:
            return int(stored)
        return "true" if stored else "false"
    if isinstance(stored, list):
        return stored if new_type == T.MULTI_CHOICE else (
            stored[0] if len(stored) == 1 else ";".join(str(v) for v in stored))
    if old_type == T.DATETIME:
        moment = parse_datetime(str(stored))
        if moment is not None:
            local = timezone.localtime(moment)
            if new_type == T.DATE:
                return local.date().isoformat()
            return local.isoformat(sep=" ", timespec="seconds")
    if old_type == T.DATE and new_type == T.DATETIME:
        try:
            return dt.datetime.combine(dt.date.fromisoformat(str(stored)), dt.time())
        except ValueError:
            return stored
    return stored
