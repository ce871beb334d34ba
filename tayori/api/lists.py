"""Lists: static groups of members — create, rename, delete, and add or remove members."""

import datetime as dt
from typing import Annotated

from django.db import transaction
from django.db.models import Count
from django.utils.translation import gettext as _
from ninja import Field, Path, Query, Router, Schema
from ninja.responses import Status

from tayori.accounts import audit
from tayori.api.auth import requires
from tayori.api.common import MAX_ID, InSchema, errors, get_scoped
from tayori.api.errors import conflict, invalid
from tayori.api.members import MemberOut, render_members
from tayori.api.pagination import PageParams, page_of, paginate
from tayori.members.models import ListMembership, Member, MemberList

router = Router(tags=["Lists"])

ADD_MAX = 10_000


class ListOut(Schema):
    id: int
    name: str
    description: str
    member_count: int
    created_at: dt.datetime


class ListIn(InSchema):
    name: str = Field(..., min_length=1, max_length=200, description="Unique in the workspace.")
    description: str = Field("", max_length=5000)

    model_config = {"json_schema_extra": {"examples": [
        {"name": "2024年 秋キャンペーン当選者", "description": "抽選で選ばれた会員"}]}}


class ListPatch(InSchema):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)


class MemberIds(InSchema):
    member_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        ..., min_length=1, max_length=ADD_MAX, description=f"Up to {ADD_MAX:,} member ids of this workspace.")

    model_config = {"json_schema_extra": {"examples": [{"member_ids": [101, 102, 103]}]}}


class AddedOut(Schema):
    added: int = Field(description="Members newly put on the list.")
    already: int = Field(description="Members that were on it already.")


def _lists(request):
    return (MemberList.objects.filter(workspace=request.workspace)
            .annotate(member_count=Count("listmembership")))


def _get(request, list_id: int) -> MemberList:
    return get_scoped(MemberList, request, list_id, _("List"))


