"""Writing members: one at a time (UI, API) and in batches (CSV import, API bulk upsert).

Batches are set-based: one query finds the existing members of a chunk, one ``bulk_create`` adds
the new ones and one ``bulk_update`` changes the rest, so a 10,000-row API call or a million-row
import costs a few statements per thousand rows, not a few per row.
"""

from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from tayori.members.models import ConsentRecord, Member, Suppression
from tayori.members.values import CleanMember, FieldError, attributes_of, clean_member

MODES = ("add", "update", "upsert", "unsubscribe", "suppress")


@dataclass
class ItemResult:
    """What happened to one input item; ``index`` is its position in the batch."""

    index: int
    status: str  # created | updated | unchanged | unsubscribed | suppressed | error
    member_id: int | None = None
    errors: list[FieldError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != "error"


def _check_unique(attributes, workspace, cleaned: CleanMember, member_id, errors, seen):
    """Unique attributes must not repeat across members (in the database or earlier in the batch)."""
    for key, attribute in attributes.items():
        if not attribute.unique or key not in cleaned.attributes:
            continue
        value = cleaned.attributes[key]
        owner = seen.get((key, _hashable(value)))
        if owner is not None and owner != member_id:
            errors.append(FieldError(key, _("Another member already has this value.")))
            continue
        clash = (Member.objects.filter(workspace=workspace, **{f"attributes__{key}": value})
                 .exclude(pk=member_id).exists()) if owner is None else False
        if clash:
            errors.append(FieldError(key, _("Another member already has this value.")))
        else:
            seen[(key, _hashable(value))] = member_id or object()


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def create_member(workspace, data: dict) -> Member:
    """Create one member from raw fields; raises ``ValidationFailed`` with every error."""
    [result] = upsert_many(workspace, [data], mode="add")
    if not result.ok:
        raise ValidationFailed(result.errors)
    return Member.objects.get(pk=result.member_id)


def update_member(member: Member, data: dict) -> Member:
    """Change the given fields of one member (others keep their values)."""
    attributes = attributes_of(member.workspace)
    cleaned, errors = clean_member(attributes, data, partial=True, existing=member.attributes)
    if errors:
        raise ValidationFailed(errors)
    if "email" in data:
        member.email = cleaned.email
    if "phone" in data:
        member.phone = cleaned.phone
    if not (member.email or member.phone):
        raise ValidationFailed([FieldError("email", _("An email address or a phone number is required."))])
    if cleaned.status:
        member.status = cleaned.status
    _check_unique(attributes, member.workspace, cleaned, member.pk, errors, {})
    _check_contact_taken(member, errors)
    if errors:
        raise ValidationFailed(errors)
    member.attributes = cleaned.attributes
    member.updated_at = timezone.now()
    member.save()
    return member


def _check_contact_taken(member, errors):
    others = Member.objects.filter(workspace_id=member.workspace_id).exclude(pk=member.pk)
    if member.email and others.filter(email=member.email).exists():
        errors.append(FieldError("email", _("Another member already has this email address.")))
    if member.phone and others.filter(phone=member.phone).exists():
        errors.append(FieldError("phone", _("Another member already has this phone number.")))


class ValidationFailed(Exception):
    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def upsert_many(workspace, items: list[dict], *, mode: str = "upsert",
                consent: dict | None = None) -> list[ItemResult]:
    """Apply ``mode`` to each raw item; returns one result per item, in order.

    Items are matched to existing members by email, else by phone. A later item for the same
    member as an earlier one in the batch updates it further. Errors in one item never stop the
    others. ``consent`` (method, source, wording_version) records a consent row for every member
    created, so imports and API calls keep the evidence 特定電子メール法 asks for.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    attributes = attributes_of(workspace)
    now = timezone.now()
    results: list[ItemResult] = []

    # Pass 1: normalize contacts so existing members can be fetched in one query.
    keyed = []
    for index, data in enumerate(items):
        cleaned, errors = clean_member({}, {k: data.get(k) for k in ("email", "phone")},
                                       partial=True)
        if errors:
            # Report the item's other problems too, so one fix round is enough.
            _cleaned, errors = clean_member(attributes, data)
            results.append(ItemResult(index, "error", errors=errors))
            keyed.append(None)
            continue
        if not cleaned.email and not cleaned.phone:
            results.append(ItemResult(index, "error", errors=[FieldError(
                "email", _("An email address or a phone number is required."))]))
            keyed.append(None)
            continue
        keyed.append((cleaned.email, cleaned.phone))
        results.append(ItemResult(index, "pending"))
    emails = {k[0] for k in keyed if k and k[0]}
    phones = {k[1] for k in keyed if k and k[1]}
    existing_q = Q(email__in=emails) | Q(phone__in=phones)
    by_email, by_phone = {}, {}
    if emails or phones:
        for member in Member.objects.filter(existing_q, workspace=workspace):
            if member.email:
                by_email[member.email] = member
            if member.phone:
                by_phone[member.phone] = member

    if mode in ("unsubscribe", "suppress"):
        return _opt_out(workspace, mode, keyed, results, by_email, by_phone, now)

    to_create: dict[int, Member] = {}
    to_update: dict[int, Member] = {}
    seen_unique: dict = {}
    for index, data in enumerate(items):
        result = results[index]
        if result.status == "error":
            continue
        email, phone = keyed[index]
        member = by_email.get(email) if email else None
        member = member or (by_phone.get(phone) if phone else None)
        if member is None and mode == "update":
            result.status, result.errors = "error", [FieldError(
                "email" if email else "phone", _("No member with this address exists."))]
            continue
        if member is not None and mode == "add" and (member.pk or id(member) in to_create):
            result.status, result.errors = "error", [FieldError(
                "email" if email else "phone", _("A member with this address already exists."))]
            continue
        fields = {k: v for k, v in data.items() if k not in ("email", "phone")}
        if member is None:
            cleaned, errors = clean_member(attributes, {**fields, "email": email, "phone": phone})
        else:
            cleaned, errors = clean_member(attributes, fields, partial=True,
                                           existing=member.attributes)
        if not errors:
            _check_unique(attributes, workspace, cleaned, member.pk if member else None, errors,
                          seen_unique)
        if errors:
            result.status, result.errors = "error", errors
            continue
        if member is None:
            member = Member(workspace=workspace, email=email, phone=phone,
                            status=cleaned.status or Member.Status.ACTIVE,
                            attributes=cleaned.attributes, created_at=now, updated_at=now)
            to_create[id(member)] = member
            result.status = "created"
        else:
            changed = cleaned.attributes != member.attributes or (
                cleaned.status and cleaned.status != member.status)
            if email and not member.email:
                member.email, changed = email, True
            if phone and member.phone != phone and not by_phone.get(phone):
                member.phone, changed = phone, True
            member.attributes = cleaned.attributes
            if cleaned.status:
                member.status = cleaned.status
            if member.pk and changed:
                member.updated_at = now
                to_update[member.pk] = member
            result.status = "created" if id(member) in to_create else (
                "updated" if changed else "unchanged")
        if email:
            by_email[email] = member
        if phone:
            by_phone.setdefault(phone, member)
        result.member_id = member  # resolved to an id after saving

    with transaction.atomic():
        if to_create:
            Member.objects.bulk_create(list(to_create.values()), batch_size=1000)
            if not all(m.pk for m in to_create.values()):  # backends without RETURNING ids
                _fill_ids(workspace, to_create.values())
        if to_update:
            Member.objects.bulk_update(list(to_update.values()),
                                       ["email", "phone", "status", "attributes", "updated_at"],
                                       batch_size=1000)
        if consent and to_create:
            ConsentRecord.objects.bulk_create(
                [ConsentRecord(workspace=workspace, member=m, given_at=now,
                               method=consent.get("method", "import"),
                               source=consent.get("source", ""),
                               wording_version=consent.get("wording_version", ""))
                 for m in to_create.values()], batch_size=1000)
    for result in results:
        if isinstance(result.member_id, Member):
            result.member_id = result.member_id.pk
    return results


def _fill_ids(workspace, members):
    emails = {m.email: m for m in members if m.email}
    for pk, email in Member.objects.filter(workspace=workspace, email__in=emails).values_list(
            "pk", "email"):
        emails[email].pk = pk


def _opt_out(workspace, mode, keyed, results, by_email, by_phone, now):
    """unsubscribe: mark matched members and close their consent; suppress: add to the list."""
    for index, key in enumerate(keyed):
        if key is None:
            continue
        email, phone = key
        member = (by_email.get(email) if email else None) or (by_phone.get(phone) if phone else None)
        result = results[index]
        if mode == "unsubscribe":
            if member is None:
                result.status, result.errors = "error", [FieldError(
                    "email" if email else "phone", _("No member with this address exists."))]
                continue
            if member.status == Member.Status.ACTIVE:
                Member.objects.filter(pk=member.pk).update(
                    status=Member.Status.UNSUBSCRIBED, updated_at=now)
            ConsentRecord.objects.filter(member=member, withdrawn_at__isnull=True).update(
                withdrawn_at=now, withdrawn_method="import")
            result.status, result.member_id = "unsubscribed", member.pk
        else:
            for kind, value in (("email", email), ("phone", phone)):
                if value:
                    try:
                        with transaction.atomic():
                            Suppression.objects.get_or_create(
                                workspace=workspace, kind=kind, value=value,
                                defaults={"reason": "import", "source": "import"})
                    except IntegrityError:
                        pass  # suppressed concurrently: the outcome is the same
            result.status = "suppressed"
            result.member_id = member.pk if member else None
    return results
