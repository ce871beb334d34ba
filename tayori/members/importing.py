"""Importing members from CSV: mapping columns to fields, dry runs, and the chunked import a job runs.

Every row goes through ``services.upsert_many`` (the one write path), a chunk at a time, so a
million-row file costs a few statements per thousand rows. A bad row is reported (line, column,
value, reason) in the job's error report and never stops the good rows around it.
"""

import os
import queue
import threading
import unicodedata
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from tayori.accounts import audit
from tayori.members import csvio
from tayori.members.masking import mask_email, mask_phone, mask_value, masked_member_fields
from tayori.members.models import Attribute, Job, Member
from tayori.members.services import MODES, ItemResult, upsert_many
from tayori.members.values import FieldError

CHUNK_ROWS = 2000
DRY_RUN_ROWS = 1000  # rows a dry run checks
PREVIEW_ROWS = 10  # rows a dry run shows as they will be stored
KEPT_ERRORS = 100  # errors kept on the Job for its page; the report file has all of them

IGNORE = ""
CONTACT_FIELDS = ("email", "phone", "status")

# Header spellings seen in Japanese member files, compared after ``_header_key``.
_SYNONYMS = {
    "email": {"email", "emailaddress", "mail", "mailaddress", "eメール", "eメールアドレス",
              "メール", "メールアドレス", "電子メール", "電子メールアドレス", "メアド", "pcメール"},
    "phone": {"phone", "phonenumber", "tel", "telephone", "telno", "mobile", "mobilephone",
              "cellphone", "電話", "電話番号", "携帯", "携帯電話", "携帯番号", "携帯電話番号"},
    "status": {"status", "ステータス", "状態", "配信状態", "会員状態"},
}


def _header_key(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "").casefold()
    return "".join(ch for ch in text if ch not in " \t_-・.")


def contact_labels() -> dict[str, str]:
    return {"email": _("Email"), "phone": _("Phone"), "status": _("Status")}


def field_choices(attributes: Iterable[Attribute]) -> list[tuple[str, str]]:
    """What a CSV column can be mapped to, as (value, label) pairs for a select."""
    return ([(IGNORE, _("Ignore this column"))] + list(contact_labels().items())
            + [(a.key, a.label) for a in attributes])


def guess_mapping(headers: list[str], attributes: Iterable[Attribute]) -> list[str]:
    """A field per header, matched by attribute key or label, or a known contact spelling.

    Each field is taken by the first column that matches it; the rest are ignored.
    """
    attributes = list(attributes)
    by_key = {_header_key(a.key): a.key for a in attributes}
    by_label = {_header_key(a.label): a.key for a in attributes}
    synonyms = {spelling: name for name, spellings in _SYNONYMS.items() for spelling in spellings}
    mapping, taken = [], set()
    for header in headers:
        key = _header_key(header)
        guess = by_key.get(key) or synonyms.get(key) or by_label.get(key) or IGNORE
        if guess in taken:
            guess = IGNORE
        taken.add(guess)
        mapping.append(guess)
    return mapping


def apply_overrides(mapping: list[str], headers: list[str], pairs: Iterable[str],
                    attributes: Iterable[Attribute]) -> list[str]:
    """Apply ``column=field`` overrides (column by header or 1-based number; field ``ignore``).

    Raises ValueError naming the bad pair.
    """
    valid = {value for value, _label in field_choices(attributes)}
    mapping = list(mapping)
    for pair in pairs:
        column, sep, target = pair.partition("=")
        column, target = column.strip(), target.strip()
        if not sep or not column:
            raise ValueError(_("“%(pair)s” is not column=field.") % {"pair": pair})
        if column.isdigit() and 1 <= int(column) <= len(headers):
            index = int(column) - 1
        elif column in headers:
            index = headers.index(column)
        else:
            raise ValueError(_("No column “%(column)s” in the file.") % {"column": column})
        target = IGNORE if target.lower() in ("", "ignore", "-") else target
        if target not in valid:
            raise ValueError(_("Unknown field “%(field)s”.") % {"field": target})
        if target:  # a field comes from one column: the override takes it from any other
            mapping = [IGNORE if f == target else f for f in mapping]
        mapping[index] = target
    return mapping


