"""`tayori members import|export`: CSV import and export from the command line.

The commands create the same Job rows the UI does (so they appear on the jobs page and in the
audit log) and run them in this process with a progress bar instead of queueing them.
"""

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tayori.cli import app

members_app = typer.Typer(help="Import and export members as CSV.", no_args_is_help=True)
app.add_typer(members_app, name="members")
console = Console()

ENCODING_HELP = "auto, utf-8, utf-8-sig (UTF-8 with BOM) or cp932 (Shift_JIS)"
Workspace = Annotated[str, typer.Option("--workspace", "-w", help="Workspace slug.")]


def _workspace(slug: str):
    from tayori.accounts.models import Workspace

    workspace = Workspace.objects.filter(slug=slug).first()
    if workspace is None:
        console.print(f"[red]No workspace with the slug {slug!r}.[/]")
        raise typer.Exit(2)
    return workspace


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console)


@members_app.command("import")
def import_members(
    file: Annotated[Path, typer.Argument(help="The CSV file; the first line names the columns.")],
    workspace: Workspace,
    mode: Annotated[str, typer.Option(
        help="add, update, upsert, unsubscribe or suppress.")] = "upsert",
    encoding: Annotated[str, typer.Option(help=ENCODING_HELP)] = "auto",
    mapping: Annotated[list[str] | None, typer.Option(
        "--map", help="column=field, repeatable; column by header or 1-based number; "
        "field email, phone, status, an attribute key, or ignore.")] = None,
):
    """Import members from a CSV file; headers are mapped as in the UI."""
    from tayori.members import csvio, importing
    from tayori.members.models import Attribute

    ws = _workspace(workspace)
    try:
        chosen = csvio.resolve_encoding(file, encoding)
        headers = csvio.read_header(file, chosen)
    except (csvio.UnreadableFile, OSError) as exc:
        console.print(f"[red]Cannot read {file}:[/] {exc}")
        raise typer.Exit(1) from exc
    attributes = list(Attribute.objects.filter(workspace=ws))
    try:
        columns = importing.apply_overrides(importing.guess_mapping(headers, attributes),
                                            headers, mapping or [], attributes)
    except ValueError as exc:
        console.print(f"[red]--map:[/] {exc}")
        raise typer.Exit(2) from exc
    _show_mapping(headers, columns, csvio.label_of(chosen))
    problems = importing.check_mapping(columns, mode, attributes)
    if problems:
        for problem in problems:
            console.print(f"[red]{problem}[/]")
        raise typer.Exit(2)
    job = importing.create_job(ws, operator=None, path=file.resolve(), file_name=file.name,
                               encoding=chosen, detected=csvio.detect_encoding(file))
    job.options = {**job.options, "mapping": columns, "mode": mode, "started": True}
    job.save(update_fields=["options"])
    with _progress() as progress:
        bar = progress.add_task("Importing", total=None)
        job = importing.execute(job.pk, via="cli", on_progress=lambda j: progress.update(
            bar, total=j.total or None, completed=j.processed))
    counts = job.options.get("counts", {})
    console.print(", ".join(f"{name}: {counts.get(name, 0):,}" for name in (
        "created", "updated", "unchanged", "unsubscribed", "suppressed", "failed")))
    if job.output_path:
        console.print(f"Error report: {job.output_path}")


def _show_mapping(headers, columns, encoding_label):
    table = Table(title=f"Columns ({encoding_label})")
    table.add_column("Column")
    table.add_column("Field")
    for header, field in zip(headers, columns, strict=True):
        table.add_row(header, field or "[dim]ignored[/]")
    console.print(table)


@members_app.command("export")
def export_members(
    workspace: Workspace,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Where to write the CSV file.")] = None,
    encoding: Annotated[str, typer.Option(help="utf-8, utf-8-sig or cp932")] = "utf-8-sig",
    status: Annotated[str | None, typer.Option(help="Only members with this status.")] = None,
    columns: Annotated[str | None, typer.Option(
        help="Comma-separated columns (default: all).")] = None,
    mask: Annotated[bool, typer.Option(
        "--mask", help="Mask email, phone and PII attributes.")] = False,
):
    """Export members to CSV (all, or those with one status)."""
    from tayori.members import exporting
    from tayori.members.models import Attribute

    ws = _workspace(workspace)
    available = [key for key, _label in
                 exporting.column_choices(Attribute.objects.filter(workspace=ws))]
    chosen = [c.strip() for c in columns.split(",")] if columns else available
    unknown = [c for c in chosen if c not in available]
    if unknown:
        console.print(f"[red]Unknown columns:[/] {', '.join(unknown)}")
        raise typer.Exit(2)
    selection = {"kind": "status", "value": status} if status else {"kind": "all"}
    try:
        job = exporting.create_job(ws, operator=None, selection=selection, columns=chosen,
                                   encoding=encoding, include_pii=not mask)
    except exporting.BadSelection as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    with _progress() as progress:
        bar = progress.add_task("Exporting", total=None)
        job = exporting.execute(job.pk, via="cli", on_progress=lambda j: progress.update(
            bar, total=j.total or None, completed=j.processed))
    target = job.output_path
    if out is not None:
        shutil.copyfile(job.output_path, out)
        target = str(out)
    console.print(job.message)
    console.print(f"File: {target}")
