"""Writing members: one at a time (UI, API) and in batches (CSV import, API bulk upsert).

Batches are set-based: two indexed queries find the existing members of a chunk, one statement
adds the new ones, one changes the rest and one records their consent, so a 10,000-row API call or
a million-row import costs a few statements per thousand rows, not a few per row. On PostgreSQL
those statements take arrays (``unnest``); elsewhere they use the ORM's bulk operations.
"""

import json
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tayori.members.models import Attribute, ConsentRecord, Member, Suppression
from tayori.members.values import (
    CleanMember,
    FieldError,
    attributes_of,
    clean_member,
    clean_value,
    normalize_email,
    normalize_phone,
)

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


def _check_unique(attributes, workspace, cleaned: CleanMember, member_id, errors, seen,
                  owners: dict | None = None):
    """Unique attributes must not repeat across members (in the database or earlier in the batch).

    ``owners`` maps (key, value) to the ids of members holding it, prefetched for a whole batch;
    without it the database is asked per value (single-member writes).
    """
    for key, attribute in attributes.items():
        if not attribute.unique or key not in cleaned.attributes:
            continue
        value = cleaned.attributes[key]
        owner = seen.get((key, _hashable(value)))
        if owner is not None and owner != member_id:
            errors.append(FieldError(key, _("Another member already has this value.")))
            continue
        if owner is not None:
            clash = False
        elif owners is not None:
            clash = bool(owners.get((key, _hashable(value)), set()) - {member_id})
        else:
            clash = (Member.objects.filter(workspace=workspace, **{f"attributes__{key}": value})
                     .exclude(pk=member_id).exists())
        if clash:
            errors.append(FieldError(key, _("Another member already has this value.")))
        else:
            seen[(key, _hashable(value))] = member_id or object()


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


# A member who opted out or complained is made active again only by a new consent, never by a
# batch (a CSV re-import or an API sync of an old customer list) — 特定電子メール法.
OPTED_OUT = (Member.Status.UNSUBSCRIBED, Member.Status.COMPLAINED)


def _check_opt_out_kept(current: str, wanted: str | None, errors: list[FieldError]):
    if wanted == Member.Status.ACTIVE and current in OPTED_OUT:
        errors.append(FieldError("status", _(
            "This member opted out; record a new consent on the member's page to make them "
            "active again.")))


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


@transaction.atomic
def delete_member(member: Member) -> None:
    """Delete a member but keep its consent records, stamped with the address each was for."""
    for channel, address in ((ConsentRecord.Channel.EMAIL, member.email),
                             (ConsentRecord.Channel.SMS, member.phone)):
        ConsentRecord.objects.filter(member=member, channel=channel).update(address=address)
    member.delete()