def check_mapping(mapping: list[str], mode: str, attributes: Iterable[Attribute]) -> list[str]:
    """Problems that make the mapping unusable (empty list when it can be imported)."""
    problems = []
    if mode not in MODES:
        problems.append(_("Unknown mode “%(mode)s”.") % {"mode": mode})
    valid = {value for value, _label in field_choices(attributes)}
    for name in sorted({f for f in mapping if f and f not in valid}):
        problems.append(_("Unknown field “%(field)s”.") % {"field": name})
    used = [f for f in mapping if f]
    for name in sorted({f for f in used if used.count(f) > 1}):
        problems.append(_("“%(field)s” is chosen for more than one column.") % {"field": name})
    if "email" not in used and "phone" not in used:
        problems.append(_("Choose the column with the email address or the phone number: "
                          "members are matched by them."))
    return problems


@dataclass
class RowError:
    line: int
    column: str
    field: str
    value: str
    reason: str


@dataclass
class ImportCounts:
    processed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    unsubscribed: int = 0
    suppressed: int = 0
    failed: int = 0

    @property
    def succeeded(self) -> int:
        return self.processed - self.failed

    def add(self, status: str) -> None:
        self.processed += 1
        if status == "error":
            self.failed += 1
        else:
            setattr(self, status, getattr(self, status) + 1)


class _Rows:
    """Turns CSV records into upsert items, and item errors back into line/column/value."""

    def __init__(self, headers: list[str], mapping: list[str]):
        self.width = len(headers)
        self.columns = [(i, name) for i, name in enumerate(mapping) if name]
        self.header_of = {name: headers[i] for i, name in self.columns}

    def item(self, record: csvio.Record) -> tuple[dict | None, RowError | None]:
        cells = record.cells
        if len(cells) > self.width and any(c.strip() for c in cells[self.width:]):
            return None, RowError(record.line, "", "", "", _(
                "This line has %(cells)s cells but the header has %(columns)s.")
                % {"cells": len(cells), "columns": self.width})
        return {name: (cells[i] if i < len(cells) else "") for i, name in self.columns}, None

    def contact_keys(self, records: list[csvio.Record]) -> set[str]:
        """Roughly normalized emails and phone digits of a chunk, to keep two chunks naming the
        same member from running at once."""
        keys = set()
        for i, name in self.columns:
            if name not in ("email", "phone"):
                continue
            for record in records:
                raw = record.cells[i] if i < len(record.cells) else ""
                text = unicodedata.normalize("NFKC", raw).strip().lower()
                if name == "phone":
                    text = "".join(ch for ch in text if ch.isdigit())[-10:]
                if text:
                    keys.add(f"{name}:{text}")
        return keys

    def errors(self, line: int, item: dict, errors: list[FieldError]) -> list[RowError]:
        return [RowError(line, self.header_of.get(e.field, e.field), e.field,
                         str(item.get(e.field, "") or ""), e.message) for e in errors]


def _chunks(records: Iterator[csvio.Record], size: int) -> Iterator[list[csvio.Record]]:
    chunk = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _apply(workspace, items: list[dict], mode: str, consent: dict | None,
           memo: dict) -> list[ItemResult]:
    """upsert_many on a chunk; if a concurrent writer makes it clash, retry, then row by row."""
    for _attempt in range(2):
        try:
            return upsert_many(workspace, items, mode=mode, consent=consent, memo=memo)
        except (IntegrityError, OperationalError) as exc:
            if isinstance(exc, OperationalError) and not _deadlock(exc):
                raise
            continue
    results = []
    for index, item in enumerate(items):
        try:
            [result] = upsert_many(workspace, [item], mode=mode, consent=consent, memo=memo)
        except (IntegrityError, OperationalError) as exc:
            if isinstance(exc, OperationalError) and not _deadlock(exc):
                raise
            result = ItemResult(0, "error", errors=[FieldError(
                "email" if item.get("email") else "phone",
                _("Could not be stored: another change to the same member happened at once."))])
        result.index = index
        results.append(result)
    return results


