"""Crash safety: workers killed with SIGKILL again and again during a send to smtp-sink lose
nothing. Every recipient receives the mail at least once; only messages in flight at a kill may
arrive twice, so duplicates stay within kills × (lanes × batch)."""

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

import pytest
from django.db import connection

from tayori.delivery import queue, sending
from tayori.delivery.models import Delivery, DeliverySettings, Relay
from tayori.delivery.smtp.sink import start_smtp_sink
from tayori.members.models import Member, Segment

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(connection.vendor != "postgresql",
                                 reason="worker processes share the database: PostgreSQL")]

MEMBERS, KILLS, LANES, BATCH, LEASE = 3000, 5, 2, 50, 2


def _worker_env() -> dict:
    db = connection.settings_dict
    url = f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {**os.environ, "TAYORI_DATABASE_URL": url,
            "TAYORI_DELIVERY_LEASE_SECONDS": str(LEASE)}


def _arrivals(directory: str) -> Counter:
    counts = Counter()
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as dump:
            for line in dump:
                if line.startswith(b"X-Rcpt-Args: <"):
                    counts[line[14:].split(b">")[0].decode()] += 1
                    break
    return counts


def test_killed_workers_lose_nothing_and_duplicate_only_what_was_in_flight(workspace, capsys):
    dump_dir = tempfile.mkdtemp(prefix="tayori-crash-")
    sink, port = start_smtp_sink(dump_dir=dump_dir)
    try:
        DeliverySettings.objects.create(workspace=workspace, mode="relays")
        Relay.objects.create(workspace=workspace, name="sink", host="127.0.0.1", port=port,
                             tls="off")
        Member.objects.bulk_create([Member(workspace=workspace, email=f"c{i}@example.net")
                                    for i in range(MEMBERS)])
        segment = Segment.objects.create(workspace=workspace, name="all",
                                         definition={"op": "and", "conditions": []})
        source = sending.create_bulk(workspace, sending.Content(
            subject="お知らせ", text="本文 {{ email }}", from_address="news@example.jp"),
            name="crash", segment=segment)
        queue.start(source)
        command = [sys.executable, "-m", "tayori", "worker", "--processes", "1",
                   "--lanes", str(LANES), "--batch", str(BATCH)]
        rng, kills, deadline = random.Random(7), 0, time.monotonic() + 150
        while time.monotonic() < deadline:
            left = Delivery.objects.filter(source=source).exclude(status="sent").count()
            if not left:
                break
            worker = subprocess.Popen(command, env=_worker_env(), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            if kills < KILLS:
                # Kill once sending is under way: after some rows of this run were sent.
                sent_before = MEMBERS - left
                while (Delivery.objects.filter(source=source, status="sent").count()
                       < sent_before + 50) and worker.poll() is None:
                    time.sleep(0.02)
                time.sleep(rng.uniform(0, 0.3))
                worker.send_signal(signal.SIGKILL)
                kills += 1
            else:
                while (Delivery.objects.filter(source=source).exclude(status="sent").exists()
                       and time.monotonic() < deadline):
                    time.sleep(0.2)
                    queue.maintain()
                worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
            time.sleep(LEASE + 0.2)  # the dead worker's leases run out…
            queue.maintain()  # …and the scheduler's step returns its rows to the queue
        time.sleep(0.5)
    finally:
        sink.terminate()
        sink.wait()
    arrivals = _arrivals(dump_dir)
    shutil.rmtree(dump_dir)
    expected = {f"c{i}@example.net" for i in range(MEMBERS)}
    duplicates = sum(n - 1 for n in arrivals.values())
    with capsys.disabled():
        print(f"\ncrash test: {KILLS} kills, {len(arrivals)} of {MEMBERS} recipients reached, "
              f"{duplicates} duplicates (allowed {KILLS * LANES * BATCH})")
    assert kills == KILLS
    assert Delivery.objects.filter(source=source, status="sent").count() == MEMBERS
    assert set(arrivals) == expected
    assert duplicates <= KILLS * LANES * BATCH
