"""Pages: the member table (search, filters), a member's detail (fields, lists, consent,
history), and creating, editing and deleting members."""

import json
import re
import unicodedata

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import can, requires
from tayori.accounts.models import AuditEvent
from tayori.members import values
from tayori.members.forms import (
    SEARCHABLE_TYPES,
    AddToListForm,
    ConsentForm,
    MemberForm,
    MemberSearchForm,
    WithdrawConsentForm,
)
from tayori.members.models import Attribute, ConsentRecord, ListMembership, Member, MemberList
from tayori.members.services import ValidationFailed, create_member, delete_member, update_member
from tayori.members.views.helpers import (
    PAGE_SIZE,
    can_view_pii,
    looks_like_contact,
    member_rows,
    shown_email,
    shown_phone,
    shown_value,
    target_of,
)

HISTORY_SHOWN = 50
HISTORY_LABELS = {
    "member.created": gettext_lazy("Created"),
    "member.updated": gettext_lazy("Updated"),
    "member.viewed_pii": gettext_lazy("Personal information viewed"),
    "member.list_added": gettext_lazy("Added to a list"),
    "member.list_removed": gettext_lazy("Removed from a list"),
    "consent.recorded": gettext_lazy("Consent recorded"),
    "consent.withdrawn": gettext_lazy("Consent withdrawn"),
}


def _attributes(request) -> list[Attribute]:
    return list(Attribute.objects.filter(workspace=request.workspace))


@requires("members.view")
def index(request):
    attributes = _attributes(request)
    pii = can_view_pii(request)
    form = MemberSearchForm(request.GET or None, workspace=request.workspace,
                            attributes=attributes, pii_visible=pii)
    members, refusal = _search(request, form, attributes, pii)
    page = Paginator(members.order_by("-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "members/index.html", {
        "form": form, "attributes": attributes, "page_obj": page, "refusal": refusal,
        "rows": member_rows(page.object_list, attributes, pii), "pii_visible": pii,
        "can_edit": can(request, "members.edit"),
    })


def _search(request, form, attributes, pii: bool):
    """The members the filters select, or none and the reason the search is refused."""
    members = Member.objects.filter(workspace=request.workspace)
    if not form.is_bound:
        return members, None
    form.is_valid()  # cleaned_data keeps the valid filters even when another one is not
    data = form.cleaned_data
    if data.get("status"):
        members = members.filter(status=data["status"])
    if data.get("list"):
        members = members.filter(listmembership__member_list=data["list"])
    query = (data.get("q") or "").strip()
    field = data.get("field") or ""
    if not query:
        return members, None
    masked = set() if pii else {"email", "phone"} | {a.key for a in attributes if a.pii}
    searchable = {a.key: a for a in attributes if a.type in SEARCHABLE_TYPES}
    if field in masked:
        return members.none(), _("Your role may not see this field, so it cannot search by it.")
    if field == "email":
        condition = Q(email__icontains=query)
    elif field == "phone":
        condition = _phone_condition(query)
    elif field in searchable:
        condition = Q(**{f"attributes__{field}__icontains": query})
    elif field:
        return members.none(), _("There is no such field to search in.")
    else:
        if not pii and looks_like_contact(query):
            return members.none(), _(
                "Your role may not see email addresses or phone numbers, so it cannot search "
                "by them. To search another field for digits, choose that field.")
        condition = Q()
        if pii:
            condition |= Q(email__icontains=query) | _phone_condition(query)
        for key, attribute in searchable.items():
            if pii or not attribute.pii:
                condition |= Q(**{f"attributes__{key}__icontains": query})
    return (members.filter(condition) if condition else members.none()), None


def _phone_condition(query: str) -> Q:
    """A whole number matches exactly (in any format Japanese users type it); a few digits
    match anywhere in the stored E.164 number."""
    try:
        return Q(phone=values.normalize_phone(query))
    except values.FieldError:
        pass
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", query))
    if len(digits) < 3:
        return Q(pk__in=[])
    return Q(phone__contains=digits.removeprefix("0"))


@requires("members.view")
def detail(request, pk):
    member = get_object_or_404(Member, pk=pk, workspace=request.workspace)
    if can_view_pii(request):
        audit.record("member.viewed_pii", request=request, target=target_of(member))
    return _render_detail(request, member)


