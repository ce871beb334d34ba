"""Content pages: sender identities, templates (block editor with live preview, charset
pre-check, files, copy, import) and shared blocks (with where they are used)."""

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import can, requires
from tayori.content import charset, editing, importing
from tayori.content.blocks import FIELDS, assemble, shared_of
from tayori.content.checks import template_errors
from tayori.content.models import BLOCK_KINDS, SenderIdentity, SharedBlock, Template, TemplateFile
from tayori.content.preview import render_preview
from tayori.delivery.models import Charset
from tayori.members.masking import mask_email
from tayori.members.models import Member, MemberList, Segment
from tayori.members.segments import KINDS, fields_of
from tayori.members.values import FieldError

FILE_TYPES = {"application/pdf", "application/msword", "application/vnd.ms-excel",
              "application/vnd.ms-powerpoint", "image/png", "image/jpeg", "image/gif",
              "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
              "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
              "application/vnd.openxmlformats-officedocument.presentationml.presentation"}


class IdentityForm(forms.ModelForm):
    class Meta:
        model = SenderIdentity
        fields = ["label", "from_name", "from_address", "reply_to", "organization",
                  "postal_address", "contact", "opt_out_text"]
        widgets = {"opt_out_text": forms.Textarea(attrs={"rows": 3})}


@requires("templates.manage")
def identities(request):
    return render(request, "content/identities.html", {
        "identities": SenderIdentity.objects.filter(workspace=request.workspace)})


@requires("templates.manage")
def identity_form(request, pk=None):
    identity = (get_object_or_404(SenderIdentity, pk=pk, workspace=request.workspace)
                if pk else SenderIdentity(workspace=request.workspace))
    form = IdentityForm(request.POST or None, instance=identity)
    if request.method == "POST" and form.is_valid():
        if SenderIdentity.objects.filter(workspace=request.workspace,
                                         label=form.cleaned_data["label"]).exclude(
                pk=identity.pk).exists():
            form.add_error("label", _("Another sender already has this label."))
        else:
            form.save()
            audit.record("identity.save", request=request, target=f"identity:{identity.pk}")
            messages.success(request, _("Sender saved."))
            return redirect("content:identities")
    return render(request, "content/identity_form.html", {"form": form, "identity": identity},
                  status=400 if form.errors else 200)


@requires("templates.manage")
def templates(request):
    items = Template.objects.filter(workspace=request.workspace)
    if query := request.GET.get("q", "").strip():
        items = items.filter(name__icontains=query)
    page = Paginator(items, 25).get_page(request.GET.get("page"))
    return render(request, "content/templates.html", {"page_obj": page, "q": query})


def _editor_context(request, template, content, errors=None, unencodable=None):
    workspace = request.workspace
    fields = [f for f in fields_of(workspace).values()
              if f.kind not in ("segment", "list") and f.kind not in KINDS]
    blocks = [{"index": i, "number": i + 1, "prefix": f"b-{i}", "kind": b.get("kind"),
               "kind_label": BLOCK_KINDS.get(b.get("kind"), b.get("kind")), "data": b,
               "cond": editing.condition_widget(b.get("condition")),
               "errors": [e.message for e in errors or [] if e.field == f"blocks.{i + 1}"]}
              for i, b in enumerate(content["blocks"])]
    variants = [{"index": i, "prefix": f"v-{i}", "data": v, "cond": editing.condition_widget(v.get("condition")),
                 "errors": [e.message for e in errors or []
                            if e.field == f"subject_variants.{i + 1}"]}
                for i, v in enumerate(content["subject_variants"])]
    return {"template": template, "content": content, "blocks": blocks, "variants": variants,
            "kinds": list(BLOCK_KINDS.items()),
            "errors": [e for e in errors or [] if not e.field.startswith(("blocks.",
                                                                          "subject_variants."))],
            "segments": Segment.objects.filter(workspace=workspace),
            "lists": MemberList.objects.filter(workspace=workspace),
            "fields": fields, "operators": editing.operator_choices(),
            "shared": SharedBlock.objects.filter(workspace=workspace),
            "charsets": Charset.choices, "unencodable": unencodable or [],
            "files": template.files.all() if template.pk else []}


