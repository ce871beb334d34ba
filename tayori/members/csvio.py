"""CSV files as Japanese companies send and expect them: UTF-8, UTF-8 with BOM, or CP932.

Reading detects the encoding (a BOM means UTF-8 with BOM; bytes that decode as UTF-8 mean UTF-8;
anything else is taken as CP932, the Shift_JIS Windows and Excel write), checks that the whole file
decodes before any row is used, and yields each record with the file line it starts on (the header
is line 1). Writing replaces what CP932 cannot carry and counts the cells that lost characters.
"""

import codecs
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.utils.translation import gettext as _

AUTO = "auto"
ENCODINGS = ("utf-8", "utf-8-sig", "cp932")
# Fields longer than csv's 128 KiB default appear in real exports (notes, HTML snippets).
csv.field_size_limit(16 * 1024 * 1024)
_BLOCK = 1 << 20


class UnreadableFile(Exception):
    """The file cannot be used at all (not CSV, wrong encoding, no header)."""


def detect_encoding(path: str | Path) -> str:
    """The encoding of a CSV file: utf-8-sig (BOM), utf-8 (decodes cleanly) or cp932.

    The whole file is checked, not a sample: a UTF-8 file with one CP932 row near the end would
    otherwise be read as UTF-8 and fail half-way through an import.
    """
    with open(path, "rb") as handle:
        head = handle.read(len(codecs.BOM_UTF8))
    if head == codecs.BOM_UTF8:
        return "utf-8-sig"
    if _first_undecodable(path, "utf-8") is None:
        return "utf-8"
    return "cp932"


def _first_undecodable(path, encoding: str) -> int | None:
    """Byte offset of the first sequence ``encoding`` cannot decode, or None if all decode."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return offset + exc.start
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return offset + exc.start
    return None


def resolve_encoding(path: str | Path, requested: str = AUTO) -> str:
    """The encoding to read ``path`` with; raises UnreadableFile if it does not decode."""
    if requested not in (AUTO, *ENCODINGS):
        raise UnreadableFile(_("Unknown encoding “%(name)s”.") % {"name": requested})
    encoding = detect_encoding(path) if requested == AUTO else requested
    bad = _first_undecodable(path, encoding)
    if bad is not None:
        raise UnreadableFile(
            _("The file is not valid %(encoding)s (byte %(offset)s). Choose another encoding.")
            % {"encoding": label_of(encoding), "offset": bad})
    return encoding


def label_of(encoding: str) -> str:
    return {"utf-8": "UTF-8", "utf-8-sig": _("UTF-8 with BOM"),
            "cp932": _("Shift_JIS (CP932)")}.get(encoding, encoding)


def _open_text(path, encoding: str):
    # newline="" lets csv see the line breaks inside quoted fields.
    return open(path, encoding=encoding, newline="")


def read_header(path: str | Path, encoding: str) -> list[str]:
    """The header row, cells stripped; raises UnreadableFile for an empty file or no columns."""
    with _open_text(path, encoding) as handle:
        try:
            for header in csv.reader(handle):
                if any(cell.strip() for cell in header):
                    return [cell.strip() for cell in header]
        except csv.Error as exc:
            raise UnreadableFile(_("Not a CSV file: %(reason)s") % {"reason": exc}) from exc
    raise UnreadableFile(_("The file is empty: it has no header row."))


@dataclass
class Record:
    line: int  # the file line the record starts on; the header is line 1
    cells: list[str]


def iter_records(path: str | Path, encoding: str) -> Iterator[Record]:
    """Every data record after the header, with its line number; blank lines are skipped."""
    with _open_text(path, encoding) as handle:
        reader = csv.reader(handle)
        seen_header = False
        previous_end = 0
        try:
            for cells in reader:
                start, previous_end = previous_end + 1, reader.line_num
                if not any(cells):  # a blank line, or only commas
                    continue
                if not seen_header:
                    seen_header = True
                    continue
                yield Record(start, cells)
        except csv.Error as exc:
            raise UnreadableFile(_("Line %(line)s is not valid CSV: %(reason)s")
                                 % {"line": reader.line_num, "reason": exc}) from exc


def count_records(path: str | Path, encoding: str) -> int:
    """How many data records ``iter_records`` will yield (for progress bars)."""
    return sum(1 for _record in iter_records(path, encoding))


# Cells a spreadsheet would run as a formula. Numbers and E.164 phones (+81…) are left alone so that
# exports stay re-importable; anything else starting with these gets a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9][0-9.,]*")


def defuse_formula(cell: str) -> str:
    if cell.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


class CsvWriter:
    """Writes rows in one of ENCODINGS; for CP932, unencodable characters become “?”.

    ``replaced_cells`` counts the cells that lost a character, so the operator can be told.
    """

    def __init__(self, path: str | Path, encoding: str):
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}")
        self.encoding = encoding
        self.replaced_cells = 0
        self.rows = 0
        self._check = encoding == "cp932"
        self._handle = open(path, "w", encoding=encoding, newline="", errors="strict")
        self._writer = csv.writer(self._handle)

    def writerow(self, cells: list[str]) -> None:
        cells = [defuse_formula(cell) for cell in cells]
        if self._check:
            cells = self._fit_cp932(cells)
        self._writer.writerow(cells)
        self.rows += 1

    def _fit_cp932(self, cells: list[str]) -> list[str]:
        try:
            "".join(cells).encode("cp932")  # nearly every row: one encode, no per-cell work
            return cells
        except UnicodeEncodeError:
            pass
        fitted = []
        for cell in cells:
            try:
                cell.encode("cp932")
            except UnicodeEncodeError:
                cell = cell.encode("cp932", errors="replace").decode("cp932")
                self.replaced_cells += 1
            fitted.append(cell)
        return fitted

    def close(self) -> None:
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def job_directory(workspace_id: int) -> Path:
    """Where a workspace's job files (uploads, error reports, exports) live; created on use."""
    from django.conf import settings

    directory = Path(settings.MEDIA_ROOT) / "jobs" / str(int(workspace_id))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def write_rows(path: str | Path, encoding: str, rows) -> CsvWriter:
    """Write all ``rows`` (header first) to ``path``; returns the closed writer for its counts."""
    with CsvWriter(path, encoding) as writer:
        for row in rows:
            writer.writerow(row)
    return writer


class _Line:
    """A file-like target for csv.writer that hands back each line it is given."""

    def write(self, text: str) -> str:
        return text


def encoded_rows(rows: Iterator[list[str]], encoding: str) -> Iterator[bytes]:
    """Rows as encoded CSV lines, for a streamed download."""
    writer = csv.writer(_Line())
    # CP932 cannot spell every character (emoji, some variant kanji); they become "?" rather than
    # failing half-way through a download.
    encoder = codecs.getincrementalencoder(encoding)(errors="replace")
    for row in rows:
        yield encoder.encode(writer.writerow(row))
