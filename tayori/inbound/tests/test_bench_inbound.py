"""`tayori bench inbound` runs end to end with tiny counts (it works; speed is its own business),
and the reports it sends read as the kinds they stand for."""

import json
import subprocess
import sys
from collections import Counter

import pytest
from django.db import connection

from tayori.cli import bench_inbound
from tayori.delivery.rendering import MessageSpec, compile_message
from tayori.inbound import dsn


def _database_url() -> list[str]:
    """The test database on PostgreSQL (the bench's own rows are removed afterwards); on SQLite
    the bench makes its own temporary file, as it does by default."""
    if connection.vendor != "postgresql":
        return []
    s = connection.settings_dict
    return ["--database-url",
            f"postgresql://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"]


@pytest.mark.django_db(transaction=True)
def test_the_bench_stores_every_bounce_it_was_answered_250_for():
    done = subprocess.run(
        [sys.executable, "-m", "tayori", "bench", "inbound", "--bounces", "20", "--rounds", "1",
         "--connections", "2", "--json", *_database_url()],
        capture_output=True, text=True, timeout=180, check=True)
    report = json.loads(done.stdout)
    assert report["database"] == connection.vendor
    for name in ("ceiling_sink", "ceiling_parse", "tayori"):
        assert report[name]["per_s"] > 0, report[name]
    tayori = report["tayori"]
    assert tayori["answered_250"] == 20 and tayori["refused"] == {}
    assert report["ceiling_sink"]["refused"] == {}
    assert {"ratio_to_sink", "ratio_to_parse", "mx_cpu_us_per_report",
            "client_cpu_us_per_message", "meets_target"} <= tayori.keys()
    stored = report["stored"]
    # 10 warm-up reports (unknown users) and the 20 measured, whose auto-reply makes no row.
    assert stored["all_stored"], stored
    assert stored["bounce_rows"] == stored["expected_bounce_rows"] == 29
    assert stored["reasons"] == {"userunknown": 23, "mailboxfull": 4, "filtered": 2}
    assert stored["suppressions"] == stored["members_bounced"] == 23
    assert report["reports"]["mix"]["autoreply"] == 1


def test_each_report_reads_as_the_kind_it_stands_for():
    spec = {"from_address": bench_inbound.FROM_ADDRESS, "subject": bench_inbound.SUBJECT,
            "text": bench_inbound.TEXT, "tracking_host": bench_inbound.TRACKING_HOST,
            "bounce_domain": bench_inbound.BOUNCE_DOMAIN}
    compiled = {charset: compile_message(MessageSpec(**spec, charset=charset))
                for charset in ("utf-8", "iso-2022-jp")}
    rows = [(100 + i, f"m{i}@docomo.ne.jp" if bench_inbound.kind_of(i) == "docomo_filtered"
             else f"m{i}@d{i}.example.jp", f"会員{i}") for i in range(40)]
    made = bench_inbound.originals(compiled, rows)
    read = Counter()
    for report, (delivery_id, address, _name) in zip(bench_inbound.reports(made), rows,
                                                      strict=True):
        assert report.delivery_id == delivery_id
        assert report.rcpt.startswith("bounce+")
        assert report.rcpt.endswith(f"@{bench_inbound.BOUNCE_DOMAIN}")
        assert 2500 < len(report.raw) < 5500, (report.kind, len(report.raw))
        parsed = dsn.parse(report.raw)
        expected = bench_inbound.EXPECTED[report.kind]
        if expected is None:
            assert parsed.kind == "autoreply" and not parsed.failures
        else:
            assert [(f.recipient, f.reason) for f in parsed.failures] == [(address, expected)]
        read[report.kind] += 1
    assert read == {"postfix_userunknown": 24, "isp_mailboxfull": 8, "docomo_filtered": 4,
                    "exim_userunknown": 1, "qmail_userunknown": 1, "autoreply": 2}
