"""Every sample report in corpus/ reads as a human reads it: the manifest (expected.json) says
what kind of message each is, who failed and why, and which message of ours it returns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tayori.inbound import dsn
from tayori.inbound.reasons import REASONS

CORPUS = Path(__file__).parent / "corpus"
MANIFEST = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
FAMILIES = {"postfix", "exim", "sendmail", "qmail", "exchange", "gmail", "outlook", "yahoo",
            "docomo", "au", "softbank", "ses", "rfc3464", "autoreply", "arf", "other"}
KINDS = {"bounce", "delay", "complaint", "autoreply", "other"}


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_it_reads_the_sample_as_expected(name):
    expected = MANIFEST[name]
    report = dsn.parse((CORPUS / name).read_bytes())

    assert report.kind == expected["kind"]
    assert {(f.recipient, f.reason, f.hard) for f in report.failures} == {
        (f["recipient"], f["reason"], f["hard"]) for f in expected.get("failures", [])}
    for field in ("original_message_id", "original_return_path", "feedback_type"):
        if field in expected:
            assert getattr(report, field) == expected[field], field
    if "original_recipients" in expected:
        assert report.original_recipients[:len(expected["original_recipients"])] == \
            expected["original_recipients"]


def test_the_corpus_covers_every_family():
    files = {path.name for path in CORPUS.glob("*.eml")}
    assert len(files) >= 60
    assert files == set(MANIFEST), "every sample has an expectation and every expectation a file"
    counts = {family: 0 for family in FAMILIES}
    for expected in MANIFEST.values():
        counts[expected["family"]] += 1
    assert set(counts) == FAMILIES and all(counts.values()), counts
    assert counts["docomo"] >= 4 and counts["au"] >= 4 and counts["softbank"] >= 4


def test_the_manifest_speaks_the_vocabulary():
    for name, expected in MANIFEST.items():
        assert expected["kind"] in KINDS, name
        for failure in expected.get("failures", []):
            assert failure["reason"] in REASONS, name
        if expected["kind"] in ("bounce", "delay"):
            assert expected["failures"], f"{name}: a bounce names who failed"
