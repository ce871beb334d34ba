"""Attributes: the workspace's member fields — read the schema, define, change and delete.

Definitions are validated by the same ``AttributeForm`` as the UI; a change of type, choices or
flags goes through ``attribute_types.save_attribute``, which converts stored values or refuses
(409) naming the members that block it.
"""

from typing import Literal

from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext as _
from ninja import Field, Path, Router, Schema
from ninja.responses import Status

from tayori.accounts import audit
from tayori.api.auth import can, requires
from tayori.api.common import InSchema, errors
from tayori.api.errors import ApiError, conflict, not_found
from tayori.members import attribute_types
from tayori.members.forms import AttributeForm
from tayori.members.masking import mask_email, mask_phone, mask_value
from tayori.members.models import Attribute, Member

router = Router(tags=["Attributes"])

AttributeType = Literal[tuple(Attribute.Type.values)]
KeyPath = Path(..., min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$",
               description="The attribute's key.")
_DEFINITION = ("label", "type", "choices", "required", "unique", "pii")
_FORM_FIELDS = {"choices_text": "choices"}


class AttributeOut(Schema):
    id: int
    key: str = Field(description="Name of the value in member `attributes`, CSV headers and "
                                 "segment conditions.")
    label: str
    type: AttributeType
    choices: list[str] = Field(description="Allowed values of `choice` and `multi_choice`.")
    required: bool
    unique: bool
    pii: bool = Field(description="Personal information: masked for keys without "
                                  "members.view_pii.")
    position: int = Field(description="Display order, smallest first.")


class AttributeIn(InSchema):
    key: str = Field(..., min_length=1, max_length=64, description=(
        "Lower-case letters, digits and single underscores, starting with a letter. Cannot be "
        "changed later."))
    label: str = Field(..., min_length=1, max_length=100)
    type: AttributeType = "text"
    choices: list[str] = Field(default_factory=list, max_length=1000,
                               description="Required for `choice` and `multi_choice`.")
    required: bool = False
    unique: bool = False
    pii: bool = False

    model_config = {"json_schema_extra": {"examples": [
        {"key": "plan", "label": "プラン", "type": "choice", "choices": ["free", "gold"]},
        {"key": "name", "label": "氏名", "type": "text", "required": True, "pii": True},
    ]}}


class AttributePatch(InSchema):
    """Only the fields sent change. Changing type, choices, or switching on required or unique
    first checks every stored value against the new definition."""

    label: str | None = Field(None, min_length=1, max_length=100)
    type: AttributeType | None = None
    choices: list[str] | None = Field(None, max_length=1000)
    required: bool | None = None
    unique: bool | None = None
    pii: bool | None = None
    position: int | None = Field(None, ge=0, le=2**31 - 1)


class AttributeList(Schema):
    items: list[AttributeOut]


def _scoped(request, key: str) -> Attribute:
    attribute = Attribute.objects.filter(workspace=request.workspace, key=key).first()
    if attribute is None:
        raise not_found(_("Attribute"))
    return attribute


def _form_data(values: dict) -> dict:
    data = {k: values[k] for k in ("key", "label", "type") if k in values}
    # Unchecked boxes are absent from form data; checked ones carry any value.
    data.update({k: "on" for k in ("required", "unique", "pii") if values.get(k)})
    data["choices_text"] = "\n".join(values.get("choices") or [])
    return data


def _check(form: AttributeForm) -> None:
    """422 listing every problem the form found, named as the API names the fields."""
    if form.is_valid():
        return
    listed = [{"field": _FORM_FIELDS.get(name, name) if name != "__all__" else None,
               "message": str(message)}
              for name, messages in form.errors.items() for message in messages]
    raise ApiError(422, "validation_error", listed[0]["message"], field=listed[0]["field"],
                   errors=listed)


def _choices_ok(choices: list[str] | None) -> None:
    for index, choice in enumerate(choices or []):
        if not isinstance(choice, str) or "\n" in choice or "\r" in choice or len(choice) > 200:
            raise ApiError(422, "validation_error",
                           _("A choice is one line of at most 200 characters."),
                           field=f"choices.{index}")


@router.get("", response={200: AttributeList, **errors()},
            summary="The attribute schema", **requires("members.view"))
def list_attributes(request):
    """Every attribute of the workspace in display order (a workspace has tens, not thousands,
    so this is one page): `{"items": [...]}`."""
    return {"items": list(Attribute.objects.filter(workspace=request.workspace))}