def _deadlock(exc: Exception) -> bool:
    # Two chunks in flight may lock the same unique keys in opposite orders; PostgreSQL then
    # aborts one (SQLSTATE 40P01), which is safe to run again.
    return getattr(exc.__cause__, "sqlstate", None) == "40P01"


def _process(workspace, rows: _Rows, records: list[csvio.Record], mode: str,
             consent: dict | None, memo: dict,
             ) -> Iterator[tuple[csvio.Record, dict | None, ItemResult]]:
    """Apply one chunk; yields (record, item, result) in file order."""
    prepared = [(record, *rows.item(record)) for record in records]
    items = [item for _record, item, error in prepared if error is None]
    results = iter(_apply(workspace, items, mode, consent, memo) if items else [])
    for record, item, error in prepared:
        if error is not None:
            yield record, None, ItemResult(0, "error", errors=[FieldError("", error.reason)])
        else:
            yield record, item, next(results)


def save_upload(workspace_id: int, upload) -> Path:
    """Store an uploaded file under the workspace's job directory; returns its path."""
    path = csvio.job_directory(workspace_id) / f"upload-{uuid.uuid4().hex}.csv"
    with open(path, "wb") as handle:
        for block in upload.chunks():
            handle.write(block)
    return path


@dataclass
class PreviewRow:
    line: int
    outcome: str
    email: str
    phone: str
    status: str
    attributes: dict
    errors: list[RowError] = field(default_factory=list)

    @property
    def outcome_label(self) -> str:
        return {"created": _("New"), "updated": _("Changed"), "unchanged": _("Unchanged"),
                "unsubscribed": _("Unsubscribed"), "suppressed": _("Suppressed"),
                "error": _("Refused")}.get(self.outcome, self.outcome)


@dataclass
class DryRun:
    checked: int
    counts: ImportCounts
    preview: list[PreviewRow]
    errors: list[dict]  # line, column, field, value, reason; masked for the viewer


def dry_run(workspace, path: str | Path, encoding: str, mapping: list[str], mode: str, *,
            can_view_pii: bool, rows: int = DRY_RUN_ROWS) -> DryRun:
    """Import the first ``rows`` rows inside a transaction that is rolled back.

    Running the real write path (then undoing it) shows exactly what the import will do: members
    an update cannot find, addresses an add would duplicate, unique values already taken.
    """
    headers = csvio.read_header(path, encoding)
    converter = _Rows(headers, mapping)
    attributes = list(Attribute.objects.filter(workspace=workspace))
    records = []
    for record in csvio.iter_records(path, encoding):
        records.append(record)
        if len(records) == rows:
            break
    counts, preview, errors = ImportCounts(), [], []
    with transaction.atomic():
        outcomes = list(_process(workspace, converter, records, mode, None, {}))
        ids = [r.member_id for _rec, _item, r in outcomes[:PREVIEW_ROWS] if r.member_id]
        members = Member.objects.filter(workspace=workspace, pk__in=ids).in_bulk()
        transaction.set_rollback(True)
    for record, item, result in outcomes:
        counts.add(result.status)
        row_errors = _errors_of(converter, record, item, result)
        errors.extend(row_errors)
        if len(preview) < PREVIEW_ROWS:
            preview.append(_preview_row(record, item, result, members.get(result.member_id),
                                        attributes, can_view_pii, row_errors))
    shown = masked_errors([asdict(e) for e in errors[:KEPT_ERRORS]], attributes, can_view_pii)
    return DryRun(len(records), counts, preview, shown)


def _errors_of(converter: _Rows, record, item, result: ItemResult) -> list[RowError]:
    if result.ok:
        return []
    if item is None:  # refused before the write path (a malformed line)
        return [RowError(record.line, "", "", "", result.errors[0].message)]
    return converter.errors(record.line, item, result.errors)


