"""`tayori bench tracking`: click redirects per second served by one uvicorn worker over real
HTTP, and how long a hit takes to reach its hourly rollup.

The bench prepares its own database — a temporary SQLite file, or the PostgreSQL database named
by ``--database-url`` — migrated, with a source of three tracked links and N sent deliveries.
It starts ``uvicorn tayori.asgi:application`` as one process with the ingest writer thread on,
and, as the ceiling, the same uvicorn serving a trivial ASGI app that answers every request with
a 302. A minimal asyncio HTTP/1.1 client keeps several connections alive and asks for click
tokens made with ``delivery.tokens``; rounds alternate between the ceiling and Tayori so that the
machine's noise falls on both. A click is *cold* when its delivery was not clicked before in that
process (its source is looked up in the database) and *warm* when it was. Once the writer has
stored every click, probes — one per scratch source, so each has a Rollup row of its own — are
clicked, first alone and then under a cold load, and the bench polls the database until each
probe's Rollup row exists. Prints one JSON document.
"""

import asyncio
import contextlib
import datetime as dt
import importlib.util
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from tayori.cli.bench import bench_app

TARGET_CLICKS_PER_S = 2000
LINKS = ["https://shop.example.jp/sale?from=mail", "https://shop.example.jp/new",
         "https://shop.example.jp/guide"]
BROWSER = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
CEILING_APP = "tayori.cli.bench_tracking:ceiling"
TAYORI_APP = "tayori.asgi:application"
WITHOUT_WRITER_APP = "tayori.cli.bench_tracking:without_writer"
_CEILING_HEADERS = [(b"location", LINKS[0].encode() + b"&tayori_c=" + b"0" * 24),
                    (b"content-type", b"text/html; charset=utf-8"), (b"content-length", b"0")]


async def ceiling(scope, receive, send):
    """The least an ASGI app can do for a click: answer 302 without looking at anything."""
    await send({"type": "http.response.start", "status": 302, "headers": _CEILING_HEADERS})
    await send({"type": "http.response.body", "body": b""})


def without_writer():
    """Tayori's ASGI app with hits kept in memory, never written: what the endpoints cost
    without ingestion (a diagnosis, not a way to run). Served with uvicorn's --factory."""
    from django.conf import settings

    from tayori.asgi import application

    settings.TRACKING_WRITER = False
    return application


# --- the database ---------------------------------------------------------------------------

def use_database(url: str) -> None:
    """Point Django's default connection at ``url`` and migrate it. Django reads DATABASES once
    and keeps a connection per thread: both are reset here, before the bench's first query."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    from tayori.lib.config import database_from_url

    connections.close_all()
    settings.DATABASES["default"] = database_from_url(url)
    connections.__dict__.pop("settings", None)  # a cached_property: re-read with defaults
    connections._settings = None
    with contextlib.suppress(AttributeError):
        del connections["default"]
    call_command("migrate", verbosity=0)


def prepare(deliveries: int, probes: int) -> dict:
    """A scratch workspace: one source with LINKS and ``deliveries`` sent a day ago, and
    ``probes`` sources with one link and one delivery each."""
    from django.utils import timezone

    from tayori.accounts.models import Workspace
    from tayori.delivery.models import Delivery, Source
    from tayori.tracking.models import Link

    workspace = Workspace.objects.create(name="bench tracking",
                                         slug=f"bench-tracking-{os.getpid()}")
    sent_at = timezone.now() - dt.timedelta(days=1)  # not a scanner's seconds after sending

    def sources(count: int) -> list:
        return Source.objects.bulk_create(
            [Source(workspace=workspace, name="bench tracking", status=Source.Status.DONE,
                    from_address="news@example.jp", subject="冬のセール") for _ in range(count)])

    def send(source, count: int) -> list[int]:
        Delivery.objects.bulk_create(
            (Delivery(workspace=workspace, source=source, address=f"m{i}@d{i % 50}.example.jp",
                      status=Delivery.Status.SENT, sent_at=sent_at) for i in range(count)),
            batch_size=2000)
        return list(Delivery.objects.filter(source=source).order_by("pk")
                    .values_list("pk", flat=True))

    main, *probing = sources(1 + probes)
    Link.objects.bulk_create([Link(source=source, index=i, url=url)
                              for source in (main, *probing)
                              for i, url in enumerate(LINKS if source is main else LINKS[:1])])
    return {"workspace": workspace, "source": main.pk, "deliveries": send(main, deliveries),
            "probes": {source.pk: send(source, 1)[0] for source in probing}}


def drop(workspace) -> None:
    """Delete what the bench wrote, set-based (the ORM cascade goes row by row)."""
    from django.db import connection, transaction

    from tayori.cli.bench_email import _drop
    from tayori.delivery.models import Source
    from tayori.tracking.models import Breakdown, Event, Link, Response, Rollup

    with transaction.atomic(), connection.cursor() as cursor:
        for model in (Event, Response, Rollup, Breakdown):
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE workspace_id = %s",
                           [workspace.pk])
        cursor.execute(f"DELETE FROM {Link._meta.db_table} WHERE source_id IN "
                       f"(SELECT id FROM {Source._meta.db_table} WHERE workspace_id = %s)",
                       [workspace.pk])
    _drop(workspace)


# --- the server -----------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Uvicorn:
    """One uvicorn process (no --workers: the server is that process) serving ``app``."""

    def __init__(self, app: str, database_url: str, *, factory: bool = False):
        self.port = _free_port()
        env = {**os.environ, "TAYORI_DATABASE_URL": database_url, "TAYORI_LOG_LEVEL": "WARNING"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port",
             str(self.port), "--lifespan", "off", "--no-access-log", "--log-level", "warning",
             "--loop", "uvloop", *(["--factory"] if factory else [])], env=env)

    def wait(self, seconds: float = 60) -> None:
        """Until the server listens."""
        deadline = time.monotonic() + seconds
        while self.process.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not listen within {seconds} s")
            time.sleep(0.05)
        raise RuntimeError(f"uvicorn exited with {self.process.returncode}")

    def cpu_seconds(self) -> float:
        """CPU of the server process, all its threads (the ingest writer included)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the client -----------------------------------------------------------------------------

