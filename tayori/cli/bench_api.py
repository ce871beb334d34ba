"""`tayori bench api`: transactional sends accepted per second by one uvicorn worker over real
HTTP, batch throughput, and how long an urgent message posted to the API takes to reach the
relay while a bulk send runs.

The bench prepares its own database (a temporary SQLite file, or ``--database-url``), a scratch
workspace and an API key. Rounds alternate between the ceiling — the same uvicorn serving a
trivial ASGI app that answers every POST 201 — and Tayori's ``POST /api/v1/messages``, each
request with its own Idempotency-Key, as a careful client sends them; medians are reported.
Batches of 1,000 are posted one after another. Then the engine benchmark's bulk send runs
(``tayori bench email``'s ``_run_send``: workers into smtp-sink) while urgent messages are
posted to the API; latency is from the API's accept (``queued_at``) to smtp-sink's 250
(``sent_at``). Prints one JSON document.
"""

import http.client
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from tayori.cli.bench import bench_app
from tayori.cli.bench_email import _members, _run_send
from tayori.cli.bench_tracking import TAYORI_APP, Uvicorn, Workload, load, use_database

CEILING_APP = "tayori.cli.bench_api:ceiling"
MESSAGE = {"from_address": "shop@bench.example.jp", "from_name": "便りストア",
           "subject": "ご注文ありがとうございます（{{ data.order }}）",
           "text": "{{ data.name }}様\nご注文 {{ data.order }} を承りました。\n"
                   "{% for item in data['items'] %}{{ item.name }} ×{{ item.qty }}\n{% endfor %}",
           "data": {"name": "山田太郎", "items": [{"name": "緑茶", "qty": 2},
                                                   {"name": "羊羹", "qty": 1}]}}
_CEILING_BODY = b'{"id": 1, "status": "queued"}'


async def ceiling(scope, receive, send):
    """The least an ASGI app can do for a POST: read the body, answer 201."""
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 201, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_CEILING_BODY)).encode())]})
    await send({"type": "http.response.body", "body": _CEILING_BODY})


def _post(path: str, body: dict, key: str, idempotency_key: str = "") -> bytes:
    data = json.dumps(body, ensure_ascii=False).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n")
    if idempotency_key:
        head += f"Idempotency-Key: {idempotency_key}\r\n"
    return (head + "\r\n").encode() + data


def _message(n: int) -> dict:
    return {**MESSAGE, "to": f"buyer{n}@d{n % 50}.example.jp",
            "data": {**MESSAGE["data"], "order": f"A-{n:08d}"}}


def _prepare(members: int):
    from tayori.accounts.models import ApiKey, Workspace
    from tayori.accounts.permissions import ALL
    from tayori.members.models import Segment

    workspace = Workspace.objects.create(name="bench api", slug=f"bench-api-{os.getpid()}")
    _key, raw = ApiKey.issue(workspace, "bench", ALL)
    _members(workspace, members)
    everyone = Segment.objects.create(workspace=workspace, name="all",
                                      definition={"op": "and", "conditions": []})
    return workspace, raw, everyone


def _batches(port: int, key: str, count: int, size: int, start: int) -> list[float]:
    """Messages per second of each batch call."""
    rates = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    for b in range(count):
        body = {"messages": [_message(start + b * size + i) for i in range(size)]}
        began = time.perf_counter()
        connection.request("POST", "/api/v1/messages/batch", json.dumps(body).encode(),
                           {"Authorization": f"Bearer {key}",
                            "Content-Type": "application/json"})
        answer = connection.getresponse()
        results = json.loads(answer.read())["results"]
        elapsed = time.perf_counter() - began
        if answer.status != 200 or any(r["status"] != "queued" for r in results):
            raise RuntimeError(f"batch refused: {answer.status} {results[:2]}")
        rates.append(size / elapsed)
    connection.close()
    return rates