@transaction.atomic
def lift_suppression(suppression: Suppression) -> int:
    """Remove a suppression. One that a bounce put there also marked the address's member
    bounced: lifting it makes that member reachable again. Returns the members made active."""
    suppression.delete()
    if suppression.kind != Suppression.Kind.EMAIL or not suppression.reason.startswith("bounce:"):
        return 0
    return Member.objects.filter(workspace_id=suppression.workspace_id, email=suppression.value,
                                 status=Member.Status.BOUNCED).update(
        status=Member.Status.ACTIVE, updated_at=timezone.now())


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
                consent: dict | None = None, memo: dict | None = None) -> list[ItemResult]:
    """Apply ``mode`` to each raw item; returns one result per item, in order.

    Items are matched to existing members by email, else by phone. A later item for the same
    member as an earlier one in the batch updates it further. Errors in one item never stop the
    others. ``consent`` (method, source, wording_version) records a consent row for every member
    created, so imports and API calls keep the evidence 特定電子メール法 asks for. ``memo`` (a
    dict the caller keeps) carries cleaned attribute values from one call to the next, so the
    chunks of an import clean each repeated date, number or choice once.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    attributes = attributes_of(workspace)
    slots = _memo_slots(attributes, {} if memo is None else memo)
    now = timezone.now()
    results: list[ItemResult] = []

    # Pass 1: normalize contacts (once: phone parsing is the costliest check) so that existing
    # members can be fetched in one query.
    keyed: list[tuple[str, str] | None] = []
    for index, data in enumerate(items):
        try:
            email = normalize_email(data.get("email") or "")
            phone = normalize_phone(data.get("phone") or "")
        except FieldError:
            # Report the item's other problems too, so one fix round is enough.
            _cleaned, errors = clean_member(attributes, data)
            results.append(ItemResult(index, "error", errors=errors))
            keyed.append(None)
            continue
        if not email and not phone:
            results.append(ItemResult(index, "error", errors=[FieldError(
                "email", _("An email address or a phone number is required."))]))
            keyed.append(None)
            continue
        keyed.append((email, phone))
        results.append(ItemResult(index, "pending"))
    by_email, by_phone = _existing(workspace, keyed)

    if mode in ("unsubscribe", "suppress"):
        return _opt_out(workspace, mode, keyed, results, by_email, by_phone, now)

    owners = _unique_owners(workspace, attributes, items, keyed)
    created: dict[int, _Row] = {}
    changed_rows: dict[int, _Row] = {}
    seen_unique: dict = {}
    for index, data in enumerate(items):
        result = results[index]
        if result.status == "error":
            continue
        email, phone = keyed[index]
        row = by_email.get(email) if email else None
        row = row or (by_phone.get(phone) if phone else None)
        if row is None and mode == "update":
            result.status, result.errors = "error", [FieldError(
                "email" if email else "phone", _("No member with this address exists."))]
            continue
        if row is not None and mode == "add":
            result.status, result.errors = "error", [FieldError(
                "email" if email else "phone", _("A member with this address already exists."))]
            continue
        fields = {k: v for k, v in data.items() if k not in ("email", "phone")}
        if row is None:
            # The contact is already normalized; handing over one of them (the cheap one
            # first) satisfies "email or phone required" without parsing the phone again.
            contact = {"email": email} if email else {"phone": phone}
            cleaned, errors = clean_member(attributes, {**fields, **contact}, memo=slots)
        else:
            cleaned, errors = clean_member(attributes, fields, partial=True,
                                           existing=row.attributes, memo=slots)
        if not errors and row is not None:
            _check_opt_out_kept(row.status, cleaned.status, errors)
        if not errors:
            _check_unique(attributes, workspace, cleaned, row.identity if row else None, errors,
                          seen_unique, owners)
        if errors:
            result.status, result.errors = "error", errors
            continue
        if row is None:
            row = _Row(None, email, phone, cleaned.status or Member.Status.ACTIVE,
                       cleaned.attributes, created=True)
            created[id(row)] = row
            result.status = "created"
        else:
            changed = cleaned.attributes != row.attributes or bool(
                cleaned.status and cleaned.status != row.status)
            if email and not row.email:
                row.email, changed = email, True
            if phone and row.phone != phone and not by_phone.get(phone):
                row.phone, changed = phone, True
            row.attributes = cleaned.attributes
            if cleaned.status:
                row.status = cleaned.status
            if row.pk and changed:
                changed_rows[row.pk] = row
            result.status = "created" if row.created else ("updated" if changed else "unchanged")
        if email:
            by_email[email] = row
        if phone:
            by_phone.setdefault(phone, row)
        result.member_id = row  # resolved to an id after saving

    with transaction.atomic():
        if created:
            _insert(workspace, list(created.values()), now)
        if changed_rows:
            _update(workspace, list(changed_rows.values()), now)
        if consent and created:
            _record_consent(workspace, [row.pk for row in created.values()], consent, now)
    for result in results:
        if isinstance(result.member_id, _Row):
            result.member_id = result.member_id.pk
    return results


def _memo_slots(attributes: dict, memo: dict) -> dict[str, dict]:
    """One memo slot per attribute whose values repeat, keyed by its definition so that a
    definition changed between two calls never reuses the old verdicts. Text is cheap to clean
    and rarely repeats: it gets none."""
    slots = {}
    for key, attribute in attributes.items():
        if attribute.type != Attribute.Type.TEXT:
            signature = (attribute.pk, attribute.type, attribute.required,
                         tuple(attribute.choices or ()))
            slots[key] = memo.setdefault(signature, {})
    return slots


class _Row:
    """A member as a batch sees it: loaded with only the columns a batch reads and writes."""

    __slots__ = ("pk", "email", "phone", "status", "attributes", "created")

    def __init__(self, pk, email, phone, status, attributes, created=False):
        self.pk, self.email, self.phone, self.status = pk, email, phone, status
        self.attributes, self.created = attributes or {}, created

    @property
    def identity(self):
        return self.pk or id(self)


def _existing(workspace, keyed) -> tuple[dict[str, _Row], dict[str, _Row]]:
    """The batch's existing members by email and by phone, in one or two indexed queries."""
    emails = sorted({k[0] for k in keyed if k and k[0]})
    phones = sorted({k[1] for k in keyed if k and k[1]})
    rows: dict[int, _Row] = {}
    if connection.vendor == "postgresql":
        with _pg_cursor() as cursor:
            cursor.execute(_EXISTING_MEMBERS_PG.format(member=_table(Member)),
                           [workspace.pk, emails, workspace.pk, phones])
            for pk, email, phone, status, attrs in cursor:
                rows[pk] = _Row(pk, email, phone, status, _loads(attrs))
    else:
        members = Member.objects.filter(workspace=workspace)
        fields = ("pk", "email", "phone", "status", "attributes")
        for column, values in (("email", emails), ("phone", phones)):
            for start in range(0, len(values), _LOOKUP_BATCH):
                found = members.filter(**{f"{column}__in": values[start:start + _LOOKUP_BATCH]}
                                       ).values_list(*fields)
                for pk, email, phone, status, attrs in found:
                    rows.setdefault(pk, _Row(pk, email, phone, status, attrs))
    by_email, by_phone = {}, {}
    for row in rows.values():
        if row.email:
            by_email[row.email] = row
        if row.phone:
            by_phone[row.phone] = row
    return by_email, by_phone


