"""Pages: segments — the list with live counts, the condition builder with a live count and a
preview of matching members, the detail page, and deletion.

The builder (``members/segment-builder.js``) edits the condition tree in the browser and keeps
it, as JSON, in the form's hidden ``definition`` field; this module validates it with
``tayori.members.segments`` on every live count and on save. The live count leaves out
conditions still waiting for a value (a row just added is not a mistake yet); saving does not.
Fields of kinds other apps registered (a mail's responses) bring their pickers' data in the
catalog and answer the builder's lookups (a mail's links) through ``options``.
"""

import json
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import can, requires
from tayori.members import segments
from tayori.members.models import Attribute, Segment
from tayori.members.views.helpers import PAGE_SIZE, can_view_pii, member_rows

PREVIEW_SIZE = 20
# Attribute columns in the preview table: those the conditions test first, then display order.
PREVIEW_ATTRIBUTES = 5


class SegmentForm(forms.ModelForm):
    definition = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Segment
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, workspace, allow_pii: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.allow_pii = allow_pii
        self.condition_errors: list[segments.ConditionError] = []
        if not self.is_bound:
            self.initial["definition"] = json.dumps(self.instance.definition or {},
                                                    ensure_ascii=False)

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        taken = Segment.objects.filter(workspace=self.workspace, name=name)
        if taken.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(_("A segment with this name already exists."))
        return name

    def clean_definition(self):
        try:
            return segments.validate(self.workspace, self.cleaned_data["definition"],
                                     allow_pii=self.allow_pii,
                                     segment=self.instance if self.instance.pk else None)
        except segments.SegmentError as error:
            self.condition_errors = error.errors
            raise forms.ValidationError([str(e) for e in error.errors]) from error

    def save(self, commit=True):
        segment = super().save(commit=False)
        segment.workspace = self.workspace
        segment.definition = self.cleaned_data["definition"]
        if commit:
            segment.save()
        return segment


def _target(segment: Segment) -> str:
    return f"segment:{segment.pk}"


def _conditions_in(definition) -> int:
    if isinstance(definition, dict) and isinstance(definition.get("conditions"), list):
        return sum(_conditions_in(child) for child in definition["conditions"])
    return 1


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _unfinished(leaf) -> bool:
    """Whether a condition still waits for its value: a row just added, a range with one end,
    an empty list of values. A wrong value is not unfinished; it is an error."""
    if not isinstance(leaf, dict) or leaf.get("operator") not in segments.OPERATOR_LABELS:
        return False
    shape = segments.SHAPES.get(leaf["operator"], "one")
    value = leaf.get("value")
    if shape == "none":
        return False
    if shape == "pair":
        return _blank(value) or (isinstance(value, list) and any(_blank(v) for v in value))
    if shape == "many":
        return _blank(value) or value == []
    return _blank(value)


def _finished_part(definition) -> tuple[object, int, dict[tuple[int, ...], tuple[int, ...]]]:
    """The definition without unfinished conditions (and groups left with none), how many were
    left out, and where each kept condition or group sits in the definition as the operator
    sees it — so that an error in what is counted names the row on screen."""
    if isinstance(definition, str) and definition.strip():
        try:
            definition = json.loads(definition)
        except ValueError:
            return definition, 0, {}
    if not isinstance(definition, dict) or not isinstance(definition.get("conditions"), list):
        return definition, 0, {}
    places: dict[tuple[int, ...], tuple[int, ...]] = {}

    def prune(group: dict, path: tuple[int, ...], kept_path: tuple[int, ...]):
        kept, skipped = [], 0
        for index, child in enumerate(group["conditions"], start=1):
            here, there = (*path, index), (*kept_path, len(kept) + 1)
            if isinstance(child, dict) and isinstance(child.get("conditions"), list):
                child, left_out = prune(child, here, there)
                skipped += left_out
                if child is None:
                    continue
            elif _unfinished(child):
                skipped += 1
                continue
            kept.append(child)
            places[there] = here
        if path and not kept:
            return None, skipped or 1  # a group with nothing finished in it yet
        return {**group, "conditions": kept}, skipped

    pruned, skipped = prune(definition, (), ())
    return pruned, skipped, places