def _jis_texts(content: dict) -> list[str]:
    texts = [content["subject"], *[v.get("subject", "") for v in content["subject_variants"]]]
    for block in content["blocks"]:
        texts += [str(block.get(k) or "") for k in ("text", "html", "label", "alt")]
    return texts + ([content["text"]] if content["text_edited"] else [])


@requires("templates.manage")
def template_form(request, pk=None):
    template = (get_object_or_404(Template, pk=pk, workspace=request.workspace)
                if pk else Template(workspace=request.workspace, name=_("New template")))
    if request.method != "POST":
        return render(request, "content/template_form.html",
                      _editor_context(request, template, template.content()))
    content = editing.content_from(request.POST)
    template.name = request.POST.get("name", "").strip()[:200] or template.name
    action = request.POST.get("action", "save")
    if action == "jis_replace":
        content = _replace_jis(content)
        action = "save"
    elif action == "utf8":
        content["charset"] = Charset.UTF8
        action = "save"
    if action != "save":
        content = editing.apply_action(content, action)
        return render(request, "content/template_form.html",
                      _editor_context(request, template, content))
    shared = shared_of(request.workspace)
    errors = template_errors(request.workspace, content, shared)
    unencodable = (charset.check_iso2022jp(*_jis_texts(content))
                   if content["charset"] == Charset.ISO2022JP else [])
    if errors:
        return render(request, "content/template_form.html",
                      _editor_context(request, template, content, errors, unencodable),
                      status=400)
    _save(request, template, content)
    if unencodable:
        messages.warning(request, _("Saved. Some characters cannot be sent in ISO-2022-JP: "
                                    "replace them or send in UTF-8."))
        return render(request, "content/template_form.html",
                      _editor_context(request, template, content, [], unencodable))
    messages.success(request, _("Template saved."))
    return redirect("content:template", template.pk)


def _replace_jis(content: dict) -> dict:
    content["subject"] = charset.replace_all(content["subject"])
    for variant in content["subject_variants"]:
        variant["subject"] = charset.replace_all(variant.get("subject", ""))
    for block in content["blocks"]:
        for key in ("text", "html", "label", "alt"):
            if block.get(key):
                block[key] = charset.replace_all(block[key])
    content["text"] = charset.replace_all(content["text"])
    return content


def _save(request, template: Template, content: dict) -> None:
    creating = template.pk is None
    for key in ("subject", "subject_variants", "preheader", "blocks", "text_edited", "charset"):
        setattr(template, key, content[key])
    if content["text_edited"]:
        template.text = content["text"]
    else:  # the text part made from the HTML, kept for people who then edit it by hand
        template.text = assemble(content, None, shared_of(request.workspace)).text
    template.updated_at = timezone.now()
    if creating:
        template.created_by = request.user
    template.save()
    template.shared_blocks.set([int(b["shared_id"]) for b in template.blocks
                                if b.get("kind") == "shared" and b.get("shared_id")])
    audit.record("template.create" if creating else "template.save", request=request,
                 target=f"template:{template.pk}", name=template.name)


def _member_choice(request):
    members = Member.objects.filter(workspace=request.workspace).order_by("pk")
    pk = request.GET.get("member") or request.POST.get("preview_member") or ""
    member = members.filter(pk=pk).first() if str(pk).isdigit() else None
    return member, members[:50]


@requires("templates.manage")
def template_preview(request, pk):
    """Preview as a chosen member, desktop and phone widths, with why each block shows."""
    template = get_object_or_404(Template, pk=pk, workspace=request.workspace)
    member, choices = _member_choice(request)
    identity = SenderIdentity.objects.filter(workspace=request.workspace).first()
    allow_pii = can(request, "members.view_pii")
    preview = render_preview(request.workspace, template.content(), identity, member,
                             allow_pii=allow_pii, shared=shared_of(request.workspace))
    return render(request, "content/preview.html", {
        "template": template, "preview": preview, "member": member,
        "choices": [(m.pk, m.email if allow_pii else mask_email(m.email)) for m in choices]})