def _loads(value):
    # Django reads jsonb as text and decodes it in the field; a plain cursor gets that text.
    return json.loads(value) if isinstance(value, str | bytes) else (value or {})


def _pg_cursor():
    """A psycopg cursor binding parameters on the server, on Django's connection (and so in its
    transaction): arrays passed as binary (%b) cost ~1 µs an element instead of ~30 µs as text."""
    import psycopg

    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


_LOOKUP_BATCH = 5000


def _unique_owners(workspace, attributes, items, keyed) -> dict:
    """For unique attributes: which members already hold the batch's values, in one query each."""
    owners: dict = {}
    for key, attribute in attributes.items():
        if not attribute.unique:
            continue
        values = set()
        for data, contact in zip(items, keyed, strict=True):
            if contact is None or data.get(key) in (None, ""):
                continue
            try:
                value = clean_value(attribute, data[key])
            except FieldError:
                continue  # reported when the item is cleaned
            if value is not None and not isinstance(value, list):
                values.add(value)
        if not values:
            continue
        found = (Member.objects.filter(workspace=workspace)
                 .filter(**{f"attributes__{key}__in": sorted(values, key=str)})
                 .values_list("pk", f"attributes__{key}"))
        for pk, value in found:
            owners.setdefault((key, _hashable(value)), set()).add(pk)
    return owners


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


# -- name: existing-members
# ``email <> ''`` repeats the partial unique indexes' predicate so that PostgreSQL uses them.
_EXISTING_MEMBERS_PG = """
SELECT id, email, phone, status, attributes FROM {member}
WHERE workspace_id = %b AND email = ANY(%b::text[]) AND email <> ''
UNION
SELECT id, email, phone, status, attributes FROM {member}
WHERE workspace_id = %b AND phone = ANY(%b::text[]) AND phone <> ''
"""

