"""PII masking for operators and API keys without ``members.view_pii``.

``ta***@example.jp``, ``+81*******78`` and ``***`` for PII attributes: enough to recognise a record,
not enough to contact the person.
"""

import re

# An address as relays quote it in replies and diagnostics ("<taro@example.jp>: User unknown"),
# quoted local parts, international domains and address literals included.
_ATOMS = r"[^\s<>()\[\]\"',;:]"
_ADDRESS = re.compile(rf'(?:"[^"\r\n]*"|{_ATOMS}+)@(?:\[[^\]\s]+\]|{_ATOMS}*[^\s<>()\[\]"\',;:.])')


def mask_email(email: str) -> str:
    if not email:
        return ""
    local, _at, domain = email.rpartition("@")
    # Never reveal a whole local part: short ones keep one character, others two.
    shown = 1 if len(local) <= 3 else 2
    return f"{local[:shown]}***@{domain}"


def mask_emails_in(text: str) -> str:
    """Text (an SMTP reply, a bounce's diagnostic) with every address in it masked."""
    return _ADDRESS.sub(lambda m: mask_email(m.group(0)), text)


def mask_phone(phone: str) -> str:
    if not phone:
        return ""
    return phone[:3] + "*" * max(len(phone) - 5, 3) + phone[-2:]


def mask_value(value):
    return None if value in (None, "", []) else "***"


def masked_member_fields(member, attributes, can_view_pii: bool) -> dict:
    """The member's email, phone and attribute values as the viewer may see them."""
    values = dict(member.attributes or {})
    if can_view_pii:
        return {"email": member.email, "phone": member.phone, "attributes": values}
    for attribute in attributes:
        if attribute.pii and attribute.key in values:
            values[attribute.key] = mask_value(values[attribute.key])
    return {"email": mask_email(member.email), "phone": mask_phone(member.phone),
            "attributes": values}


def pii_fields(attributes) -> set[str]:
    """Names a masked viewer may not search or filter by."""
    return {"email", "phone"} | {a.key for a in attributes if a.pii}
