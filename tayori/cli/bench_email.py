"""`tayori bench email`: the delivery engine at full speed into Debian's smtp-sink.

A scratch workspace gets N members and a ~3 KB personalized Japanese mail with two tracked links;
`tayori worker` processes send it through a relay pointing at smtp-sink, with DKIM off and on,
while the bench trickles urgent transactional messages and measures their latency. In the same
run it measures the machine's ceilings — RSA-2048 signatures per second on all cores, and a
minimal pipelined client into the same smtp-sink — and prints the ratios as one JSON document.
"""

import asyncio
import json
import multiprocessing
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from typing import Annotated

import typer
from django.db import connection
from django.utils import timezone

from tayori.cli.bench import bench_app

TEMPLATE_HTML = "<html><body><h1>{{ member.name }}様</h1>" + (
    "<p>いつも便りをご利用いただきありがとうございます。冬のセールのお知らせです。"
    "会員さま限定の特別価格でご案内いたします。</p>\n" * 14) + (
    '<p><a href="https://shop.example.jp/sale">セール会場へ</a></p>'
    '<p><a href="https://shop.example.jp/new">新商品を見る</a></p>'
    "<p>{{ member.name }}様のポイント: {{ member.points }}</p></body></html>")
TEMPLATE_TEXT = "{{ member.name }}様\n" + "冬のセールのお知らせです。\n" * 10