def _preview_row(record, item, result, member, attributes, can_view_pii, errors) -> PreviewRow:
    if member is not None:
        shown = masked_member_fields(member, attributes, can_view_pii)
        return PreviewRow(record.line, result.status, shown["email"], shown["phone"],
                          member.get_status_display(), shown["attributes"], errors)
    item = item or {}
    email, phone = str(item.get("email", "")), str(item.get("phone", ""))
    if not can_view_pii:
        email, phone = mask_email(email), mask_phone(phone)
    return PreviewRow(record.line, result.status, email, phone, "", {}, errors)


def masked_errors(errors: list[dict], attributes: Iterable[Attribute],
                  can_view_pii: bool) -> list[dict]:
    """Stored errors as a viewer may see them: PII values masked, also inside the reason."""
    if can_view_pii:
        return errors
    hidden = {"email": mask_email, "phone": mask_phone}
    hidden.update({a.key: lambda v: mask_value(v) or "" for a in attributes if a.pii})
    shown = []
    for error in errors:
        mask = hidden.get(error.get("field", ""))
        value = error.get("value", "")
        if mask and value:
            masked = mask(value)
            error = {**error, "value": masked, "reason": error["reason"].replace(value, masked)}
        shown.append(error)
    return shown


def create_job(workspace, *, operator, path: str | Path, file_name: str, encoding: str,
               detected: str, language: str | None = None) -> Job:
    """A pending import job for an uploaded file, waiting for its mapping."""
    return Job.objects.create(
        workspace=workspace, kind=Job.Kind.IMPORT, created_by=operator, file_name=file_name[:255],
        input_path=str(path),
        options={"encoding": encoding, "detected_encoding": detected, "mode": "upsert",
                 "mapping": [], "started": False,
                 "language": language or translation.get_language() or settings.LANGUAGE_CODE})


def execute(job_id: int, *, on_progress: Callable[[Job], None] | None = None,
            chunk_rows: int = CHUNK_ROWS, via: str = "ui") -> Job | None:
    """Run an import job to the end. Returns None if another runner has already claimed it.

    The job row is the checkpoint: progress and the first errors are written after each chunk,
    so the page and the CLI can follow, and a crash leaves the counts of what was stored.
    """
    claimed = Job.objects.filter(pk=job_id, kind=Job.Kind.IMPORT, state=Job.State.PENDING).update(
        state=Job.State.RUNNING)
    if not claimed:
        return None
    job = Job.objects.select_related("workspace", "created_by").get(pk=job_id)
    # Messages in the language of whoever started the job; dates and times without an offset
    # read in the workspace's time zone, as the UI shows them.
    with (translation.override(job.options.get("language") or settings.LANGUAGE_CODE),
          timezone.override(ZoneInfo(job.workspace.time_zone))):
        try:
            counts = _run(job, on_progress, chunk_rows)
        except Exception as exc:
            Job.objects.filter(pk=job.pk).update(
                state=Job.State.FAILED, finished_at=timezone.now(),
                message=_("The import stopped: %(reason)s. Rows before the failure were stored; "
                          "running the file again in upsert mode is safe.") % {"reason": exc})
            job.refresh_from_db()
            if on_progress:
                on_progress(job)
            raise
        audit.record("members.imported", workspace=job.workspace, operator=job.created_by,
                     target=job.file_name, job=job.pk, mode=job.options["mode"], via=via,
                     **{k: v for k, v in asdict(counts).items()})
    job.refresh_from_db()
    return job


def _run(job: Job, on_progress, chunk_rows: int) -> ImportCounts:
    options = job.options
    encoding, mapping, mode = options["encoding"], options["mapping"], options["mode"]
    headers = csvio.read_header(job.input_path, encoding)
    converter = _Rows(headers, mapping)
    job.total = csvio.count_records(job.input_path, encoding)
    Job.objects.filter(pk=job.pk).update(total=job.total)
    consent = {"method": "import", "source": job.file_name}
    report_path = csvio.job_directory(job.workspace_id) / f"job-{job.pk}-errors.csv"
    counts, kept, memo = ImportCounts(), [], {}
    chunks = _chunks(csvio.iter_records(job.input_path, encoding), chunk_rows)
    with csvio.CsvWriter(report_path, "utf-8-sig") as report:
        report.writerow([_("Line"), _("Column"), _("Value"), _("Reason")])
        for outcomes in _outcomes(job.workspace, converter, chunks, mode, consent, memo):
            for record, item, result in outcomes:
                counts.add(result.status)
                for error in _errors_of(converter, record, item, result):
                    report.writerow([str(error.line), error.column, error.value, error.reason])
                    if len(kept) < KEPT_ERRORS:
                        kept.append(asdict(error))
            _save_progress(job, counts, kept)
            if on_progress:
                on_progress(job)
    if counts.failed:
        job.output_path = str(report_path)
    else:
        os.remove(report_path)
    job.state, job.finished_at = Job.State.DONE, timezone.now()
    job.message = summary_text(counts)
    job.save(update_fields=["output_path", "state", "finished_at", "message"])
    if on_progress:
        on_progress(job)
    return counts


