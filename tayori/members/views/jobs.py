"""Pages: imports and exports. Upload a CSV, map its columns, dry-run it, start it and watch its
progress; choose members and columns to export; list jobs; download reports and exports."""

import os

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tayori.accounts import audit
from tayori.accounts.access import can, requires
from tayori.members import csvio, exporting, importing, tasks
from tayori.members.models import Attribute, Job, Member, MemberList, Segment

PAGE_SIZE = 25
SAMPLE_ROWS = 3


def _encoding_choices(auto: bool = True):
    choices = [(e, csvio.label_of(e)) for e in csvio.ENCODINGS]
    return [(csvio.AUTO, _("Detect automatically"))] + choices if auto else choices


def _mode_choices():
    return [("upsert", _("Add new members and update existing ones")),
            ("add", _("Add new members only")),
            ("update", _("Update existing members only")),
            ("unsubscribe", _("Unsubscribe the listed members")),
            ("suppress", _("Add the listed addresses to the suppression list"))]


class UploadForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("CSV file"))
    encoding = forms.ChoiceField(label=gettext_lazy("Encoding"), initial=csvio.AUTO)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["encoding"].choices = _encoding_choices()


class MappingForm(forms.Form):
    mode = forms.ChoiceField(label=gettext_lazy("What to do with each row"))

    def __init__(self, *args, headers, attributes, **kwargs):
        super().__init__(*args, **kwargs)
        self.headers = headers
        self.fields["mode"].choices = _mode_choices()
        choices = importing.field_choices(attributes)
        for index, header in enumerate(headers):
            self.fields[f"col_{index}"] = forms.ChoiceField(
                label=header or _("(column %(n)s)") % {"n": index + 1}, choices=choices,
                required=False)

    def mapping(self) -> list[str]:
        return [self.cleaned_data.get(f"col_{i}") or importing.IGNORE
                for i in range(len(self.headers))]

    def columns(self):
        return [self[f"col_{i}"] for i in range(len(self.headers))]


class ExportForm(forms.Form):
    selection = forms.ChoiceField(label=gettext_lazy("Members"), widget=forms.RadioSelect)
    status = forms.ChoiceField(label=gettext_lazy("Status"), required=False)
    member_list = forms.ChoiceField(label=gettext_lazy("List"), required=False)
    segment = forms.ChoiceField(label=gettext_lazy("Segment"), required=False)
    columns = forms.MultipleChoiceField(label=gettext_lazy("Columns"),
                                        widget=forms.CheckboxSelectMultiple)
    encoding = forms.ChoiceField(label=gettext_lazy("Encoding"), initial="utf-8-sig")

    def __init__(self, *args, workspace, attributes, **kwargs):
        super().__init__(*args, **kwargs)
        lists = [(m.pk, m.name) for m in MemberList.objects.filter(workspace=workspace)]
        segments = [(s.pk, s.name) for s in Segment.objects.filter(workspace=workspace)]
        # Offer a list or segment only when the workspace has one to choose.
        kinds = [("all", _("All members")), ("status", _("Members with a status"))]
        if lists:
            kinds.append(("list", _("Members of a list")))
        if segments:
            kinds.append(("segment", _("Members of a segment")))
        self.fields["selection"].choices = kinds
        self.fields["selection"].initial = "all"
        self.fields["status"].choices = Member.Status.choices
        self.fields["member_list"].choices = lists
        self.fields["segment"].choices = segments
        self.fields["columns"].choices = exporting.column_choices(attributes)
        self.fields["columns"].initial = [k for k, _label in self.fields["columns"].choices]
        self.fields["encoding"].choices = _encoding_choices(auto=False)

    def clean(self):
        data = super().clean()
        kind = data.get("selection")
        needed = {"status": "status", "list": "member_list", "segment": "segment"}.get(kind)
        if needed and not data.get(needed):
            self.add_error(needed, _("Choose one."))
        return data

    def members_chosen(self) -> dict:
        kind = self.cleaned_data["selection"]
        value = {"status": self.cleaned_data.get("status"),
                 "list": self.cleaned_data.get("member_list"),
                 "segment": self.cleaned_data.get("segment")}.get(kind)
        return {"kind": kind, "value": value}


