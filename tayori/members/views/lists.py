"""Pages: static member lists — counts, create, rename, delete, and a list's members (add them by
pasting email addresses, remove them)."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count
from django.db.models.functions import Lower
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import can, requires
from tayori.members import values
from tayori.members.forms import MemberListForm, PasteEmailsForm
from tayori.members.models import ListMembership, Member, MemberList
from tayori.members.views.helpers import (
    PAGE_SIZE,
    can_view_pii,
    shown_email,
    shown_phone,
    target_of,
)

_LOOKUP_CHUNK = 500


@requires("members.view")
def index(request):
    lists = (MemberList.objects.filter(workspace=request.workspace)
             .annotate(member_count=Count("listmembership")).order_by("name"))
    page = Paginator(lists, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "members/lists.html", {
        "page_obj": page, "can_edit": can(request, "members.edit"),
        "form": MemberListForm(workspace=request.workspace),
    })


@requires("members.edit")
def create(request):
    form = MemberListForm(request.POST or None, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        member_list = form.save(commit=False)
        member_list.workspace = request.workspace
        member_list.save()
        audit.record("list.created", request=request, target=target_of(member_list),
                     name=member_list.name)
        messages.success(request, _("List created."))
        return redirect("members:list-detail", pk=member_list.pk)
    return render(request, "members/list_form.html", {"form": form, "member_list": None})


@requires("members.view")
def detail(request, pk):
    member_list = get_object_or_404(MemberList, pk=pk, workspace=request.workspace)
    return _render_detail(request, member_list, PasteEmailsForm())


def _render_detail(request, member_list, paste_form, report=None, status=200):
    pii = can_view_pii(request)
    memberships = (ListMembership.objects.filter(member_list=member_list)
                   .select_related("member").order_by("-added_at", "-id"))
    page = Paginator(memberships, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [{"membership": m, "member": m.member, "email": shown_email(m.member.email, pii),
             "phone": shown_phone(m.member.phone, pii)} for m in page.object_list]
    return render(request, "members/list_detail.html", {
        "member_list": member_list, "page_obj": page, "rows": rows, "pii_visible": pii,
        "can_edit": can(request, "members.edit"), "paste_form": paste_form, "report": report,
    }, status=status)


@requires("members.edit")
def edit(request, pk):
    member_list = get_object_or_404(MemberList, pk=pk, workspace=request.workspace)
    old_name = member_list.name
    form = MemberListForm(request.POST or None, instance=member_list,
                          workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        form.save()
        audit.record("list.updated", request=request, target=target_of(member_list),
                     name=member_list.name, old_name=old_name)
        messages.success(request, _("List saved."))
        return redirect("members:list-detail", pk=member_list.pk)
    return render(request, "members/list_form.html", {"form": form, "member_list": member_list})


@requires("members.edit")
def delete(request, pk):
    member_list = get_object_or_404(MemberList, pk=pk, workspace=request.workspace)
    count = ListMembership.objects.filter(member_list=member_list).count()
    if request.method == "POST":
        target, name = target_of(member_list), member_list.name
        member_list.delete()
        audit.record("list.deleted", request=request, target=target, name=name, members=count)
        messages.success(request, _("List “%(name)s” deleted.") % {"name": name})
        return redirect("members:lists")
    return render(request, "members/list_delete.html", {"member_list": member_list,
                                                         "count": count})


@requires("members.edit")
@require_POST
def add_members(request, pk):
    """Add the members whose addresses were pasted; report the ones not found or not valid.

    Telling which addresses are members is a lookup by email, so it is refused to roles that
    may not see email addresses.
    """
    member_list = get_object_or_404(MemberList, pk=pk, workspace=request.workspace)
    form = PasteEmailsForm(request.POST)
    if not can_view_pii(request):
        form.is_valid()
        form.add_error("emails", _("Your role may not see email addresses, so it cannot look "
                                   "members up by them."))
        return _render_detail(request, member_list, form, status=403)
    if not form.is_valid():
        return _render_detail(request, member_list, form, status=400)
    invalid, wanted = [], {}
    for line in form.cleaned_data["emails"]:
        try:
            wanted[values.normalize_email(line)] = line
        except values.FieldError:
            invalid.append(line)
    found = _members_by_email(request.workspace, list(wanted))
    not_found = [wanted[email] for email in wanted if email not in found]
    already = set(ListMembership.objects.filter(member_list=member_list,
                                                member_id__in=found.values())
                  .values_list("member_id", flat=True))
    new_ids = sorted({pk for pk in found.values() if pk not in already})
    ListMembership.objects.bulk_create(
        [ListMembership(member_list=member_list, member_id=pk) for pk in new_ids],
        ignore_conflicts=True, batch_size=1000)
    if new_ids:
        audit.record("list.members_added", request=request, target=target_of(member_list),
                     added=len(new_ids), not_found=len(not_found), invalid=len(invalid))
    report = {"added": len(new_ids), "already": len(set(found.values()) & already),
              "not_found": not_found, "invalid": invalid}
    keep = PasteEmailsForm(initial={"emails": "\n".join(not_found + invalid)})
    return _render_detail(request, member_list, keep, report=report)


def _members_by_email(workspace, emails: list[str]) -> dict[str, int]:
    """Member ids by normalized address. Normalization keeps the local part's case, so an
    address typed in other capitals is matched case-insensitively as a second pass."""
    found: dict[str, int] = {}
    members = Member.objects.filter(workspace=workspace)
    for start in range(0, len(emails), _LOOKUP_CHUNK):
        chunk = emails[start:start + _LOOKUP_CHUNK]
        found.update(members.filter(email__in=chunk).values_list("email", "pk"))
    rest = {email.lower(): email for email in emails if email not in found}
    lowered = list(rest)
    for start in range(0, len(lowered), _LOOKUP_CHUNK):
        chunk = lowered[start:start + _LOOKUP_CHUNK]
        for low, pk in (members.annotate(low=Lower("email")).filter(low__in=chunk)
                        .values_list("low", "pk")):
            found[rest[low]] = pk
    return found


@requires("members.edit")
@require_POST
def remove_member(request, pk, member_pk):
    member_list = get_object_or_404(MemberList, pk=pk, workspace=request.workspace)
    member = get_object_or_404(Member, pk=member_pk, workspace=request.workspace)
    removed, _detail = ListMembership.objects.filter(member_list=member_list,
                                                     member=member).delete()
    if removed:
        audit.record("member.list_removed", request=request, target=target_of(member),
                     list=member_list.name, list_id=member_list.pk)
        messages.success(request, _("Member removed from the list."))
    return redirect("members:list-detail", pk=member_list.pk)


urlpatterns = [
    path("lists/", index, name="lists"),
    path("lists/new/", create, name="list-create"),
    path("lists/<int:pk>/", detail, name="list-detail"),
    path("lists/<int:pk>/edit/", edit, name="list-edit"),
    path("lists/<int:pk>/delete/", delete, name="list-delete"),
    path("lists/<int:pk>/add/", add_members, name="list-add-members"),
    path("lists/<int:pk>/members/<int:member_pk>/remove/", remove_member,
         name="list-remove-member"),
]