def _outcomes(workspace, converter: _Rows, chunks, mode, consent, memo) -> Iterator[list]:
    """Each chunk's (record, item, result) list, in file order.

    On PostgreSQL, outside an enclosing transaction, two chunks are in flight at once on two
    connections: one thread cleans its rows (Python) while the other waits for the database, so
    the import takes about as long as the slower of the two instead of their sum. Two chunks that
    name the same address or number never run at once, so a later row still wins; a clash the
    check cannot see (differently written duplicates) ends in the database's unique index and the
    retry in ``_apply``.
    """
    workers = IMPORT_WORKERS if (connection.vendor == "postgresql"
                                 and not connection.in_atomic_block) else 1
    if workers == 1:
        for chunk in chunks:
            yield list(_process(workspace, converter, chunk, mode, consent, memo))
        return
    pool = [_ChunkWorker(workspace, converter, mode, consent, memo) for _n in range(workers)]
    idle = list(pool)
    in_flight: deque = deque()  # (future, worker, keys)
    try:
        for worker in pool:
            worker.start()
        for chunk in chunks:
            keys = converter.contact_keys(chunk)
            while in_flight and (not idle or any(keys & k for _f, _w, k in in_flight)):
                future, worker, _keys = in_flight.popleft()
                idle.append(worker)
                yield future.result()
            worker = idle.pop()
            in_flight.append((worker.submit(chunk), worker, keys))
        while in_flight:
            yield in_flight.popleft()[0].result()
    finally:
        for worker in pool:
            worker.stop()
        for worker in pool:
            worker.join()


IMPORT_WORKERS = 2


class _ChunkWorker(threading.Thread):
    """Applies chunks on its own database connection, closed when the import ends."""

    def __init__(self, workspace, converter, mode, consent, memo):
        super().__init__(daemon=True)
        self.args = (workspace, converter, mode, consent, memo)
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        # Both are per thread: carry the coordinator's over.
        self.language = translation.get_language()
        self.time_zone = timezone.get_current_timezone()

    def submit(self, chunk) -> Future:
        future: Future = Future()
        self.inbox.put((future, chunk))
        return future

    def stop(self) -> None:
        self.inbox.put(None)

    def run(self) -> None:
        workspace, converter, mode, consent, memo = self.args
        translation.activate(self.language)
        timezone.activate(self.time_zone)
        try:
            while (task := self.inbox.get()) is not None:
                future, chunk = task
                try:
                    future.set_result(list(_process(workspace, converter, chunk, mode, consent,
                                                    memo)))
                except BaseException as exc:  # handed to the coordinating thread
                    future.set_exception(exc)
        finally:
            connection.close()


def _save_progress(job: Job, counts: ImportCounts, kept: list[dict]) -> None:
    job.processed, job.succeeded, job.failed = counts.processed, counts.succeeded, counts.failed
    job.errors = kept
    job.options = {**job.options, "counts": asdict(counts)}
    Job.objects.filter(pk=job.pk).update(processed=job.processed, succeeded=job.succeeded,
                                         failed=job.failed, errors=kept, options=job.options)


def summary_text(counts: ImportCounts) -> str:
    return _("%(created)s created, %(updated)s updated, %(unchanged)s unchanged, "
             "%(unsubscribed)s unsubscribed, %(suppressed)s suppressed, %(failed)s failed.") % asdict(counts)