@router.get("/{key}", response={200: AttributeOut, **errors(404)}, summary="Get an attribute",
            **requires("members.view"))
def get(request, key: str = KeyPath):
    return _scoped(request, key)


@router.post("", response={201: AttributeOut, **errors(409, 422)},
             summary="Define an attribute", **requires("members.edit"))
def create(request, payload: AttributeIn):
    _choices_ok(payload.choices)
    if Attribute.objects.filter(workspace=request.workspace, key=payload.key).exists():
        raise conflict(_("An attribute with this key already exists."), field="key")
    attribute = Attribute(workspace=request.workspace)
    form = AttributeForm(_form_data(payload.model_dump()), instance=attribute,
                         workspace=request.workspace)
    _check(form)
    with transaction.atomic():
        last = Attribute.objects.filter(workspace=request.workspace).aggregate(
            n=Max("position"))["n"]
        attribute.position = 0 if last is None else last + 1
        form.save()
    audit.record("attribute.created", request=request, target=f"attribute:{attribute.pk}",
                 key=attribute.key, type=attribute.type, required=attribute.required,
                 unique=attribute.unique, pii=attribute.pii, via="api")
    return Status(201, attribute)


@router.patch("/{key}", response={200: AttributeOut, **errors(404, 409, 422)},
              summary="Change an attribute", **requires("members.edit"))
def update(request, payload: AttributePatch, key: str = KeyPath):
    """Answers 409 with `blockers` (the first 20 members whose stored value does not fit) and
    `blocked` (how many in all) when existing values cannot be converted; nothing changes then."""
    attribute = _scoped(request, key)
    sent = payload.model_dump(exclude_unset=True)
    _choices_ok(sent.get("choices"))
    before = {name: getattr(attribute, name) for name in _DEFINITION}
    merged = {**before, "key": attribute.key,
              **{k: v for k, v in sent.items() if v is not None and k != "position"}}
    form = AttributeForm(_form_data(merged), instance=attribute, workspace=request.workspace)
    _check(form)
    if sent.get("position") is not None:
        attribute.position = sent["position"]
    result = attribute_types.save_attribute(form.instance)
    if not result.ok:
        audit.record("attribute.change_refused", request=request,
                     target=f"attribute:{attribute.pk}", key=attribute.key,
                     blocked=result.blocked, via="api")
        raise conflict(
            _("%(count)s members have values that do not fit the new definition; nothing was "
              "changed.") % {"count": result.blocked},
            blocked=result.blocked, blockers=_blockers(request, attribute, result))
    changes = {name: [before[name], getattr(attribute, name)] for name in _DEFINITION
               if before[name] != getattr(attribute, name)}
    if changes:
        audit.record("attribute.updated", request=request, target=f"attribute:{attribute.pk}",
                     key=attribute.key, changes=changes, converted=result.converted, via="api")
    return attribute


def _blockers(request, attribute: Attribute, result) -> list[dict]:
    pii = can(request, "members.view_pii")
    hide = attribute.pii and not pii
    return [{"member_id": b.member_id,
             "email": b.email if pii else mask_email(b.email),
             "phone": b.phone if pii else mask_phone(b.phone),
             "value": mask_value(b.value) if hide else b.value,
             "reason": _("This value does not fit the new definition.") if hide else b.reason}
            for b in result.blockers]


@router.delete("/{key}", response={204: None, **errors(404)},
               summary="Delete an attribute and its values", **requires("members.edit"))
def delete(request, key: str = KeyPath):
    """Removes the definition and the value it held from every member."""
    attribute = _scoped(request, key)
    target = f"attribute:{attribute.pk}"
    holders = Member.objects.filter(workspace=request.workspace, attributes__has_key=key)
    with transaction.atomic():
        cleared = _clear_values(holders, key)
        attribute.delete()
    audit.record("attribute.deleted", request=request, target=target, key=key,
                 members_cleared=cleared, via="api")
    return Status(204, None)


def _clear_values(holders, key: str) -> int:
    """Remove ``key`` from every member holding it, a thousand rows per statement. Left behind,
    a PII value would no longer be masked once its definition is gone."""
    cleared, chunk = 0, []
    for member in holders.select_for_update().only("pk", "attributes").iterator(chunk_size=2000):
        member.attributes.pop(key, None)
        chunk.append(member)
        if len(chunk) >= 1000:
            Member.objects.bulk_update(chunk, ["attributes"])
            cleared, chunk = cleared + len(chunk), []
    if chunk:
        Member.objects.bulk_update(chunk, ["attributes"])
    return cleared + len(chunk)
