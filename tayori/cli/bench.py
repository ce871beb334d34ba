"""`tayori bench members`: import N generated members from CSV and count a segment over them.

Runs against the configured database (meant for PostgreSQL) in a scratch workspace that is removed
afterwards. Next to Tayori's figures it measures, in the same run, what the machine can do at best
with the same rows — the database's raw bulk-load rate (PostgreSQL ``COPY``, SQLite ``executemany``
into a scratch table) and Python's bare CSV parse rate — so results from noisy, shared machines can
be read as ratios. Prints one JSON document.
"""

import csv
import datetime as dt
import json
import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from tayori.cli import app

bench_app = typer.Typer(help="Benchmarks (see bench/README.md).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

PREFECTURES = [
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県",
    "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県",
    "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県",
    "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県",
    "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
]
HEADER = ["メールアドレス", "電話番号", "氏名", "都道府県", "誕生日", "ポイント", "入会日"]
ATTRIBUTES = [  # key, label, type
    ("name", "氏名", "text"), ("pref", "都道府県", "choice"), ("birthday", "誕生日", "date"),
    ("points", "ポイント", "number"), ("joined", "入会日", "date"),
]
# Three conditions of three kinds: a choice, a number range and a relative date.
SEGMENT = {"op": "and", "conditions": [
    {"field": "pref", "operator": "in", "value": ["東京都", "神奈川県", "大阪府"]},
    {"field": "points", "operator": "gte", "value": 500},
    {"field": "joined", "operator": "within_last_days", "value": 365},
]}


def generate(path: Path, rows: int, seed: int = 2) -> None:
    """Write ``rows`` plausible, distinct members (every email and phone unique and valid)."""
    rng = random.Random(seed)
    today = dt.date.today()
    weights = [5 if p in ("東京都", "神奈川県", "大阪府", "愛知県") else 1 for p in PREFECTURES]
    prefectures = rng.choices(PREFECTURES, weights=weights, k=min(rows, 100_000))
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(rows):
            n = i // 3
            mobile = f"{('090', '080', '070')[i % 3]}{1 + n % 9}{n // 9:07d}"
            phone = f"{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}" if i % 2 else mobile
            birthday = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(365 * 55))
            joined = today - dt.timedelta(days=rng.randrange(3650))
            writer.writerow([f"member{i}@example{i % 50}.jp", phone, f"会員 {i}",
                             prefectures[i % len(prefectures)], birthday.isoformat(),
                             rng.randrange(2000), joined.strftime("%Y/%m/%d")])


def _create_workspace():
    from tayori.accounts.bootstrap import create_workspace
    from tayori.members.models import Attribute

    workspace = create_workspace(f"Benchmark {dt.datetime.now():%Y-%m-%d %H:%M:%S}",
                                 slug="bench")
    for position, (key, label, kind) in enumerate(ATTRIBUTES):
        Attribute.objects.create(workspace=workspace, key=key, label=label, type=kind,
                                 position=position,
                                 choices=PREFECTURES if kind == "choice" else [])
    return workspace


def _drop_workspace(workspace) -> None:
    """Delete the scratch workspace with set-based statements (the ORM cascade is per row)."""
    from django.db import connection, transaction

    from tayori.members.models import ConsentRecord, Job, Member

    with transaction.atomic(), connection.cursor() as cursor:
        for model in (ConsentRecord, Member, Job):
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE workspace_id = %s",
                           [workspace.pk])
    workspace.delete()