def _fields_in(definition) -> list[str]:
    """The fields a (validated) definition tests, in the order they first appear."""
    names: list[str] = []
    for child in definition.get("conditions", []) if isinstance(definition, dict) else []:
        for name in (_fields_in(child) if "conditions" in child else [child.get("field")]):
            if name not in names:
                names.append(name)
    return names


def _preview_attributes(workspace, tested: list[str]) -> list[Attribute]:
    attributes = list(Attribute.objects.filter(workspace=workspace))
    first = sorted((a for a in attributes if a.key in tested), key=lambda a: tested.index(a.key))
    return (first + [a for a in attributes if a.key not in tested])[:PREVIEW_ATTRIBUTES]


def _outcome(request, definition, segment: Segment | None = None, *, saved: bool = False) -> dict:
    """The count and the first matching members of a definition, or why it cannot run.

    A definition being built is a search, so it may filter by masked fields only for viewers who
    may see them; a ``saved`` one was written by someone allowed to, and only its count and its
    (masked) members are shown. One being built is counted without its unfinished conditions.
    """
    pii = can_view_pii(request)
    allow = pii or saved
    skipped, places = 0, {}
    if not saved:
        definition, skipped, places = _finished_part(definition)
    try:
        normalized = segments.validate(request.workspace, definition, allow_pii=allow,
                                       segment=segment)
        members = segments.segment_queryset(request.workspace, normalized, allow_pii=allow)
        total = members.count()
    except segments.SegmentError as error:
        errors = [segments.ConditionError(places.get(e.path, e.path), e.message)
                  for e in error.errors]
        return {"errors": [str(e) for e in errors], "skipped": skipped,
                "condition_errors": [{"where": e.where, "message": e.message} for e in errors]}
    attributes = _preview_attributes(request.workspace, _fields_in(normalized))
    preview = list(members.order_by("-id")[:PREVIEW_SIZE])
    return {"total": total, "rows": member_rows(preview, attributes, pii),
            "attributes": attributes, "pii_visible": pii, "errors": [], "skipped": skipped,
            "show_phone": any(member.phone for member in preview)}


@requires("members.view")
def index(request):
    page = Paginator(Segment.objects.filter(workspace=request.workspace).order_by("name"),
                     PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "members/segments/index.html", {
        "page_obj": page, "can_edit": can(request, "members.edit"),
    })


@requires("members.view")
def saved_count(request, pk):
    """One segment's member count, loaded into the list page row by row."""
    segment = get_object_or_404(Segment, pk=pk, workspace=request.workspace)
    try:
        total = segments.segment_members(segment).count()
    except segments.SegmentError as error:
        return render(request, "members/segments/_count.html", {"error": str(error)})
    return render(request, "members/segments/_count.html", {"total": total})


@requires("members.view")
def detail(request, pk):
    segment = get_object_or_404(Segment, pk=pk, workspace=request.workspace)
    pii = can_view_pii(request)
    return render(request, "members/segments/detail.html", {
        "segment": segment,
        "summary": segments.describe(request.workspace, segment.definition, allow_pii=pii),
        "outcome": _outcome(request, segment.definition, saved=True),
        "used_by": segments.referring_segments(segment),
        "can_edit": can(request, "members.edit"),
    })


@requires("members.view")
@require_POST
def live(request):
    """The count and preview for the definition being built (htmx, on every change).

    Posting a definition is a search, so a role without ``members.view_pii`` is refused
    conditions on masked fields here too.
    """
    segment = None
    if request.POST.get("segment"):
        segment = get_object_or_404(Segment, pk=request.POST["segment"],
                                    workspace=request.workspace)
    outcome = _outcome(request, request.POST.get("definition", ""), segment)
    return render(request, "members/segments/_live.html", {"outcome": outcome})


def _builder(request, form: SegmentForm, segment: Segment | None, status=200):
    pii = can_view_pii(request)
    definition = form["definition"].value() or "{}"
    try:
        tree = json.loads(definition) if isinstance(definition, str) else definition
    except ValueError:
        tree = {}
    return render(request, "members/segments/form.html", {
        "form": form, "segment": segment,
        "catalog": _catalog(request.workspace, pii, segment),
        "tree": tree if isinstance(tree, dict) else {},
        "condition_errors": [{"where": e.where, "message": e.message}
                             for e in form.condition_errors],
        "builder_text": _builder_text(),
    }, status=status)