# -- name: insert-members
# Arrays in, ids out: one statement per chunk. Django's bulk_create spends ~25 µs a row preparing
# parameters; psycopg sends these arrays in one go and PostgreSQL unpacks them with unnest().
# Ids are matched back by email/phone (unique per workspace), not by the order of RETURNING.
_INSERT_MEMBERS_PG = """
INSERT INTO {member} (workspace_id, email, phone, status, attributes, created_at, updated_at)
SELECT %b, t.email, t.phone, t.status, t.attributes::jsonb, %b, %b
FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[]) AS t(email, phone, status, attributes)
RETURNING id, email, phone
"""

# -- name: update-members
_UPDATE_MEMBERS_PG = """
UPDATE {member} AS m
SET email = t.email, phone = t.phone, status = t.status, attributes = t.attributes::jsonb,
    updated_at = %b
FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[])
     AS t(id, email, phone, status, attributes)
WHERE m.id = t.id AND m.workspace_id = %b
"""
_UPDATE_MEMBERS = """
UPDATE {member} SET email = %s, phone = %s, status = %s, attributes = %s, updated_at = %s
WHERE id = %s AND workspace_id = %s
"""

# -- name: insert-consents
_INSERT_CONSENTS_PG = """
INSERT INTO {consent} (workspace_id, member_id, channel, given_at, method, source,
                       wording_version, user_agent, withdrawn_method, address)
SELECT %b, t.member_id, %b, %b, %b, %b, %b, '', '', '' FROM unnest(%b::bigint[]) AS t(member_id)
"""


def _dumps(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _insert(workspace, rows: list[_Row], now) -> None:
    if connection.vendor != "postgresql":
        members = [Member(workspace=workspace, email=r.email, phone=r.phone, status=r.status,
                          attributes=r.attributes, created_at=now, updated_at=now) for r in rows]
        Member.objects.bulk_create(members, batch_size=1000)
        if not all(m.pk for m in members):  # backends without RETURNING ids
            _fill_ids(workspace, members)
        for row, member in zip(rows, members, strict=True):
            row.pk = member.pk
        return
    with _pg_cursor() as cursor:
        cursor.execute(_INSERT_MEMBERS_PG.format(member=_table(Member)), [
            workspace.pk, now, now, [r.email for r in rows], [r.phone for r in rows],
            [r.status for r in rows], [_dumps(r.attributes) for r in rows]])
        ids = cursor.fetchall()
    by_email = {r.email: r for r in rows if r.email}
    by_phone = {r.phone: r for r in rows if not r.email}
    for pk, email, phone in ids:
        (by_email[email] if email else by_phone[phone]).pk = pk


def _update(workspace, rows: list[_Row], now) -> None:
    if connection.vendor == "postgresql":
        with _pg_cursor() as cursor:
            cursor.execute(_UPDATE_MEMBERS_PG.format(member=_table(Member)), [
                now, [r.pk for r in rows], [r.email for r in rows], [r.phone for r in rows],
                [r.status for r in rows], [_dumps(r.attributes) for r in rows], workspace.pk])
    else:
        with connection.cursor() as cursor:
            cursor.executemany(_UPDATE_MEMBERS.format(member=_table(Member)), [
                (r.email, r.phone, r.status, json.dumps(r.attributes), now, r.pk, workspace.pk)
                for r in rows])


def _record_consent(workspace, member_ids: list[int], consent: dict, now) -> None:
    method = consent.get("method", "import")
    source = consent.get("source", "")
    wording = consent.get("wording_version", "")
    if connection.vendor == "postgresql":
        with _pg_cursor() as cursor:
            cursor.execute(_INSERT_CONSENTS_PG.format(consent=_table(ConsentRecord)), [
                workspace.pk, ConsentRecord.Channel.EMAIL, now, method, source, wording,
                member_ids])
        return
    ConsentRecord.objects.bulk_create(
        [ConsentRecord(workspace=workspace, member_id=pk, given_at=now, method=method,
                       source=source, wording_version=wording) for pk in member_ids],
        batch_size=1000)


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
                member.status = Member.Status.UNSUBSCRIBED
            ConsentRecord.objects.filter(member_id=member.pk, withdrawn_at__isnull=True).update(
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