def _render_detail(request, member, *, list_form=None, consent_form=None, status=200):
    workspace = request.workspace
    attributes = _attributes(request)
    pii = can_view_pii(request)
    stored = member.attributes or {}
    memberships = (ListMembership.objects.filter(member=member, member_list__workspace=workspace)
                   .select_related("member_list").order_by("member_list__name"))
    labels = {a.key: a.label for a in attributes} | {
        "email": _("Email"), "phone": _("Phone"), "status": _("Status")}
    history = list(AuditEvent.objects.filter(workspace=workspace, target=target_of(member))
                   [:HISTORY_SHOWN])
    for event in history:
        event.label = HISTORY_LABELS.get(event.action, event.action)
        event.summary = _summary(event.detail or {}, labels)
    consents = list(ConsentRecord.objects.filter(workspace=workspace, member=member))
    return render(request, "members/detail.html", {
        "member": member, "pii_visible": pii,
        "email": shown_email(member.email, pii), "phone": shown_phone(member.phone, pii),
        "fields": [(a, shown_value(a, stored.get(a.key), pii)) for a in attributes],
        "memberships": memberships, "consents": consents, "history": history,
        "can_edit": can(request, "members.edit"),
        "list_form": list_form or AddToListForm(
            workspace=workspace, exclude=[m.member_list_id for m in memberships]),
        "consent_form": consent_form or ConsentForm(),
        "withdraw_form": WithdrawConsentForm(),
    }, status=status)


def _summary(detail: dict, labels: dict) -> str:
    if detail.get("fields"):
        return ", ".join(str(labels.get(name, name)) for name in detail["fields"])
    if detail.get("list"):
        return str(detail["list"])
    if detail.get("channel"):
        return str(detail["channel"])
    return ""


@requires("members.edit")
def create(request):
    attributes = _attributes(request)
    form = MemberForm(request.POST or None, attributes=attributes,
                      initial={"status": Member.Status.ACTIVE})
    if request.method == "POST" and form.is_valid():
        try:
            member = create_member(request.workspace, form.member_data())
        except ValidationFailed as failed:
            form.add_field_errors(failed.errors)
        except IntegrityError:  # the same address added concurrently
            form.add_error("email", _("A member with this address already exists."))
        else:
            audit.record("member.created", request=request, target=target_of(member))
            messages.success(request, _("Member added."))
            return redirect("members:detail", pk=member.pk)
    return render(request, "members/form.html", {"form": form, "member": None})


@requires("members.edit")
def edit(request, pk):
    member = get_object_or_404(Member, pk=pk, workspace=request.workspace)
    pii = can_view_pii(request)
    form = MemberForm(request.POST or None, attributes=_attributes(request), member=member,
                      pii_visible=pii)
    if request.method == "POST" and form.is_valid():
        # update_member changes the object it is given even when it refuses, so give it a copy.
        changing = Member.objects.get(pk=member.pk)
        try:
            update_member(changing, form.member_data())
        except ValidationFailed as failed:
            form.add_field_errors(failed.errors)
        except IntegrityError:
            form.add_error("email", _("Another member already has this email address."))
        else:
            changed = _changed_fields(member, changing)
            if changed:
                audit.record("member.updated", request=request, target=target_of(member),
                             fields=changed)
            messages.success(request, _("Member saved."))
            return redirect("members:detail", pk=member.pk)
    elif request.method == "GET" and pii:
        audit.record("member.viewed_pii", request=request, target=target_of(member), page="edit")
    return render(request, "members/form.html", {
        "form": form, "member": member, "email": shown_email(member.email, pii)})


def _changed_fields(before: Member, after: Member) -> list[str]:
    """Names of the fields that changed (never their values: the audit log is not PII-free)."""
    names = [n for n in ("email", "phone", "status") if getattr(before, n) != getattr(after, n)]
    old, new = before.attributes or {}, after.attributes or {}
    for key in sorted(set(old) | set(new)):
        if json.dumps(old.get(key), sort_keys=True) != json.dumps(new.get(key), sort_keys=True):
            names.append(key)
    return names