def _catalog(workspace, pii: bool, segment: Segment | None) -> dict:
    """The builder's catalog, each field saying whether it is personal information: a new row
    starts on a field that is not, so that a person's name is never the default."""
    catalog = segments.field_catalog(workspace, allow_pii=pii,
                                     exclude_segment=segment.pk if segment else None)
    personal = {name for name, field in segments.fields_of(workspace).items() if field.pii}
    for field in catalog["fields"]:
        field["pii"] = field["name"] in personal
    for name, kind in catalog["kinds"].items():
        kind["options"] = f"{reverse('members:segment-options')}?{urlencode({'kind': name})}"
    return catalog


@requires("members.view")
def options(request):
    """What the builder looks up while editing a condition of a registered kind (``?kind=``;
    e.g. the links of the mail just chosen), for this workspace only."""
    kind = segments.KINDS.get(request.GET.get("kind", ""))
    if kind is None:
        raise Http404
    return JsonResponse(kind.options(request.workspace, request.GET))


def _builder_text() -> dict:
    """Words the builder script shows, translated here so the script carries none. Words that
    mean something else elsewhere in Tayori (an operator is also a person) carry a context."""
    return {
        "all": _("All of these are true"), "any": _("Any of these is true"),
        "addCondition": _("Add condition"), "addGroup": _("Add group"),
        "removeCondition": _("Remove condition"), "removeGroup": _("Remove group"),
        "field": _("Field"), "operator": pgettext("segment condition", "Operator"),
        "join": pgettext("segment group", "Combine conditions"), "value": _("Value"),
        "and": pgettext("segment range", "and"), "days": _("days"),
        "onePerLine": _("One value per line"),
        "member": _("Member"), "attributes": _("Attributes"),
        "unknownField": _("Unknown field “%(field)s”"), "choose": _("Choose…"),
        "empty": _("No conditions: the segment selects every member."),
    }


@requires("members.edit")
def create(request):
    form = SegmentForm(request.POST or None, workspace=request.workspace,
                       allow_pii=can_view_pii(request))
    if request.method == "POST":
        if form.is_valid():
            segment = form.save()
            audit.record("segment.created", request=request, target=_target(segment),
                         name=segment.name, conditions=_conditions_in(segment.definition))
            messages.success(request, _("Segment saved."))
            return redirect("members:segment", pk=segment.pk)
        return _builder(request, form, None, status=400)
    return _builder(request, form, None)


@requires("members.edit")
def edit(request, pk):
    segment = get_object_or_404(Segment, pk=pk, workspace=request.workspace)
    old_name = segment.name
    form = SegmentForm(request.POST or None, instance=segment, workspace=request.workspace,
                       allow_pii=can_view_pii(request))
    if request.method == "POST":
        if form.is_valid():
            form.save()
            audit.record("segment.updated", request=request, target=_target(segment),
                         name=segment.name, old_name=old_name,
                         conditions=_conditions_in(segment.definition))
            messages.success(request, _("Segment saved."))
            return redirect("members:segment", pk=segment.pk)
        return _builder(request, form, segment, status=400)
    return _builder(request, form, segment)


@requires("members.edit")
def delete(request, pk):
    """Delete a segment, unless other segments include or exclude it (they would stop working)."""
    segment = get_object_or_404(Segment, pk=pk, workspace=request.workspace)
    used_by = segments.referring_segments(segment)
    if request.method == "POST" and not used_by:
        target, name = _target(segment), segment.name
        segment.delete()
        audit.record("segment.deleted", request=request, target=target, name=name)
        messages.success(request, _("Segment “%(name)s” deleted.") % {"name": name})
        return redirect("members:segments")
    return render(request, "members/segments/delete.html", {"segment": segment, "used_by": used_by},
                  status=409 if request.method == "POST" else 200)


urlpatterns = [
    path("segments/", index, name="segments"),
    path("segments/new/", create, name="segment-create"),
    path("segments/count/", live, name="segment-live"),
    path("segments/options/", options, name="segment-options"),
    path("segments/<int:pk>/", detail, name="segment"),
    path("segments/<int:pk>/edit/", edit, name="segment-edit"),
    path("segments/<int:pk>/delete/", delete, name="segment-delete"),
    path("segments/<int:pk>/count/", saved_count, name="segment-count"),
]