def request(path: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {BROWSER}\r\n"
            "Accept: */*\r\n\r\n").encode()


async def _response(reader: asyncio.StreamReader) -> int:
    """Read one response; its status."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        length = int(head[at + 17:head.index(b"\r\n", at + 2)])
        if length:
            await reader.readexactly(length)
    elif b"\r\ntransfer-encoding: chunked" in head:
        while size := int((await reader.readline()).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readline()
    return int(head[9:12])


class Workload:
    """Requests asked for in turn, across rounds and connections."""

    def __init__(self, requests: list[bytes]):
        self.requests = requests
        self.cursor = itertools.count()
        self.statuses: Counter = Counter()

    def next(self) -> bytes:
        return self.requests[next(self.cursor) % len(self.requests)]

    @property
    def asked(self) -> int:  # cold workloads wrap around (and warm up) past this
        return sum(self.statuses.values())


async def load(port: int, workload: Workload, seconds: float, connections: int,
               ok: int = 302) -> dict:
    """Ask for the workload's requests over keep-alive connections for ``seconds``; answers
    other than ``ok`` count as errors."""
    end = time.perf_counter() + seconds
    statuses: Counter = Counter()

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < end:
                writer.write(workload.next())
                statuses[await _response(reader)] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    workload.statuses.update(statuses)
    done = sum(statuses.values())
    return {"responses": done, "per_s": done / elapsed,
            "errors": done - statuses[ok]}


async def probe(port: int, probes: dict[int, bytes], every: float, accepted: dict) -> None:
    """Click each probe in turn, one every ``every`` seconds; note when each was answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for source_id, wire in probes.items():
            began = time.perf_counter()
            writer.write(wire)
            if await _response(reader) == 302:
                accepted[source_id] = time.perf_counter()
            await asyncio.sleep(max(0.0, every - (time.perf_counter() - began)))
    finally:
        writer.close()


class RollupWatch(threading.Thread):
    """Polls the database for the Rollup rows of accepted probes; notes when each appears."""

    def __init__(self, accepted: dict, interval: float = 0.005):
        super().__init__(daemon=True)
        self.accepted, self.interval = accepted, interval
        self.seen: dict[int, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        from django.db import connection

        from tayori.tracking.models import Kind, Rollup

        try:
            while not self.stopping.wait(self.interval):
                waiting = [s for s in list(self.accepted) if s not in self.seen]
                if waiting:
                    found = Rollup.objects.filter(source_id__in=waiting, kind=Kind.CLICK)
                    for source_id in found.values_list("source_id", flat=True):
                        self.seen[source_id] = time.perf_counter()
        finally:
            connection.close()

    def lags_ms(self) -> list[float]:
        return sorted((self.seen[s] - at) * 1000 for s, at in self.accepted.items()
                      if s in self.seen)


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(len(values) * fraction))]


