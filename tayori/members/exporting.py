"""Exporting members to CSV: which members, which columns, which encoding, masked or not.

Whether PII is included is decided when the job is created, from the requesting operator's role,
and stored on the job: the file is written (and later handed out) under that decision.
"""

import datetime as dt
from collections.abc import Callable, Iterable
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from tayori.accounts import audit
from tayori.members import csvio
from tayori.members.masking import mask_email, mask_phone, mask_value
from tayori.members.models import Attribute, Job, Member, MemberList, Segment
from tayori.members.segments import segment_queryset

CHUNK_ROWS = 5000
BASE_COLUMNS = ("email", "phone", "status", "created_at", "updated_at")


class BadSelection(ValueError):
    """The members asked for cannot be selected (unknown list, segment or status)."""


def base_labels() -> dict[str, str]:
    return {"email": _("Email"), "phone": _("Phone"), "status": _("Status"),
            "created_at": _("Created"), "updated_at": _("Updated")}


def column_choices(attributes: Iterable[Attribute]) -> list[tuple[str, str]]:
    return list(base_labels().items()) + [(a.key, a.label) for a in attributes]


def select_members(workspace, selection: dict) -> QuerySet:
    """The members a selection names: ``{"kind": "all" | "status" | "list" | "segment", "value"}``."""
    kind, value = selection.get("kind", "all"), selection.get("value")
    members = Member.objects.filter(workspace=workspace)
    if kind == "all":
        return members
    if kind == "status":
        if value not in Member.Status.values:
            raise BadSelection(_("Unknown status “%(value)s”.") % {"value": value})
        return members.filter(status=value)
    try:
        if kind == "list":
            member_list = MemberList.objects.get(workspace=workspace, pk=int(value))
            return members.filter(lists=member_list)
        if kind == "segment":
            segment = Segment.objects.get(workspace=workspace, pk=int(value))
            # Scoped again here: an export must never reach past its workspace.
            return segment_queryset(workspace, segment.definition).filter(workspace=workspace)
    except (ObjectDoesNotExist, TypeError, ValueError) as exc:
        raise BadSelection(_("The chosen list or segment does not exist.")) from exc
    raise BadSelection(_("Unknown selection “%(kind)s”.") % {"kind": kind})


def create_job(workspace, *, operator, selection: dict, columns: list[str], encoding: str,
               include_pii: bool, language: str | None = None) -> Job:
    """A pending export; ``include_pii`` is the requesting operator's right at this moment."""
    select_members(workspace, selection)  # refuse a bad selection now, not in the worker
    if encoding not in csvio.ENCODINGS:
        raise BadSelection(_("Unknown encoding “%(name)s”.") % {"name": encoding})
    known = {key for key, _label in column_choices(Attribute.objects.filter(workspace=workspace))}
    columns = [c for c in columns if c in known] or ["email"]
    return Job.objects.create(
        workspace=workspace, kind=Job.Kind.EXPORT, created_by=operator,
        options={"selection": selection, "columns": columns, "encoding": encoding,
                 "include_pii": bool(include_pii),
                 "language": language or translation.get_language() or settings.LANGUAGE_CODE})


def execute(job_id: int, *, on_progress: Callable[[Job], None] | None = None,
            via: str = "ui") -> Job | None:
    """Write the export file. Returns None if another runner has already claimed the job."""
    claimed = Job.objects.filter(pk=job_id, kind=Job.Kind.EXPORT, state=Job.State.PENDING).update(
        state=Job.State.RUNNING)
    if not claimed:
        return None
    job = Job.objects.select_related("workspace", "created_by").get(pk=job_id)
    with translation.override(job.options.get("language") or settings.LANGUAGE_CODE):
        try:
            rows, replaced = _write(job, on_progress)
        except Exception as exc:
            Job.objects.filter(pk=job.pk).update(
                state=Job.State.FAILED, finished_at=timezone.now(),
                message=_("The export stopped: %(reason)s") % {"reason": exc})
            raise
        audit.record("members.exported", workspace=job.workspace, operator=job.created_by,
                     target=job.file_name, job=job.pk, rows=rows,
                     pii_included=job.options["include_pii"], encoding=job.options["encoding"],
                     selection=job.options["selection"], replaced_cells=replaced, via=via)
    job.refresh_from_db()
    if on_progress:
        on_progress(job)
    return job