@requires("members.edit")
def delete(request, pk):
    member = get_object_or_404(Member, pk=pk, workspace=request.workspace)
    if request.method == "POST":
        target = target_of(member)
        delete_member(member)
        audit.record("member.deleted", request=request, target=target)
        messages.success(request, _("Member deleted."))
        return redirect("members:index")
    pii = can_view_pii(request)
    return render(request, "members/delete.html", {
        "member": member, "email": shown_email(member.email, pii),
        "phone": shown_phone(member.phone, pii)})


@requires("members.edit")
@require_POST
def add_to_list(request, pk):
    member = get_object_or_404(Member, pk=pk, workspace=request.workspace)
    form = AddToListForm(request.POST, workspace=request.workspace)
    if not form.is_valid():
        return _render_detail(request, member, list_form=form, status=400)
    member_list = form.cleaned_data["member_list"]
    created = ListMembership.objects.get_or_create(member_list=member_list, member=member)[1]
    if created:
        audit.record("member.list_added", request=request, target=target_of(member),
                     list=member_list.name, list_id=member_list.pk)
    messages.success(request, _("Added to “%(list)s”.") % {"list": member_list.name})
    return redirect("members:detail", pk=member.pk)


@requires("members.edit")
@require_POST
def remove_from_list(request, pk, list_pk):
    member = get_object_or_404(Member, pk=pk, workspace=request.workspace)
    member_list = get_object_or_404(MemberList, pk=list_pk, workspace=request.workspace)
    removed, _detail = ListMembership.objects.filter(member_list=member_list,
                                                     member=member).delete()
    if removed:
        audit.record("member.list_removed", request=request, target=target_of(member),
                     list=member_list.name, list_id=member_list.pk)
        messages.success(request, _("Removed from “%(list)s”.") % {"list": member_list.name})
    return redirect("members:detail", pk=member.pk)


@requires("members.edit")
@require_POST
def add_consent(request, pk):
    member = get_object_or_404(Member, pk=pk, workspace=request.workspace)
    form = ConsentForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, member, consent_form=form, status=400)
    consent = form.save(commit=False)
    consent.workspace, consent.member = request.workspace, member
    consent.save()
    audit.record("consent.recorded", request=request, target=target_of(member),
                 consent_id=consent.pk, channel=consent.channel, method=consent.method)
    messages.success(request, _("Consent recorded."))
    return redirect("members:detail", pk=member.pk)


@requires("members.edit")
@require_POST
def withdraw_consent(request, pk, consent_pk):
    member = get_object_or_404(Member, pk=pk, workspace=request.workspace)
    form = WithdrawConsentForm(request.POST)
    with transaction.atomic():
        consent = get_object_or_404(ConsentRecord.objects.select_for_update(), pk=consent_pk,
                                    member=member, workspace=request.workspace)
        if consent.withdrawn_at is not None:
            messages.warning(request, _("This consent was already withdrawn."))
            return redirect("members:detail", pk=member.pk)
        if not form.is_valid():
            messages.error(request, _("Say how the consent was withdrawn."))
            return redirect("members:detail", pk=member.pk)
        consent.withdrawn_at = timezone.now()
        consent.withdrawn_method = form.cleaned_data["withdrawn_method"]
        consent.save(update_fields=["withdrawn_at", "withdrawn_method"])
    audit.record("consent.withdrawn", request=request, target=target_of(member),
                 consent_id=consent.pk, channel=consent.channel,
                 method=consent.withdrawn_method)
    messages.success(request, _("Consent withdrawn."))
    return redirect("members:detail", pk=member.pk)


urlpatterns = [
    path("", index, name="index"),
    path("new/", create, name="create"),
    path("<int:pk>/", detail, name="detail"),
    path("<int:pk>/edit/", edit, name="edit"),
    path("<int:pk>/delete/", delete, name="delete"),
    path("<int:pk>/lists/add/", add_to_list, name="add-to-list"),
    path("<int:pk>/lists/<int:list_pk>/remove/", remove_from_list, name="remove-from-list"),
    path("<int:pk>/consents/add/", add_consent, name="consent-add"),
    path("<int:pk>/consents/<int:consent_pk>/withdraw/", withdraw_consent,
         name="consent-withdraw"),
]