# --- the bench ------------------------------------------------------------------------------

def run(database_url: str, *, deliveries: int, warm_deliveries: int, rounds: int,
        seconds: float, connections: int, lag_seconds: float, probes_per_s: float,
        without_writer: bool = False) -> dict:
    """Prepare, measure, clean up: the report as a dict."""
    import uvloop
    from django.db import connection

    from tayori.delivery import tokens

    use_database(database_url)
    probes = max(1, round(lag_seconds * probes_per_s))
    data = prepare(deliveries + warm_deliveries, 2 * probes)
    servers: dict[str, Uvicorn] = {}
    try:
        ids = data["deliveries"]
        cold = [request(f"/t/c/{tokens.make(tokens.CLICK, d, i % len(LINKS))}")
                for i, d in enumerate(ids[warm_deliveries:])]
        warm = [request(f"/t/c/{tokens.make(tokens.CLICK, d, i)}")
                for d in ids[:warm_deliveries] for i in range(len(LINKS))]
        probing = [{s: request(f"/t/c/{tokens.make(tokens.CLICK, d, 0)}")
                    for s, d in list(data["probes"].items())[half::2]} for half in (0, 1)]
        servers["ceiling"] = Uvicorn(CEILING_APP, database_url)
        servers["tayori"] = Uvicorn(TAYORI_APP, database_url)
        workloads = {  # name: (server, requests)
            "ceiling": (servers["ceiling"], Workload(cold[:1])),
            # Each delivery once, in turn: the server looks each one's source up.
            "cold": (servers["tayori"], Workload(cold)),
            # A few deliveries' links over and over: their sources are remembered.
            "warm": (servers["tayori"], Workload(warm)),
        }
        if without_writer:  # the same cold clicks on a server that keeps hits in memory
            servers["without_writer"] = Uvicorn(WITHOUT_WRITER_APP, database_url, factory=True)
            workloads["cold_without_writer"] = (servers["without_writer"], Workload(cold))
        for server in servers.values():
            server.wait()
        results: dict[str, list] = {name: [] for name in workloads}
        cpu: Counter = Counter()

        async def measure() -> None:
            for name, (server, workload) in workloads.items():  # imports, connections
                if name != "cold":  # (cold clicks would use up fresh deliveries)
                    await load(server.port, workload, min(seconds, 1.0), connections)
            for _round in range(rounds):
                for name, (server, workload) in workloads.items():
                    before = server.cpu_seconds()
                    results[name].append(await load(server.port, workload, seconds, connections))
                    cpu[name] += server.cpu_seconds() - before

        uvloop.run(measure())

        def answered() -> int:  # by Tayori's server: each one a click event to store
            return sum(workloads[name][1].statuses[302] for name in ("cold", "warm")) + sum(
                lag["accepted"] for lag in lags.values())

        lags: dict[str, dict] = {}
        began, backlog = time.monotonic(), answered() - _stored_clicks(data["workspace"], 0)
        _stored_clicks(data["workspace"], answered())  # lags are measured on a drained writer
        drained = time.monotonic() - began
        for name, busy, probes_ in (("idle", None, probing[0]),
                                    ("under_cold_load", workloads["cold"][1], probing[1])):
            lags[name] = uvloop.run(_lag(servers["tayori"].port, busy, probes_,
                                         lag_seconds=lag_seconds, probes_per_s=probes_per_s,
                                         connections=connections))
        stored = _stored_clicks(data["workspace"], answered())
        ceiling_per_s = statistics.median(r["per_s"] for r in results["ceiling"])
        report = {
            "database": connection.vendor, "cores": os.cpu_count(),
            "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
            "connections": connections, "rounds": rounds, "seconds_per_round": seconds,
            "deliveries": deliveries, "target_clicks_per_s": TARGET_CLICKS_PER_S,
            "ceiling": _summary(results["ceiling"], cpu["ceiling"]),
        }
        for name in list(workloads)[1:]:
            summary = _summary(results[name], cpu[name])
            summary["ratio_to_ceiling"] = round(summary["per_s"] / ceiling_per_s, 3)
            report[f"clicks_{name}"] = summary
        report["clicks_cold"]["fresh_deliveries_left"] = max(
            0, len(cold) - workloads["cold"][1].asked)
        report["rollup_lag"] = {"writer_backlog": backlog,
                                "writer_backlog_drained_s": round(drained, 1), **lags}
        report["events"] = {"clicks_answered": answered(), "click_events_stored": stored}
        report["load_average"] = [round(n, 2) for n in os.getloadavg()]
        return report
    finally:
        for server in servers.values():
            server.stop()
        drop(data["workspace"])