def _members(workspace, count: int) -> None:
    """Insert members with one statement (generate_series / a recursive CTE)."""
    from tayori.members.models import Member

    table = Member._meta.db_table
    if connection.vendor == "postgresql":
        sql = f"""INSERT INTO {table} (workspace_id, email, phone, status, attributes,
                                       created_at, updated_at)
                  SELECT %s, 'm' || i || '@d' || (i %% 50) || '.example.jp', '', 'active',
                         jsonb_build_object('name', '会員' || i, 'points', i %% 1000, 'n', i),
                         now(), now()
                  FROM generate_series(1, %s) AS i"""
    else:
        sql = f"""WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < %s)
                  INSERT INTO {table} (workspace_id, email, phone, status, attributes,
                                       created_at, updated_at)
                  SELECT %s, 'm' || i || '@d' || (i %% 50) || '.example.jp', '', 'active',
                         json_object('name', '会員' || i, 'points', i %% 1000, 'n', i),
                         datetime('now'), datetime('now') FROM seq"""
    params = [workspace.pk, count] if connection.vendor == "postgresql" else [count, workspace.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _rsa_worker(seconds: float) -> int:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    digest, pad, sha = b"x" * 64, padding.PKCS1v15(), hashes.SHA256()
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        key.sign(digest, pad, sha)
        done += 1
    return done


def rsa_ceiling(seconds: float = 3.0, processes: int | None = None) -> float:
    """RSA-2048 signatures per second on all cores."""
    processes = processes or os.cpu_count() or 1
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return sum(pool.map(_rsa_worker, [seconds] * processes)) / seconds


def _pipelined_worker(args) -> int:
    port, seconds, connections, size = args

    async def one() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(b"EHLO bench\r\n")
        while (await reader.readline())[3:4] == b"-":
            pass
        commands = b"MAIL FROM:<b@example.jp>\r\nRCPT TO:<r@example.net>\r\nDATA\r\n"
        data = b"Subject: x\r\n\r\n" + b"x" * (size - 20) + b"\r\n.\r\n"
        writer.write(commands)
        sent, end = 0, time.perf_counter() + seconds
        while True:
            for _ in range(3):
                await reader.readline()
            more = time.perf_counter() < end
            writer.write(data + commands if more else data)
            await reader.readline()
            sent += 1
            if not more:
                break
        writer.write(b"QUIT\r\n")
        writer.close()
        return sent

    async def all_connections():
        return sum(await asyncio.gather(*(one() for _ in range(connections))))

    return asyncio.run(all_connections())


def pipelined_ceiling(port: int, *, seconds: float = 3.0, processes: int | None = None,
                      connections: int = 4, size: int = 6000) -> float:
    """Messages per second a minimal pipelined client pushes into smtp-sink on all cores."""
    processes = processes or os.cpu_count() or 1
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        sent = pool.map(_pipelined_worker, [(port, seconds, connections, size)] * processes)
    return sum(sent) / seconds


def _urgent(workspace, label: str, n) -> int:
    from tayori.delivery import sending

    return sending.enqueue_message(workspace, sending.Content(
        subject="【障害】決済の遅延について", text="{{ data.detail }}",
        from_address=f"ops@{label}.example.jp"), to=f"oncall{n}@example.net",
        data={"detail": "現在決済が遅延しています。"}, urgent=True).pk


def _run_send(workspace, segment, *, processes: int, lanes: int, batch: int, urgent_every: float,
              label: str, urgent=None) -> dict:
    """Start a bulk send, run workers until it is done, trickle urgent mail meanwhile.
    ``urgent(n)`` queues the n-th urgent message and returns its delivery id (default: straight
    through sending.enqueue_message; ``tayori bench api`` posts it to the API)."""
    urgent_one = urgent or (lambda n: _urgent(workspace, label, n))
    from tayori.delivery import queue, sending
    from tayori.delivery.models import Delivery

    content = sending.Content(subject="{{ member.name }}様 冬のセールのお知らせ", html=TEMPLATE_HTML,
                              text=TEMPLATE_TEXT, from_address=f"news@{label}.example.jp",
                              from_name="便りストア")
    source = sending.create_bulk(workspace, content, name=f"bench {label}", segment=segment)
    began = time.perf_counter()
    queue.start(source)
    fan_out = time.perf_counter() - began
    total = queue.progress(source)["queued"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = subprocess.Popen([sys.executable, "-m", "tayori", "worker", "--processes",
                                str(processes), "--lanes", str(lanes), "--batch", str(batch)])
    # The scheduler returns retried and waiting rows to the queue, as in production.
    scheduler = subprocess.Popen([sys.executable, "-m", "tayori", "scheduler"])
    started = time.perf_counter()
    while not Delivery.objects.filter(source=source).exclude(status="queued").exists():
        time.sleep(0.02)  # the workers are starting (Django, connections, compiling the source)
    ready = time.perf_counter()
    if urgent_every:  # one message first, so the trickle measures a running urgent lane
        warm = urgent_one("warm-up")
        while Delivery.objects.filter(pk=warm, status="queued").exists():
            time.sleep(0.02)
    urgent = []
    next_urgent = time.perf_counter()
    while True:
        now = time.perf_counter()
        if urgent_every and now >= next_urgent:
            urgent.append(urgent_one(len(urgent)))
            next_urgent = now + urgent_every
        left = Delivery.objects.filter(source=source, status__in=queue.WAITING).count()
        if not left:
            break
        time.sleep(0.05 if urgent_every else 0.5)
    elapsed = time.perf_counter() - ready
    time.sleep(0.5)  # let the last urgent messages go
    for process in (workers, scheduler):
        process.send_signal(signal.SIGTERM)
    for process in (workers, scheduler):
        process.wait(timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sent = Delivery.objects.filter(source=source, status="sent").count()
    urgent_rows = list(Delivery.objects.filter(pk__in=urgent, status="sent").order_by("pk"))
    latencies = sorted((d.sent_at - d.queued_at).total_seconds() * 1000 for d in urgent_rows)
    first = urgent_rows[0].queued_at if urgent_rows else None
    slowest = sorted(((d.sent_at - d.queued_at).total_seconds() * 1000,
                      (d.queued_at - first).total_seconds()) for d in urgent_rows)[-3:]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "messages": total, "sent": sent, "fan_out_s": round(fan_out, 2),
        "worker_start_s": round(ready - started, 2), "send_s": round(elapsed, 2),
        "messages_per_s": round(sent / elapsed),
        "worker_cpu_s": round(cpu, 1), "worker_peak_rss_mb": round(after.ru_maxrss / 1024),
        "urgent": {"count": len(urgent), "sent": len(latencies),
                   "p50_ms": round(statistics.median(latencies)) if latencies else None,
                   "p99_ms": round(latencies[min(len(latencies) - 1,
                                                 int(len(latencies) * 0.99))])
                   if latencies else None,
                   "slowest_ms_at_s": [[round(ms), round(at, 1)] for ms, at in slowest]},
    }


def _scheduled_starts(workspace, segment, count: int = 5) -> dict:
    """Five sources scheduled for the same minute: how late does the last one start?"""
    from concurrent.futures import ThreadPoolExecutor

    from tayori.delivery import sending
    from tayori.delivery.models import Source
    from tayori.delivery.scheduler import start_due

    at = timezone.now()
    sources = [sending.create_bulk(workspace, sending.Content(
        subject="予約配信", text="{{ member.name }}様", from_address="news@example.jp"),
        name=f"scheduled {i}", segment=segment, scheduled_at=at) for i in range(count)]
    with ThreadPoolExecutor(max_workers=count) as pool:
        start_due(now=at, pool=pool)
    starts = Source.objects.filter(pk__in=[s.pk for s in sources]).values_list("started_at",
                                                                              flat=True)
    late = max((start - at).total_seconds() for start in starts)
    Source.objects.filter(pk__in=[s.pk for s in sources]).update(status="cancelled")
    return {"sources": count, "all_started_within_s": round(late, 2)}


def _drop(workspace) -> None:
    """Delete the scratch workspace with set-based statements (the ORM cascade is per row)."""
    from django.db import transaction

    from tayori.delivery.models import Delivery, OutboxMessage, Source
    from tayori.members.models import Member

    with transaction.atomic(), connection.cursor() as cursor:
        for model in (OutboxMessage, Delivery, Source, Member):
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE workspace_id = %s",
                           [workspace.pk])
    workspace.delete()


@bench_app.command("email")
def email(
    members: Annotated[int, typer.Option(help="Members to send to (bulk, DKIM off).")] = 100_000,
    dkim_members: Annotated[int, typer.Option(help="Members for the DKIM-on run.")] = 20_000,
    processes: Annotated[int, typer.Option(help="Worker processes; 0 = one per core.")] = 0,
    lanes: Annotated[int, typer.Option(help="Bulk lanes (connections) per process.")] = 4,
    batch: Annotated[int, typer.Option(help="Rows per claim.")] = 500,
    urgent_every: Annotated[float, typer.Option(help="Seconds between urgent messages.")] = 0.1,
    keep: Annotated[bool, typer.Option(help="Keep the scratch workspace.")] = False,
):
    """Send N personalized mails into smtp-sink with DKIM off and on; print JSON."""
    from tayori.accounts.models import Workspace
    from tayori.delivery.dkim import generate_key
    from tayori.delivery.models import DeliverySettings, Relay, SenderDomain
    from tayori.delivery.smtp.sink import start_smtp_sink
    from tayori.lib import crypto
    from tayori.members.models import Attribute, Segment

    processes = processes or os.cpu_count() or 1
    sink, port = start_smtp_sink()
    workspace = Workspace.objects.create(name="bench email", slug=f"bench-email-{os.getpid()}")
    try:
        DeliverySettings.objects.create(workspace=workspace, mode="relays",
                                        tracking_host="t.example.jp")
        Relay.objects.create(workspace=workspace, name="smtp-sink", host="127.0.0.1", port=port,
                             tls="off", max_per_connection=1_000_000,
                             max_connections=processes * lanes + 1)
        SenderDomain.objects.create(workspace=workspace, domain="dkim.example.jp",
                                    selector="bench", rsa_key=crypto.encrypt(generate_key()))
        _members(workspace, max(members, dkim_members))
        Attribute.objects.create(workspace=workspace, key="n", label="n", type="number")
        everyone = Segment.objects.create(workspace=workspace, name="all", definition={
            "op": "and", "conditions": []})
        first = Segment.objects.create(workspace=workspace, name="dkim", definition={
            "op": "and", "conditions": [{"field": "n", "operator": "lte", "value": dkim_members}]})
        result = {"database": connection.vendor, "cores": os.cpu_count(), "processes": processes,
                  "lanes": lanes, "batch": batch,
                  "ceilings": {"rsa2048_signatures_per_s": round(rsa_ceiling()),
                               "pipelined_sink_messages_per_s": round(pipelined_ceiling(port))}}
        off = _run_send(workspace, everyone if members >= dkim_members else first,
                        processes=processes, lanes=lanes, batch=batch,
                        urgent_every=urgent_every, label="plain")
        on = _run_send(workspace, first, processes=processes, lanes=lanes, batch=batch,
                       urgent_every=urgent_every, label="dkim")
        ceilings = result["ceilings"]
        off["ratio_to_sink_ceiling"] = round(
            off["messages_per_s"] / ceilings["pipelined_sink_messages_per_s"], 3)
        on["ratio_to_rsa_ceiling"] = round(
            on["messages_per_s"] / ceilings["rsa2048_signatures_per_s"], 3)
        result["dkim_off"], result["dkim_on"] = off, on
        result["scheduled_starts"] = _scheduled_starts(workspace, first)
        result["load_average"] = os.getloadavg()
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
    finally:
        sink.terminate()
        if not keep:
            _drop(workspace)