def _refuse_taken_name(request, name: str, exclude: int | None = None) -> None:
    taken = MemberList.objects.filter(workspace=request.workspace, name=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise conflict(_("A list with this name already exists."), field="name")


def _out(request, list_id: int) -> MemberList:
    return _lists(request).get(pk=list_id)


@router.get("", response={200: page_of(ListOut), **errors(422)}, summary="List lists",
            **requires("members.view"))
def list_lists(request, page: Query[PageParams]):
    return paginate(_lists(request), page)


@router.post("", response={201: ListOut, **errors(409, 422)}, summary="Create a list",
             **requires("members.edit"))
def create(request, payload: ListIn):
    name = payload.name.strip()
    if not name:
        raise invalid("name", _("This field is required."))
    _refuse_taken_name(request, name)
    with transaction.atomic():
        member_list = MemberList.objects.create(workspace=request.workspace, name=name,
                                                description=payload.description)
    audit.record("list.created", request=request, target=f"list:{member_list.pk}", name=name,
                 via="api")
    return Status(201, _out(request, member_list.pk))


@router.get("/{list_id}", response={200: ListOut, **errors(404)}, summary="Get a list",
            **requires("members.view"))
def get(request, list_id: int = Path(..., ge=1, le=MAX_ID)):
    return _out(request, _get(request, list_id).pk)


@router.patch("/{list_id}", response={200: ListOut, **errors(404, 409, 422)},
              summary="Rename or describe a list", **requires("members.edit"))
def update(request, payload: ListPatch, list_id: int = Path(..., ge=1, le=MAX_ID)):
    member_list = _get(request, list_id)
    changed = {}
    if payload.name is not None:
        name = payload.name.strip()
        if not name:
            raise invalid("name", _("This field is required."))
        _refuse_taken_name(request, name, exclude=member_list.pk)
        if name != member_list.name:
            changed["name"] = [member_list.name, name]
            member_list.name = name
    if payload.description is not None and payload.description != member_list.description:
        changed["description"] = True
        member_list.description = payload.description
    if changed:
        with transaction.atomic():
            member_list.save(update_fields=["name", "description"])
        audit.record("list.updated", request=request, target=f"list:{member_list.pk}",
                     via="api", **changed)
    return _out(request, member_list.pk)


@router.delete("/{list_id}", response={204: None, **errors(404)},
               summary="Delete a list (its members stay)", **requires("members.edit"))
def delete(request, list_id: int = Path(..., ge=1, le=MAX_ID)):
    member_list = _get(request, list_id)
    target, name = f"list:{member_list.pk}", member_list.name
    count = ListMembership.objects.filter(member_list=member_list).count()
    member_list.delete()
    audit.record("list.deleted", request=request, target=target, name=name, members=count,
                 via="api")
    return Status(204, None)


@router.get("/{list_id}/members", response={200: page_of(MemberOut), **errors(404, 422)},
            summary="Members of a list", **requires("members.view"))
def list_members(request, page: Query[PageParams], list_id: int = Path(..., ge=1, le=MAX_ID)):
    member_list = _get(request, list_id)
    members = Member.objects.filter(workspace=request.workspace,
                                    listmembership__member_list=member_list)
    return paginate(members, page, lambda rows: render_members(request, rows))


@router.post("/{list_id}/members", response={200: AddedOut, **errors(404, 422)},
             summary="Put members on a list", **requires("members.edit"))
def add_members(request, payload: MemberIds, list_id: int = Path(..., ge=1, le=MAX_ID)):
    """All or nothing: if any id is not a member of this workspace, nobody is added."""
    member_list = _get(request, list_id)
    wanted = sorted(set(payload.member_ids))
    found = _members_in(request, wanted)
    missing = [pk for pk in wanted if pk not in found]
    if missing:
        shown = ", ".join(str(pk) for pk in missing[:20])
        raise invalid("member_ids", _("No such members in this workspace: %(ids)s") % {
            "ids": shown + ("…" if len(missing) > 20 else "")})
    already = _on_list(member_list, wanted)
    new = [pk for pk in wanted if pk not in already]
    with transaction.atomic():
        # ignore_conflicts: a concurrent call adding the same member is not an error.
        ListMembership.objects.bulk_create(
            [ListMembership(member_list=member_list, member_id=pk) for pk in new],
            batch_size=1000, ignore_conflicts=True)
    if new:
        audit.record("list.members_added", request=request, target=f"list:{member_list.pk}",
                     count=len(new), via="api")
    return {"added": len(new), "already": len(already)}


@router.delete("/{list_id}/members/{member_id}", response={204: None, **errors(404)},
               summary="Take a member off a list", **requires("members.edit"))
def remove_member(request, list_id: int = Path(..., ge=1, le=MAX_ID),
                  member_id: int = Path(..., ge=1, le=MAX_ID)):
    """Succeeds also when the member was not on the list."""
    member_list = _get(request, list_id)
    member = get_scoped(Member, request, member_id, _("Member"))
    removed, _detail = ListMembership.objects.filter(member_list=member_list,
                                                     member=member).delete()
    if removed:
        audit.record("member.list_removed", request=request, target=f"member:{member.pk}",
                     list=member_list.name, list_id=member_list.pk, via="api")
    return Status(204, None)


def _members_in(request, ids: list[int]) -> set[int]:
    """Which of ``ids`` are members of the key's workspace (a query per thousand ids)."""
    found: set[int] = set()
    for start in range(0, len(ids), 1000):
        found.update(Member.objects.filter(workspace=request.workspace,
                                           pk__in=ids[start:start + 1000])
                     .values_list("pk", flat=True))
    return found


def _on_list(member_list: MemberList, ids: list[int]) -> set[int]:
    already: set[int] = set()
    for start in range(0, len(ids), 1000):
        already.update(ListMembership.objects.filter(member_list=member_list,
                                                     member_id__in=ids[start:start + 1000])
                       .values_list("member_id", flat=True))
    return already
