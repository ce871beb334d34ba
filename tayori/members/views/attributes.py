"""Pages: the workspace's attributes in display order — create, edit (a definition change
converts stored values or says which members block it), reorder and delete."""

from django.contrib import messages
from django.db import transaction
from django.db.models import Max
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import requires
from tayori.members import attribute_types
from tayori.members.forms import AttributeForm
from tayori.members.models import Attribute, Member
from tayori.members.views.helpers import (
    can_view_pii,
    shown_email,
    shown_phone,
    shown_value,
    target_of,
)

_DEFINITION = ("label", "type", "choices", "required", "unique", "pii")


@requires("members.edit")
def index(request):
    attributes = list(Attribute.objects.filter(workspace=request.workspace))
    return render(request, "members/attributes.html", {"attributes": attributes})


@requires("members.edit")
def create(request):
    attribute = Attribute(workspace=request.workspace)
    form = AttributeForm(request.POST or None, instance=attribute, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            last = Attribute.objects.filter(workspace=request.workspace).aggregate(
                n=Max("position"))["n"]
            attribute.position = 0 if last is None else last + 1
            form.save()
        audit.record("attribute.created", request=request, target=target_of(attribute),
                     key=attribute.key, type=attribute.type, required=attribute.required,
                     unique=attribute.unique, pii=attribute.pii)
        messages.success(request, _("Attribute “%(label)s” created.") % {"label": attribute.label})
        return redirect("members:attributes")
    return render(request, "members/attribute_form.html", {"form": form, "attribute": None})


@requires("members.edit")
def edit(request, pk):
    attribute = get_object_or_404(Attribute, pk=pk, workspace=request.workspace)
    # The form writes the new definition onto ``attribute``; keep what is stored for the page.
    before = {name: getattr(attribute, name) for name in _DEFINITION}
    form = AttributeForm(request.POST or None, instance=attribute, workspace=request.workspace)
    blocked = None
    if request.method == "POST" and form.is_valid():
        result = attribute_types.save_attribute(form.instance)
        if result.ok:
            changes = {name: [before[name], getattr(attribute, name)] for name in _DEFINITION
                       if before[name] != getattr(attribute, name)}
            if changes:
                audit.record("attribute.updated", request=request, target=target_of(attribute),
                             key=attribute.key, changes=changes, converted=result.converted)
            messages.success(request, _("Attribute “%(label)s” saved.") % {"label": attribute.label})
            return redirect("members:attributes")
        blocked = _blockers(request, attribute, result)
        audit.record("attribute.change_refused", request=request, target=target_of(attribute),
                     key=attribute.key, blocked=result.blocked)
    return render(request, "members/attribute_form.html", {
        "form": form, "attribute": attribute, "stored_label": before["label"],
        "blocked": blocked,
    }, status=409 if blocked else 200)


def _blockers(request, attribute, result) -> dict:
    """The refused change as the operator may see it: member contacts and values masked for
    roles without the PII right, and so is a reason that quotes a masked value."""
    pii = can_view_pii(request)
    hide_values = attribute.pii and not pii
    rows = [{
        "member_id": b.member_id,
        "contact": shown_email(b.email, pii) or shown_phone(b.phone, pii) or f"#{b.member_id}",
        "value": shown_value(attribute, b.value, pii),
        "reason": _("This value does not fit the new definition.") if hide_values else b.reason,
    } for b in result.blockers]
    return {"rows": rows, "total": result.blocked, "more": result.blocked - len(rows)}


@requires("members.edit")
@require_POST
def move(request, pk, direction):
    """Swap an attribute with its neighbour; positions are renumbered 0..n-1 on the way, so
    rows created with equal positions still move one step at a time."""
    with transaction.atomic():
        ordered = list(Attribute.objects.select_for_update().filter(workspace=request.workspace))
        index = next((i for i, a in enumerate(ordered) if a.pk == pk), None)
        if index is None or direction not in ("up", "down"):
            raise Http404
        other = index - 1 if direction == "up" else index + 1
        if 0 <= other < len(ordered):
            ordered[index], ordered[other] = ordered[other], ordered[index]
            for position, attribute in enumerate(ordered):
                attribute.position = position
            Attribute.objects.bulk_update(ordered, ["position"])
            audit.record("attribute.moved", request=request,
                         target=target_of(ordered[other]), key=ordered[other].key,
                         direction=direction, position=other)
    return redirect("members:attributes")


@requires("members.edit")
def delete(request, pk):
    attribute = get_object_or_404(Attribute, pk=pk, workspace=request.workspace)
    holders = Member.objects.filter(workspace=request.workspace,
                                    attributes__has_key=attribute.key)
    if request.method == "POST":
        target, key = target_of(attribute), attribute.key
        with transaction.atomic():
            cleared = _clear_values(holders, key)
            attribute.delete()
        audit.record("attribute.deleted", request=request, target=target, key=key,
                     members_cleared=cleared)
        messages.success(request, _("Attribute “%(label)s” deleted.") % {"label": attribute.label})
        return redirect("members:attributes")
    return render(request, "members/attribute_delete.html", {
        "attribute": attribute, "count": holders.count()})


def _clear_values(holders, key: str) -> int:
    """Remove ``key`` from every member holding it, a chunk at a time; returns how many."""
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


urlpatterns = [
    path("attributes/", index, name="attributes"),
    path("attributes/new/", create, name="attribute-create"),
    path("attributes/<int:pk>/edit/", edit, name="attribute-edit"),
    path("attributes/<int:pk>/delete/", delete, name="attribute-delete"),
    path("attributes/<int:pk>/move/<str:direction>/", move, name="attribute-move"),
]
