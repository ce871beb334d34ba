"""`tayori bench tracking` runs end to end with tiny counts (it works; speed is its own business),
and the lean ASGI path it measures answers opens and clicks as the Django views do."""

import asyncio
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection

from tayori.asgi import django_application
from tayori.delivery import tokens
from tayori.tracking import fast, ingest
from tayori.tracking.models import Event

pytestmark = pytest.mark.django_db(transaction=True)
BROWSER = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")


def _database_url() -> list[str]:
    """The test database on PostgreSQL (the bench's own rows are removed afterwards); on SQLite
    the bench makes its own temporary file, as it does by default."""
    if connection.vendor != "postgresql":
        return []
    s = connection.settings_dict
    return ["--database-url",
            f"postgresql://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"]


def test_the_bench_measures_clicks_ceiling_and_rollup_lag():
    done = subprocess.run(
        [sys.executable, "-m", "tayori", "bench", "tracking", "--deliveries", "200",
         "--warm-deliveries", "20", "--rounds", "1", "--seconds", "0.3", "--lag-seconds", "0.3",
         "--probes-per-s", "10", "--connections", "2", *_database_url()],
        capture_output=True, text=True, timeout=180, check=True)
    report = json.loads(done.stdout)
    assert report["database"] == connection.vendor
    for name in ("ceiling", "clicks_cold", "clicks_warm"):
        assert report[name]["per_s"] > 0 and report[name]["errors"] == 0, report[name]
    assert report["clicks_cold"]["ratio_to_ceiling"] > 0
    for phase in ("idle", "under_cold_load"):
        lag = report["rollup_lag"][phase]
        assert lag["probes"] == lag["accepted"] == lag["seen"] == 3, lag
        assert 0 < lag["p50_ms"] <= lag["p99_ms"]
    events = report["events"]
    assert events["click_events_stored"] == events["clicks_answered"] > 0


# --- the lean path --------------------------------------------------------------------------

@pytest.fixture
def lean(sent):
    """tayori.asgi's lean path, with a lookup thread of its own that closes its connection
    when the test ends; nothing remembered (ids start again in every test database)."""
    fast._sources.clear()
    fast._links.clear()
    pool = ThreadPoolExecutor(max_workers=1)
    yield fast.lean(django_application, pool=pool)
    pool.submit(lambda: connection.close()).result()  # that thread's own connection
    pool.shutdown()


async def acall(app, path: str, method: str = "GET", **headers) -> tuple[int, dict, bytes]:
    headers = {"host": "127.0.0.1", "user-agent": BROWSER, **headers}
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("203.0.113.9", 50000),
             "server": ("127.0.0.1", 8000),
             "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]}
    sent, asked = [], asyncio.Event()

    async def receive():
        if not asked.is_set():
            asked.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start, *bodies = sent
    return (start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]},
            b"".join(b.get("body", b"") for b in bodies))


def call(app, path: str, method: str = "GET", **headers) -> tuple[int, dict, bytes]:
    return asyncio.run(acall(app, path, method, **headers))


def test_a_click_gets_the_same_redirect_and_headers_as_from_django(sent, lean):
    path = sent["taro@example.jp"].clicks[0]
    ours, django = call(lean, path), call(django_application, path)
    assert ours[0] == django[0] == 302
    assert ours[1] == django[1]  # Location with the same conversion token, security headers
    assert parse_qs(urlsplit(ours[1]["location"]).query)["x"] == ["1"]
    assert ingest.flush() == 2
    assert {(e.kind, e.link_index, e.ip) for e in Event.objects.all()} == {
        ("click", 0, "203.0.113.0")}  # the workspace keeps networks only


def test_the_open_pixel_is_the_same_image_and_a_head_request_is_a_machine(sent, lean):
    path = sent["hanako@example.jp"].open
    ours, django = call(lean, path), call(django_application, path)
    assert ours == django and ours[2] == fast.PIXEL
    assert call(lean, path, "HEAD")[0] == 200
    forged = call(lean, path.replace(".gif", "00.gif"))
    assert forged[:2] == (200, ours[1])  # an image all the same
    ingest.flush()
    assert sorted(Event.objects.values_list("kind", "machine")) == [
        ("open", ""), ("open", ""), ("open", "head")]


def test_refused_clicks_and_unusual_requests_go_to_django(sent, lean):
    mail = sent["jiro@example.jp"]
    tampered = mail.clicks[1][:-1] + ("0" if mail.clicks[1][-1] != "0" else "1")
    unknown_link = f"/t/c/{tokens.make(tokens.CLICK, mail.delivery.pk, 7)}"
    for path in (tampered, unknown_link, "/t/c/zz"):
        status, headers, _body = call(lean, path)
        assert status == 404 and "set-cookie" in headers  # Django's page, with its CSRF cookie
    assert call(lean, mail.open, "POST")[0] == call(django_application, mail.open, "POST")[0]
    assert call(lean, mail.clicks[0], host="evil.example")[0] == 400
    assert ingest.flush() == 0


def test_the_client_address_behind_a_trusted_proxy(sent, lean, settings):
    settings.TRUSTED_PROXIES = ["203.0.113.0/24"]
    call(lean, sent["taro@example.jp"].clicks[1], x_forwarded_for="198.51.100.77")
    ingest.flush()
    assert Event.objects.get().ip == "198.51.100.0"


def test_clicks_arriving_together_share_one_lookup(sent, lean, monkeypatch):
    asked = []
    remember = fast.remember_sources
    monkeypatch.setattr(fast, "remember_sources", lambda ids: (asked.append(ids), remember(ids)))
    paths = [mail.clicks[i] for mail in sent.values() for i in (0, 1)]

    async def together():
        return await asyncio.gather(*(acall(lean, path) for path in paths))

    assert [status for status, _h, _b in asyncio.run(together())] == [302] * len(paths)
    assert sorted(map(sorted, asked)) == [sorted(m.delivery.pk for m in sent.values())]
    assert ingest.flush() == len(paths)