def _job(request, pk) -> Job:
    return get_object_or_404(Job.objects.select_related("created_by"), pk=pk,
                             workspace=request.workspace)


def _attributes(request) -> list[Attribute]:
    return list(Attribute.objects.filter(workspace=request.workspace))


@requires("members.view")
def job_list(request):
    jobs = Job.objects.filter(workspace=request.workspace).select_related("created_by")
    page = Paginator(jobs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "members/jobs.html", {
        "page_obj": page, "jobs": page.object_list,
        "can_import": can(request, "members.import"),
        "can_export": can(request, "members.export")})


@requires("members.import")
def import_upload(request):
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        stored = importing.save_upload(request.workspace.pk, upload)
        try:
            encoding = csvio.resolve_encoding(stored, form.cleaned_data["encoding"])
            csvio.read_header(stored, encoding)
        except csvio.UnreadableFile as exc:
            os.remove(stored)
            form.add_error("file", str(exc))
        else:
            detected = (encoding if form.cleaned_data["encoding"] == csvio.AUTO
                        else csvio.detect_encoding(stored))
            job = importing.create_job(request.workspace, operator=request.user, path=stored,
                                       file_name=os.path.basename(upload.name),
                                       encoding=encoding, detected=detected,
                                       language=request.LANGUAGE_CODE)
            return redirect("members:job-mapping", pk=job.pk)
    return render(request, "members/jobs/import.html", {"form": form})


@requires("members.import")
def import_mapping(request, pk):
    job = _job(request, pk)
    if job.kind != Job.Kind.IMPORT or job.options.get("started"):
        return redirect("members:job", pk=job.pk)
    attributes = _attributes(request)
    encoding_error = None
    if request.method == "POST" and request.POST.get("action") == "encoding":
        try:
            encoding = csvio.resolve_encoding(job.input_path, request.POST.get("encoding", ""))
            csvio.read_header(job.input_path, encoding)
        except csvio.UnreadableFile as exc:
            encoding_error = str(exc)
        else:
            job.options = {**job.options, "encoding": encoding, "mapping": []}
            job.save(update_fields=["options"])
            return redirect("members:job-mapping", pk=job.pk)
    encoding = job.options["encoding"]
    headers = csvio.read_header(job.input_path, encoding)
    initial_mapping = job.options.get("mapping") or importing.guess_mapping(headers, attributes)
    initial = {"mode": job.options.get("mode", "upsert"),
               **{f"col_{i}": f for i, f in enumerate(initial_mapping)}}
    posted = request.method == "POST" and request.POST.get("action") in ("dry_run", "start")
    form = MappingForm(request.POST if posted else None, initial=initial, headers=headers,
                       attributes=attributes)
    result, problems = None, []
    if posted and form.is_valid():
        mapping, mode = form.mapping(), form.cleaned_data["mode"]
        problems = importing.check_mapping(mapping, mode, attributes)
        job.options = {**job.options, "mapping": mapping, "mode": mode}
        job.save(update_fields=["options"])
        if not problems and request.POST["action"] == "start":
            job.options = {**job.options, "started": True}
            job.save(update_fields=["options"])
            tasks.import_members(job.pk)
            return redirect("members:job", pk=job.pk)
        if not problems:
            result = importing.dry_run(request.workspace, job.input_path, encoding, mapping,
                                       mode, can_view_pii=can(request, "members.view_pii"))
    samples = _samples(job, encoding) if can(request, "members.view_pii") else []
    return render(request, "members/jobs/mapping.html", {
        "job": job, "form": form, "columns": list(zip(form.columns(), _by_column(samples, headers),
                                                        strict=True)),
        "encoding": encoding, "encoding_label": csvio.label_of(encoding),
        "detected_label": csvio.label_of(job.options.get("detected_encoding", encoding)),
        "encoding_choices": _encoding_choices(auto=False), "encoding_error": encoding_error,
        "problems": problems, "result": result, "attributes": attributes,
        "dry_run_rows": importing.DRY_RUN_ROWS})


def _samples(job: Job, encoding: str) -> list[list[str]]:
    samples = []
    for record in csvio.iter_records(job.input_path, encoding):
        samples.append(record.cells)
        if len(samples) == SAMPLE_ROWS:
            break
    return samples


