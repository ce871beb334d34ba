"""Pages for whoever prepares the console (``notices.manage``): the service catalogue and the
notice types — each type's fields, templates, targeting rule, sender, second confirmation and
the type it follows."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tayori.accounts import audit
from tayori.accounts.access import requires
from tayori.incidents import fields, rendering
from tayori.incidents.models import NoticeType, Service
from tayori.incidents.targeting import OPERATORS
from tayori.members.attribute_types import save_attribute
from tayori.members.models import Attribute, Segment

BLANK_ROWS = 3


class ServiceForm(forms.ModelForm):
    class Meta:
        model = Service
        fields = ["code", "name", "group", "position", "active"]

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.workspace = workspace

    def clean_code(self):
        code = self.cleaned_data["code"].strip()
        taken = Service.objects.filter(workspace=self.workspace, code=code).exclude(
            pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(_("Another service has this code."))
        return code


def _offer_in_attributes(request, code: str) -> list[str]:
    """Add a new service's code to the choices of the attributes notice types target, so that
    members can hold it (adding a choice never invalidates a stored value)."""
    keys = set(NoticeType.objects.filter(workspace=request.workspace).exclude(
        target_attribute="").values_list("target_attribute", flat=True))
    added = []
    for attribute in Attribute.objects.filter(
            workspace=request.workspace, key__in=keys,
            type__in=[Attribute.Type.CHOICE, Attribute.Type.MULTI_CHOICE]):
        if code not in attribute.choices:
            attribute.choices = [*attribute.choices, code]
            if save_attribute(attribute).ok:
                added.append(attribute.key)
    if added:
        audit.record("attribute.choices_added", request=request, attributes=added, choice=code)
    return added


@requires("notices.manage")
def services(request):
    """The catalogue, with a form to add a service."""
    form = ServiceForm(request.POST or None, workspace=request.workspace,
                       initial={"position": Service.objects.filter(
                           workspace=request.workspace).count() + 1})
    if request.method == "POST" and form.is_valid():
        service = form.save(commit=False)
        service.workspace = request.workspace
        service.save()
        added = _offer_in_attributes(request, service.code)
        audit.record("notice_service.created", request=request, target=f"service:{service.pk}",
                     code=service.code)
        messages.success(request, _("Service added.") + (" " + _(
            "Members can now hold it in: %(keys)s") % {"keys": ", ".join(added)}
                                                         if added else ""))
        return redirect("incidents:services")
    return render(request, "incidents/services.html", {
        "form": form, "services": Service.objects.filter(workspace=request.workspace)},
        status=400 if form.errors else 200)


@requires("notices.manage")
def service(request, pk):
    item = get_object_or_404(Service, pk=pk, workspace=request.workspace)
    form = ServiceForm(request.POST or None, instance=item, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        form.save()
        _offer_in_attributes(request, item.code)
        audit.record("notice_service.changed", request=request, target=f"service:{item.pk}",
                     code=item.code, active=item.active)
        messages.success(request, _("Service saved."))
        return redirect("incidents:services")
    return render(request, "incidents/service.html", {"form": form, "item": item},
                  status=400 if form.errors else 200)


class NoticeTypeForm(forms.ModelForm):
    target_attribute = forms.ChoiceField(label=gettext_lazy("Service attribute"),
                                         required=False)

    class Meta:
        model = NoticeType
        fields = ["name", "description", "position", "active", "from_name", "from_address",
                  "reply_to", "subject", "text", "html", "target", "target_attribute",
                  "segment", "requires_second_confirmation", "follows"]
        widgets = {"text": forms.Textarea(attrs={"rows": 14, "class": "code"}),
                   "html": forms.Textarea(attrs={"rows": 6, "class": "code"})}
        help_texts = {"text": gettext_lazy(
            "Fields print as {{ notice.<key> }}; member fields as {{ member.<key> }}; "
            "{{ notice_history_url }} is the recipient's link to the notices sent to them.")}

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.fields["segment"].queryset = Segment.objects.filter(workspace=workspace)
        self.fields["follows"].queryset = NoticeType.objects.filter(
            workspace=workspace).exclude(pk=self.instance.pk)
        self.fields["target_attribute"].choices = [("", "—")] + [
            (a.key, f"{a.label} ({a.key}, {a.get_type_display()})")
            for a in Attribute.objects.filter(workspace=workspace, type__in=list(OPERATORS))]

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if NoticeType.objects.filter(workspace=self.workspace, name=name).exclude(
                pk=self.instance.pk).exists():
            raise forms.ValidationError(_("Another notice type has this name."))
        return name


def _field_rows(request, notice_type: NoticeType | None) -> list[dict]:
    """The field list as the editor's rows: posted ones, else the type's, plus blank rows."""
    if request.method == "POST":
        rows = []
        for index in range(min(int(request.POST.get("fld-count", "0") or 0), fields.MAX_FIELDS
                               + BLANK_ROWS)):
            name = f"fld-{index}-"
            rows.append({"key": request.POST.get(name + "key", "").strip(),
                         "label": request.POST.get(name + "label", "").strip(),
                         "kind": request.POST.get(name + "kind", ""),
                         "required": bool(request.POST.get(name + "required")),
                         "choices": [c.strip() for c in request.POST.get(
                             name + "choices", "").replace("、", ",").split(",") if c.strip()],
                         "help": request.POST.get(name + "help", "").strip()})
        return rows
    rows = [dict(spec) for spec in (notice_type.fields if notice_type else [])]
    return rows + [{"key": "", "label": "", "kind": "", "required": False, "choices": [],
                    "help": ""} for _n in range(BLANK_ROWS)]


@requires("notices.manage")
def types(request):
    return render(request, "incidents/types.html", {
        "types": NoticeType.objects.filter(workspace=request.workspace).select_related(
            "follows")})


@requires("notices.manage")
def notice_type(request, pk=None):
    """A notice type's editor: one form, the fields as rows (blank rows are ignored)."""
    item = (get_object_or_404(NoticeType, pk=pk, workspace=request.workspace) if pk
            else NoticeType(workspace=request.workspace))
    form = NoticeTypeForm(request.POST or None, instance=item, workspace=request.workspace)
    rows = _field_rows(request, item if pk else None)
    problems: list[str] = []
    if request.method == "POST":
        specs, problems = fields.check_specs([r for r in rows if r["key"] or r["label"]])
        if form.is_valid():
            data = form.cleaned_data
            for error in rendering.check(data["subject"], data["text"], data["html"],
                                         [fields.FieldSpec.of(s) for s in specs]):
                form.add_error(error.field, error.message)
            if data["target"] == NoticeType.Target.SERVICES:
                if not any(s["kind"] == "services" for s in specs):
                    problems.append(_("Add a field of the kind “Affected services”: it decides "
                                      "who receives the notice."))
                if not data["target_attribute"]:
                    form.add_error("target_attribute", _("Choose the attribute listing "
                                                         "members' services."))
        if form.is_valid() and not problems:
            with transaction.atomic():
                item = form.save(commit=False)
                item.workspace, item.fields, item.updated_at = (request.workspace, specs,
                                                                timezone.now())
                item.save()
            audit.record("notice_type.saved", request=request, target=f"notice_type:{item.pk}",
                         name=item.name, fields=[s["key"] for s in specs])
            messages.success(request, _("Notice type saved."))
            return redirect("incidents:types")
    return render(request, "incidents/type.html", {
        "form": form, "item": item, "rows": rows, "problems": problems,
        "kinds": list(fields.KINDS.items()),
        "catalogue": Service.objects.filter(workspace=request.workspace, active=True)},
        status=400 if request.method == "POST" else 200)


urlpatterns = [
    path("services/", services, name="services"),
    path("services/<int:pk>/", service, name="service"),
    path("types/", types, name="types"),
    path("types/new/", notice_type, name="type-new"),
    path("types/<int:pk>/", notice_type, name="type"),
]