def _urgent_poster(port: int, key: str):
    """urgent(n) for the engine benchmark: POST one urgent message, return its delivery id."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def urgent(n) -> int:
        body = {"to": f"oncall{n}@example.net", "priority": "urgent",
                "from_address": "ops@bench.example.jp", "subject": "【障害】決済の遅延について",
                "text": "{{ data.detail }}", "data": {"detail": "現在決済が遅延しています。"}}
        connection.request("POST", "/api/v1/messages", json.dumps(body).encode(),
                           {"Authorization": f"Bearer {key}",
                            "Content-Type": "application/json",
                            "Idempotency-Key": f"urgent-{n}-{time.time_ns()}"})
        answer = connection.getresponse()
        created = json.loads(answer.read())
        if answer.status != 201:
            raise RuntimeError(f"urgent message refused: {answer.status} {created}")
        return created["id"]

    return urgent


def run(database_url: str, *, rounds: int, seconds: float, connections: int, batches: int,
        batch_size: int, members: int, processes: int) -> dict:
    import uvloop
    from django.db import connection

    from tayori.cli.bench_email import _drop
    from tayori.delivery.models import Delivery, DeliverySettings, Relay
    from tayori.delivery.smtp.sink import start_smtp_sink

    use_database(database_url)
    os.environ["TAYORI_DATABASE_URL"] = database_url  # for the worker processes
    os.environ["TAYORI_API_RATE_LIMIT"] = "0"  # the bench measures sending, not the limiter
    workspace, key, everyone = _prepare(members)
    servers = {"ceiling": Uvicorn(CEILING_APP, database_url),
               "tayori": Uvicorn(TAYORI_APP, database_url)}
    sink = None
    try:
        for server in servers.values():
            server.wait()
        expected = int(rounds * seconds * 2_000) + 1_000  # more than one server can answer
        singles = Workload([_post("/api/v1/messages", _message(n), key, f"bench-{n}")
                            for n in range(expected)])
        ceiling_load = Workload([_post("/api/v1/messages", _message(0), key)])
        results: dict[str, list] = {"ceiling": [], "single": []}

        async def measure() -> None:
            await load(servers["ceiling"].port, ceiling_load, 0.5, connections, ok=201)
            for _round in range(rounds):
                results["ceiling"].append(await load(servers["ceiling"].port, ceiling_load,
                                                     seconds, connections, ok=201))
                results["single"].append(await load(servers["tayori"].port, singles, seconds,
                                                    connections, ok=201))

        uvloop.run(measure())
        batch_rates = _batches(servers["tayori"].port, key, batches, batch_size,
                               start=expected)
        # The sends above stay out of the engine run: only the bulk send and the urgent trickle.
        Delivery.objects.filter(workspace=workspace, status="queued").update(status="cancelled")
        sink, port = start_smtp_sink()
        DeliverySettings.objects.create(workspace=workspace, mode="relays")
        Relay.objects.create(workspace=workspace, name="smtp-sink", host="127.0.0.1", port=port,
                             tls="off", max_per_connection=1_000_000,
                             max_connections=processes * 4 + 1)
        engine = _run_send(workspace, everyone, processes=processes, lanes=4, batch=500,
                           urgent_every=0.1, label="api",
                           urgent=_urgent_poster(servers["tayori"].port, key))
        ceiling_per_s = statistics.median(r["per_s"] for r in results["ceiling"])
        single_per_s = statistics.median(r["per_s"] for r in results["single"])
        return {
            "database": connection.vendor, "cores": os.cpu_count(), "connections": connections,
            "rounds": rounds, "seconds_per_round": seconds,
            "ceiling_trivial_asgi_per_s": round(ceiling_per_s),
            "single_sends": {
                "accepted_per_s": round(single_per_s),
                "per_round": [round(r["per_s"]) for r in results["single"]],
                "errors": sum(r["errors"] for r in results["single"]),
                "ratio_to_ceiling": round(single_per_s / ceiling_per_s, 3)},
            "batch": {"size": batch_size, "calls": batches,
                      "messages_per_s": round(statistics.median(batch_rates)),
                      "per_call": [round(r) for r in batch_rates]},
            "urgent_during_bulk": {"bulk_messages": engine["messages"],
                                   "bulk_messages_per_s": engine["messages_per_s"],
                                   **engine["urgent"]},
            "load_average": [round(n, 2) for n in os.getloadavg()],
        }
    finally:
        for server in servers.values():
            server.stop()
        if sink is not None:
            sink.terminate()
        _drop(workspace)


@bench_app.command("api")
def api(
    database_url: Annotated[str, typer.Option(
        help="PostgreSQL database to use (migrated first); default: a temporary SQLite file."
    )] = "",
    rounds: Annotated[int, typer.Option(help="Rounds of single sends; medians reported.")] = 5,
    seconds: Annotated[float, typer.Option(help="Seconds per round.")] = 2.0,
    connections: Annotated[int, typer.Option(help="Keep-alive client connections.")] = 8,
    batches: Annotated[int, typer.Option(help="Batch calls.")] = 5,
    batch_size: Annotated[int, typer.Option(help="Messages per batch call.")] = 1_000,
    members: Annotated[int, typer.Option(help="Members of the bulk send.")] = 20_000,
    processes: Annotated[int, typer.Option(help="Worker processes; 0 = one per core.")] = 0,
):
    """Accepted sends per second, batch throughput, urgent latency under bulk; print JSON."""
    with tempfile.TemporaryDirectory(prefix="tayori-bench-") as scratch:
        url = database_url or f"sqlite:///{Path(scratch) / 'bench.sqlite3'}"
        report = run(url, rounds=rounds, seconds=seconds, connections=connections,
                     batches=batches, batch_size=batch_size, members=members,
                     processes=processes or os.cpu_count() or 1)
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