@requires("templates.manage")
@require_POST
def live_preview(request):
    """The editor's live preview of unsaved content (htmx, as the first member sees it)."""
    content = editing.content_from(request.POST)
    member = Member.objects.filter(workspace=request.workspace).order_by("pk").first()
    preview = render_preview(request.workspace, content,
                             SenderIdentity.objects.filter(workspace=request.workspace).first(),
                             member, allow_pii=can(request, "members.view_pii"),
                             shared=shared_of(request.workspace))
    return render(request, "content/_live_preview.html", {"preview": preview})


@requires("templates.manage")
@require_POST
def template_copy(request, pk):
    template = get_object_or_404(Template, pk=pk, workspace=request.workspace)
    files = list(template.files.all())
    shared = list(template.shared_blocks.all())
    template.pk = None
    template.name = _("Copy of %(name)s") % {"name": template.name}
    template.created_by, template.created_at = request.user, timezone.now()
    template.save()
    template.shared_blocks.set(shared)
    for f in files:
        f.pk, f.template = None, template
        f.save()
    audit.record("template.copy", request=request, target=f"template:{template.pk}",
                 original=pk)
    messages.success(request, _("Template copied."))
    return redirect("content:template", template.pk)


@requires("templates.manage")
@require_POST
def template_delete(request, pk):
    template = get_object_or_404(Template, pk=pk, workspace=request.workspace)
    audit.record("template.delete", request=request, target=f"template:{pk}",
                 name=template.name)
    template.delete()
    messages.success(request, _("Template deleted."))
    return redirect("content:templates")


