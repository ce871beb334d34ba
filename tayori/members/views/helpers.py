"""Shared by the member pages: member values as the viewer may see them, and recognising a
search that would look a person up by a masked field."""

import re
import unicodedata

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from tayori.accounts.access import can
from tayori.members.masking import mask_email, mask_phone, mask_value
from tayori.members.models import Attribute

PAGE_SIZE = 50
_PHONE_LIKE = re.compile(r"\+?[\d\s\-‐－ー()（）]*\d{4,}[\d\s\-‐－ー()（）]*")


def can_view_pii(request) -> bool:
    return can(request, "members.view_pii")


def format_value(attribute: Attribute, value) -> str:
    """One stored attribute value as text for a table or a detail page."""
    if value is None or value == "" or value == []:
        return ""
    kind = attribute.type
    if kind == Attribute.Type.BOOLEAN and isinstance(value, bool):
        return _("Yes") if value else _("No")
    if kind == Attribute.Type.MULTI_CHOICE and isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if kind == Attribute.Type.DATETIME:
        moment = parse_datetime(str(value))
        if moment is not None:
            return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")
    return str(value)


def shown_value(attribute: Attribute, value, pii_visible: bool) -> str:
    if attribute.pii and not pii_visible:
        return mask_value(value) or ""
    return format_value(attribute, value)


def shown_email(email: str, pii_visible: bool) -> str:
    return email if pii_visible else mask_email(email)


def shown_phone(phone: str, pii_visible: bool) -> str:
    return phone if pii_visible else mask_phone(phone)


def member_rows(members, attributes, pii_visible: bool) -> list[dict]:
    """Rows for a member table: contact fields and attribute values, masked for the viewer."""
    return [{
        "member": member,
        "email": shown_email(member.email, pii_visible),
        "phone": shown_phone(member.phone, pii_visible),
        "values": [shown_value(a, (member.attributes or {}).get(a.key), pii_visible)
                   for a in attributes],
    } for member in members]


def looks_like_contact(query: str) -> bool:
    """Whether a free-text query is an email address or a phone number (or part of one), which
    a viewer without the right to see them may not search by."""
    text = unicodedata.normalize("NFKC", query or "").strip()
    return "@" in text or bool(_PHONE_LIKE.fullmatch(text))


def target_of(obj) -> str:
    """The audit target of a member-side object: ``member:12``, ``list:3``, ``attribute:7``…"""
    kind = {"Member": "member", "MemberList": "list", "Attribute": "attribute",
            "Suppression": "suppression"}[type(obj).__name__]
    return f"{kind}:{obj.pk}"