def _ceiling_copy(path: Path) -> dict:
    """The database's bulk-load rate for the same file, into a scratch table, nothing else."""
    from django.db import connection, transaction

    columns = "email text, phone text, name text, pref text, birthday text, points text, joined text"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE bench_ceiling ({columns})")
        started = time.perf_counter()
        if connection.vendor == "postgresql":
            with open(path, "rb") as handle, cursor.cursor.copy(
                    "COPY bench_ceiling FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                while block := handle.read(1 << 20):
                    copy.write(block)
            method = "COPY FROM STDIN (csv)"
        else:
            with open(path, encoding="utf-8", newline="") as handle:
                reader = csv.reader(handle)
                next(reader)
                cursor.executemany("INSERT INTO bench_ceiling VALUES (%s, %s, %s, %s, %s, %s, %s)",
                                   reader)
            method = "executemany INSERT"
        seconds = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_ceiling")
    return {"method": method, "seconds": round(seconds, 3)}


def _csv_parse_seconds(path: Path) -> float:
    from tayori.members import csvio

    started = time.perf_counter()
    for _record in csvio.iter_records(path, "utf-8"):
        pass
    return time.perf_counter() - started


class _PostgresCpu:
    """CPU used by this process's database sessions, read from /proc while work runs.

    Only backends of the benchmark's database on this machine are counted; they are sampled
    every 0.2 s because the import's extra connections end (and vanish from /proc) with it.
    """

    def __init__(self, database: str):
        self.marker = f" {database} "
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _sample(self) -> dict[int, int]:
        found = {}
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if self.marker not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    continue
                parts = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                found[int(proc.name)] = int(parts[11]) + int(parts[12])  # utime + stime
            except (OSError, IndexError, ValueError):
                continue
        return found

    def _poll(self) -> None:
        while not self.stopped.wait(0.2):
            self.last.update(self._sample())

    def __enter__(self):
        self.first = self._sample()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()
        self.last.update(self._sample())

    @property
    def seconds(self) -> float | None:
        if not self.last:
            return None
        return sum(t - self.first.get(pid, 0) for pid, t in self.last.items()) / self.ticks


def _timed(work) -> tuple[object, dict]:
    """Run ``work``; return its result and where the time went: wall clock, this process's CPU
    (all threads) and its PostgreSQL sessions' CPU when the server runs on this machine. Wall
    time beyond both is waiting (disk, locks, or other programs on a shared machine)."""
    from django.db import connection

    database = connection.settings_dict["NAME"] if connection.vendor == "postgresql" else ""
    cpu_before = time.process_time()
    started = time.perf_counter()
    with _PostgresCpu(database) as postgres:
        result = work()
    wall = time.perf_counter() - started
    pg = postgres.seconds if database else None
    return result, {
        "seconds": round(wall, 2),
        "python_cpu_seconds": round(time.process_time() - cpu_before, 2),
        "postgres_cpu_seconds": round(pg, 2) if pg is not None else None,
    }


def _import(workspace, path: Path, chunk_rows: int) -> tuple[dict, dict]:
    from tayori.members import csvio, importing
    from tayori.members.models import Attribute

    attributes = list(Attribute.objects.filter(workspace=workspace))
    encoding = csvio.resolve_encoding(path)
    mapping = importing.guess_mapping(csvio.read_header(path, encoding), attributes)
    job = importing.create_job(workspace, operator=None, path=path, file_name=path.name,
                               encoding=encoding, detected=encoding)
    job.options = {**job.options, "mapping": mapping, "mode": "upsert", "started": True}
    job.save(update_fields=["options"])
    job, timing = _timed(lambda: importing.execute(job.pk, chunk_rows=chunk_rows, via="bench"))
    return timing, job.options["counts"]


def _segment_counter(workspace):
    """A function counting the benchmark segment, and how it is counted."""
    try:
        from tayori.members.segments import segment_queryset
    except ImportError:
        segment_queryset = None
    if segment_queryset is not None:
        return (lambda: segment_queryset(workspace, SEGMENT).count()), "segments.segment_queryset"
    from tayori.members.models import Member

    since = (dt.date.today() - dt.timedelta(days=365)).isoformat()
    query = Member.objects.filter(workspace=workspace, attributes__pref__in=SEGMENT[
        "conditions"][0]["value"], attributes__points__gte=500, attributes__joined__gte=since)
    return query.count, "equivalent ORM filter (tayori.members.segments not available)"


def _analyze() -> None:
    from django.db import connection

    from tayori.members.models import Member

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Member._meta.db_table}")


@bench_app.command("members")
def members(
    rows: Annotated[int, typer.Option(help="Members to generate and import.")] = 1_000_000,
    runs: Annotated[int, typer.Option(help="Segment counts to take the median of.")] = 5,
    chunk_rows: Annotated[int, typer.Option(help="Rows per import chunk.")] = 2000,
    rerun: Annotated[bool, typer.Option(
        help="Import the same file a second time (all rows unchanged) and time it too.")] = False,
    keep: Annotated[bool, typer.Option(help="Keep the scratch workspace and file.")] = False,
):
    """Import N generated members from CSV, then count a three-condition segment over them."""
    from django.db import connection

    notes = []
    if connection.vendor != "postgresql":
        notes.append(f"The database is {connection.vendor}, not PostgreSQL: the targets "
                     "(1,000,000 rows in 60 s, count in 300 ms) are meant for PostgreSQL.")
    workdir = Path(tempfile.mkdtemp(prefix="tayori-bench-"))
    path = workdir / "members.csv"
    started = time.perf_counter()
    generate(path, rows)
    generated = time.perf_counter() - started
    workspace = _create_workspace()
    try:
        ceiling = _ceiling_copy(path)
        parse = _csv_parse_seconds(path)
        timing, counts = _import(workspace, path, chunk_rows)
        seconds = timing["seconds"]
        report = {
            "database": connection.vendor, "rows": rows, "cpus": os.cpu_count(),
            "load_average": [round(n, 1) for n in os.getloadavg()],
            "file_mb": round(path.stat().st_size / 1e6, 1), "generate_seconds": round(generated, 2),
            "import": {**timing, "rows_per_second": round(rows / seconds), "counts": counts,
                       "target_seconds_for_1m": 60},
        }
        if rerun:
            again, again_counts = _import(workspace, path, chunk_rows)
            report["reimport_unchanged"] = {**again,
                                            "rows_per_second": round(rows / again["seconds"]),
                                            "counts": again_counts}
        _analyze()
        count, how = _segment_counter(workspace)
        timings, matched = [], None
        for _run in range(runs):
            begun = time.perf_counter()
            matched = count()
            timings.append((time.perf_counter() - begun) * 1000)
        report["segment_count"] = {
            "how": how, "definition": SEGMENT, "matched": matched,
            "median_ms": round(statistics.median(timings), 1),
            "runs_ms": [round(t, 1) for t in timings], "target_ms": 300}
        report["ceiling"] = {
            **ceiling, "rows_per_second": round(rows / ceiling["seconds"]),
            "csv_parse_seconds": round(parse, 2),
            "csv_parse_rows_per_second": round(rows / parse)}
        report["ratio_import_to_copy"] = round(seconds / ceiling["seconds"], 1)
        report["projected_1m_import_seconds"] = round(seconds * 1_000_000 / rows, 1)
        report["notes"] = notes
    finally:
        if keep:
            notes.append(f"Kept workspace {workspace.slug!r} and {path}.")
        else:
            _drop_workspace(workspace)
            path.unlink(missing_ok=True)
            workdir.rmdir()
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