async def _lag(port: int, busy: Workload | None, probes: dict[int, bytes], *,
               lag_seconds: float, probes_per_s: float, connections: int) -> dict:
    """Probes clicked (during a load of ``busy``, if given); from each answer to its Rollup
    row."""
    accepted: dict[int, float] = {}
    watch = RollupWatch(accepted)
    watch.start()
    try:
        clicking = probe(port, probes, 1 / probes_per_s, accepted)
        if busy is None:
            await clicking
            under = None
        else:
            under, _ = await asyncio.gather(load(port, busy, lag_seconds, connections), clicking)
        deadline = time.perf_counter() + 30
        while len(watch.seen) < len(accepted) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
    finally:
        watch.stopping.set()
        watch.join()
    lags = watch.lags_ms()
    return {"probes": len(probes), "accepted": len(accepted), "seen": len(lags),
            "p50_ms": round(statistics.median(lags)) if lags else None,
            "p99_ms": round(_percentile(lags, 0.99)) if lags else None,
            "max_ms": round(lags[-1]) if lags else None,
            "load_clicks_per_s": round(under["per_s"]) if under else 0}


def _stored_clicks(workspace, answered: int, wait: float = 60) -> int:
    """Click events stored for the workspace, once the writer has caught up (or given up)."""
    from tayori.tracking.models import Event, Kind

    stored, deadline = 0, time.monotonic() + wait
    while time.monotonic() < deadline:
        stored = Event.objects.filter(workspace=workspace, kind=Kind.CLICK).count()
        if stored >= answered:
            break
        time.sleep(0.1)
    return stored


def _summary(rounds: list[dict], cpu_seconds: float) -> dict:
    done = sum(r["responses"] for r in rounds)
    return {"per_s": round(statistics.median(r["per_s"] for r in rounds)),
            "rounds_per_s": [round(r["per_s"]) for r in rounds],
            "errors": sum(r["errors"] for r in rounds),
            "server_cpu_us_per_response": round(cpu_seconds / done * 1e6) if done else None}


@bench_app.command("tracking")
def tracking(
    database_url: Annotated[str, typer.Option(
        help="PostgreSQL database to use (migrated first); default: a temporary SQLite file."
    )] = "",
    deliveries: Annotated[int, typer.Option(help="Deliveries clicked once each (cold).")] = 40_000,
    warm_deliveries: Annotated[int, typer.Option(help="Deliveries clicked again and again.")] = 300,
    rounds: Annotated[int, typer.Option(help="Rounds of each load; medians are reported.")] = 5,
    seconds: Annotated[float, typer.Option(help="Seconds per round.")] = 1.0,
    connections: Annotated[int, typer.Option(help="Keep-alive client connections.")] = 16,
    lag_seconds: Annotated[float, typer.Option(
        help="Seconds of probes, idle and then under a cold load.")] = 2.0,
    probes_per_s: Annotated[float, typer.Option(help="Probe clicks per second.")] = 20.0,
    without_writer: Annotated[bool, typer.Option(
        help="Also measure cold clicks on a server whose hits are never written.")] = False,
):
    """Click redirects per second on one uvicorn worker, and hit-to-rollup lag; print JSON."""
    with tempfile.TemporaryDirectory(prefix="tayori-bench-") as scratch:
        url = database_url or f"sqlite:///{Path(scratch) / 'bench.sqlite3'}"
        report = run(url, deliveries=deliveries, warm_deliveries=warm_deliveries, rounds=rounds,
                     seconds=seconds, connections=connections, lag_seconds=lag_seconds,
                     probes_per_s=probes_per_s, without_writer=without_writer)
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