@requires("templates.manage")
@require_POST
def template_file(request, pk):
    """Attach a file (PDF, Office, image) or, with "inline", an image the HTML shows."""
    template = get_object_or_404(Template, pk=pk, workspace=request.workspace)
    upload = request.FILES.get("file")
    total = sum(f.size for f in template.files.all())
    if upload is None:
        messages.error(request, _("Choose a file."))
    elif upload.content_type not in FILE_TYPES:
        messages.error(request, _("Only PDF, Office files and images can be attached."))
    elif upload.size > TemplateFile.MAX_BYTES or total + upload.size > TemplateFile.MAX_TOTAL_BYTES:
        messages.error(request, _("Files are limited to %(one)s MB each and %(all)s MB in all.")
                       % {"one": TemplateFile.MAX_BYTES // 2**20,
                          "all": TemplateFile.MAX_TOTAL_BYTES // 2**20})
    else:
        inline = request.POST.get("inline") == "on" and upload.content_type.startswith("image/")
        data = upload.read()
        TemplateFile.objects.create(
            template=template, filename=upload.name[:255], content_type=upload.content_type,
            data=data, size=len(data),
            content_id=f"f{template.pk}-{timezone.now().timestamp():.0f}@tayori" if inline else "")
        audit.record("template.file", request=request, target=f"template:{pk}",
                     filename=upload.name)
        messages.success(request, _("File added."))
    return redirect("content:template", pk)


@requires("templates.manage")
@require_POST
def template_file_delete(request, pk, file_pk):
    template = get_object_or_404(Template, pk=pk, workspace=request.workspace)
    get_object_or_404(TemplateFile, pk=file_pk, template=template).delete()
    audit.record("template.file_delete", request=request, target=f"template:{pk}")
    return redirect("content:template", pk)


@requires("templates.manage")
def template_import(request):
    """A new template from an .eml, .mht or .html file (with its images)."""
    error = ""
    if request.method == "POST" and request.FILES.get("file"):
        upload = request.FILES["file"]
        images = [(f.name, f.read()) for f in request.FILES.getlist("images")]
        try:
            mail = importing.import_message(upload.name, upload.read(), images)
        except importing.ImportRefused as refused:
            error = str(refused)
        else:
            template = Template.objects.create(
                workspace=request.workspace, name=upload.name[:200],
                subject=mail.subject or upload.name[:200],
                blocks=[{"kind": "html", "html": mail.html or "", "condition": None}]
                if mail.html else [{"kind": "text", "text": mail.text, "condition": None}],
                text=mail.text, text_edited=bool(mail.text and mail.html),
                created_by=request.user)
            for asset in mail.assets:
                TemplateFile.objects.create(
                    template=template, filename=asset.filename[:255],
                    content_type=asset.content_type, data=asset.data, size=len(asset.data),
                    content_id=asset.content_id if asset.inline else "")
            audit.record("template.import", request=request, target=f"template:{template.pk}",
                         filename=upload.name)
            for warning in mail.warnings:
                messages.warning(request, warning)
            messages.success(request, _("Template imported."))
            return redirect("content:template", template.pk)
    elif request.method == "POST":
        error = _("Choose a file.")
    return render(request, "content/import.html", {"error": error},
                  status=400 if error else 200)


@requires("templates.manage")
def shared_blocks(request):
    return render(request, "content/shared_blocks.html", {
        "blocks": SharedBlock.objects.filter(workspace=request.workspace)})


@requires("templates.manage")
def shared_block_form(request, pk=None):
    """A shared block: saving it reaches every template and every mail not yet sent."""
    from tayori.campaigns.models import Campaign
    from tayori.campaigns.services import reassemble_pending

    block = (get_object_or_404(SharedBlock, pk=pk, workspace=request.workspace)
             if pk else SharedBlock(workspace=request.workspace))
    content = {"blocks": [block.block or {"kind": "text", "text": "", "condition": None}],
               "subject_variants": []}
    errors = []
    if request.method == "POST":
        block.name = request.POST.get("name", "").strip()[:200]
        content = editing.content_from(request.POST)
        content["subject"] = "-"
        content["blocks"] = [b for b in content["blocks"] if b["kind"] != "shared"][:1]
        kind = request.GET.get("kind", "")
        if "save" not in request.POST and kind in FIELDS and kind != "shared":
            content["blocks"] = [{"kind": kind, "condition": None}]  # switching the kind
            return render(request, "content/shared_block_form.html", {
                **_editor_context(request, Template(workspace=request.workspace),
                                  {"blocks": content["blocks"], "subject_variants": []}),
                "shared_block": block, "kinds": [(k, v) for k, v in BLOCK_KINDS.items()
                                          if k != "shared"]})
        errors = [e for e in template_errors(request.workspace, content) if e.field != "text"]
        if not block.name:
            errors.append(FieldError("name", _("A name is required.")))
        if not errors:
            block.block = content["blocks"][0]
            block.updated_at, block.updated_by = timezone.now(), request.user
            block.save()
            updated = reassemble_pending(request.workspace)
            audit.record("shared_block.save", request=request, target=f"shared_block:{block.pk}",
                         pending_updated=updated)
            messages.success(request, _("Shared block saved; %(n)s mails not yet sent now "
                                        "carry it.") % {"n": updated})
            return redirect("content:shared-block", block.pk)
    templates_using = block.templates.all() if block.pk else []
    campaigns = (Campaign.objects.filter(template__in=templates_using).exclude(
        status__in=["finished", "cancelled"]) if block.pk else [])
    context = _editor_context(request, Template(workspace=request.workspace),
                              {"blocks": content["blocks"], "subject_variants": []}, errors)
    context.update({"shared_block": block, "templates_using": templates_using,
                    "campaigns_using": campaigns,
                    "kinds": [(k, v) for k, v in context["kinds"] if k != "shared"]})
    return render(request, "content/shared_block_form.html", context,
                  status=400 if errors else 200)


app_name = "content"
urlpatterns = [
    path("senders/", identities, name="identities"),
    path("senders/new/", identity_form, name="identity-new"),
    path("senders/<int:pk>/", identity_form, name="identity"),
    path("templates/", templates, name="templates"),
    path("templates/new/", template_form, name="template-new"),
    path("templates/import/", template_import, name="template-import"),
    path("templates/preview/", live_preview, name="live-preview"),
    path("templates/<int:pk>/", template_form, name="template"),
    path("templates/<int:pk>/preview/", template_preview, name="template-preview"),
    path("templates/<int:pk>/copy/", template_copy, name="template-copy"),
    path("templates/<int:pk>/delete/", template_delete, name="template-delete"),
    path("templates/<int:pk>/files/", template_file, name="template-file"),
    path("templates/<int:pk>/files/<int:file_pk>/delete/", template_file_delete,
         name="template-file-delete"),
    path("shared/", shared_blocks, name="shared-blocks"),
    path("shared/new/", shared_block_form, name="shared-block-new"),
    path("shared/<int:pk>/", shared_block_form, name="shared-block"),
]