def _write(job: Job, on_progress) -> tuple[int, int]:
    options = job.options
    workspace = job.workspace
    attributes = {a.key: a for a in Attribute.objects.filter(workspace=workspace)}
    columns = [c for c in options["columns"] if c in BASE_COLUMNS or c in attributes]
    labels = {**base_labels(), **{k: a.label for k, a in attributes.items()}}
    members = select_members(workspace, options["selection"])
    job.total = members.count()
    job.file_name = f"members-{timezone.localtime(job.created_at, ZoneInfo(workspace.time_zone)):%Y%m%d-%H%M}.csv"
    path = csvio.job_directory(workspace.pk) / f"job-{job.pk}-members.csv"
    Job.objects.filter(pk=job.pk).update(total=job.total, file_name=job.file_name,
                                         output_path=str(path))
    cell = _cell_formatters(columns, attributes, workspace.time_zone, options["include_pii"])
    statuses = dict(Member.Status.choices)
    fields = ("pk", "email", "phone", "status", "attributes", "created_at", "updated_at")
    with csvio.CsvWriter(path, options["encoding"]) as writer:
        writer.writerow([str(labels[c]) for c in columns])
        last = 0
        while True:
            # Keyset pages by primary key: steady cost per page however far into the table.
            page = list(members.filter(pk__gt=last).order_by("pk").values_list(*fields)[:CHUNK_ROWS])
            if not page:
                break
            for pk, email, phone, status, values, created, updated in page:
                row = {"email": email, "phone": phone, "status": str(statuses.get(status, status)),
                       "created_at": created, "updated_at": updated}
                values = values or {}
                writer.writerow([cell[c](row[c] if c in BASE_COLUMNS else values.get(c))
                                 for c in columns])
                last = pk
            job.processed = job.succeeded = writer.rows - 1
            Job.objects.filter(pk=job.pk).update(processed=job.processed, succeeded=job.succeeded)
            if on_progress:
                on_progress(job)
    rows, replaced = writer.rows - 1, writer.replaced_cells
    message = _("%(rows)s members exported.") % {"rows": rows}
    if replaced:
        message += " " + _("%(cells)s cells had characters Shift_JIS (CP932) cannot carry; they "
                           "were replaced with “?”.") % {"cells": replaced}
    if not options["include_pii"]:
        message += " " + _("Personal information is masked.")
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.DONE, finished_at=timezone.now(), processed=rows, succeeded=rows,
        message=message, options={**options, "replaced_cells": replaced, "rows": rows})
    return rows, replaced


def _cell_formatters(columns, attributes, time_zone: str, include_pii: bool) -> dict:
    tz = ZoneInfo(time_zone)

    def moment(value):
        return timezone.localtime(value, tz).strftime("%Y-%m-%d %H:%M:%S") if value else ""

    formatters = {"email": (lambda v: v or "") if include_pii else mask_email,
                  "phone": (lambda v: v or "") if include_pii else mask_phone,
                  "status": str, "created_at": moment, "updated_at": moment}
    for key in columns:
        if key in formatters:
            continue
        attribute = attributes[key]
        if attribute.pii and not include_pii:
            formatters[key] = lambda v: mask_value(v) or ""
        else:
            formatters[key] = _value_formatter(attribute.type, tz)
    return formatters


def _value_formatter(kind: str, tz: ZoneInfo) -> Callable:
    """Stored attribute values as CSV text that an import reads back to the same value."""
    T = Attribute.Type

    def plain(value):
        return "" if value is None else str(value)

    def boolean(value):
        return "" if value is None else ("true" if value else "false")

    def many(value):
        return ";".join(map(str, value)) if isinstance(value, list) else plain(value)

    def moment(value):
        if not value:
            return ""
        try:
            parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return str(value)
        return parsed.astimezone(tz).isoformat() if parsed.tzinfo else parsed.isoformat()

    return {T.BOOLEAN: boolean, T.MULTI_CHOICE: many, T.DATETIME: moment}.get(kind, plain)