def _by_column(samples, headers) -> list[list[str]]:
    return [[row[i] for row in samples if i < len(row) and row[i]] for i in range(len(headers))]


@requires("members.export")
def export_new(request):
    attributes = _attributes(request)
    form = ExportForm(request.POST or None, workspace=request.workspace, attributes=attributes)
    if request.method == "POST" and form.is_valid():
        try:
            job = exporting.create_job(
                request.workspace, operator=request.user, selection=form.members_chosen(),
                columns=form.cleaned_data["columns"], encoding=form.cleaned_data["encoding"],
                include_pii=can(request, "members.view_pii"), language=request.LANGUAGE_CODE)
        except exporting.BadSelection as exc:
            form.add_error(None, str(exc))
        else:
            tasks.export_members(job.pk)
            return redirect("members:job", pk=job.pk)
    return render(request, "members/jobs/export.html", {
        "form": form, "masked": not can(request, "members.view_pii")})


def _live_context(request, job: Job) -> dict:
    can_pii = can(request, "members.view_pii")
    return {
        "job": job,
        "running": job.state in (Job.State.PENDING, Job.State.RUNNING)
        and (job.kind == Job.Kind.EXPORT or job.options.get("started")),
        "counts": job.options.get("counts") or {},
        "errors": importing.masked_errors(job.errors or [], _attributes(request), can_pii),
        "can_report": job.kind == Job.Kind.IMPORT and bool(job.output_path)
        and can(request, "members.import"),
        "can_download": job.kind == Job.Kind.EXPORT and job.state == Job.State.DONE
        and _may_download(request, job),
    }


def _may_download(request, job: Job) -> bool:
    # A file written with PII is handed only to operators who may see PII themselves.
    return can(request, "members.export") and (
        not job.options.get("include_pii") or can(request, "members.view_pii"))


@requires("members.view")
def job_detail(request, pk):
    job = _job(request, pk)
    if (job.kind == Job.Kind.IMPORT and not job.options.get("started")
            and can(request, "members.import")):
        return redirect("members:job-mapping", pk=job.pk)
    return render(request, "members/jobs/detail.html", {
        **_live_context(request, job),
        "mode_label": dict(_mode_choices()).get(job.options.get("mode"), ""),
        "encoding_label": csvio.label_of(job.options.get("encoding", ""))})


@requires("members.view")
def job_progress(request, pk):
    """The live part of a job's page, which htmx polls every second while the job runs."""
    job = _job(request, pk)
    return render(request, "members/jobs/_live.html", _live_context(request, job))


@requires("members.import")
def job_errors(request, pk):
    job = _job(request, pk)
    if job.kind != Job.Kind.IMPORT or not job.output_path or not os.path.exists(job.output_path):
        raise Http404
    audit.record("members.import_report_downloaded", request=request, target=job.file_name,
                 job=job.pk)
    base = os.path.splitext(job.file_name)[0] or "import"
    return FileResponse(open(job.output_path, "rb"), as_attachment=True,
                        filename=f"{base}-errors.csv", content_type="text/csv")


@requires("members.export")
def job_download(request, pk):
    job = _job(request, pk)
    if job.kind != Job.Kind.EXPORT or job.state != Job.State.DONE or not job.output_path:
        raise Http404
    if not _may_download(request, job):
        raise PermissionDenied("members.view_pii")
    if not os.path.exists(job.output_path):
        messages.error(request, _("The export file is no longer on the server."))
        return redirect("members:job", pk=job.pk)
    audit.record("members.export_downloaded", request=request, target=job.file_name, job=job.pk,
                 pii_included=job.options.get("include_pii", False))
    return FileResponse(open(job.output_path, "rb"), as_attachment=True, filename=job.file_name,
                        content_type="text/csv")


urlpatterns = [
    path("jobs/", job_list, name="jobs"),
    path("jobs/import/", import_upload, name="job-import"),
    path("jobs/export/", export_new, name="job-export"),
    path("jobs/<int:pk>/", job_detail, name="job"),
    path("jobs/<int:pk>/mapping/", import_mapping, name="job-mapping"),
    path("jobs/<int:pk>/progress/", job_progress, name="job-progress"),
    path("jobs/<int:pk>/errors.csv", job_errors, name="job-errors"),
    path("jobs/<int:pk>/download/", job_download, name="job-download"),
]
