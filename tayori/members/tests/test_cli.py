"""`tayori members import|export` through typer's CliRunner."""

import csv

import pytest
from typer.testing import CliRunner

import tayori.cli.members  # noqa: F401  (registers the commands)
from tayori.accounts.models import AuditEvent
from tayori.cli import app
from tayori.members.models import Attribute, Job, Member

runner = CliRunner()


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def attrs(workspace):
    Attribute.objects.create(workspace=workspace, key="name", label="氏名", pii=True)
    Attribute.objects.create(workspace=workspace, key="points", label="ポイント", type="number")


FILE = ("メールアドレス,氏名,ポイント,会員番号\n"
        "taro@example.jp,山田太郎,10,A1\n"
        "hanako@example.jp,佐藤花子,ten,A2\n"
        "jiro@example.jp,鈴木次郎,30,A3\n")


def test_it_imports_a_shift_jis_file_and_prints_counts_and_the_report(workspace, attrs,
                                                                      tmp_path):
    path = tmp_path / "会員.csv"
    path.write_bytes(FILE.encode("cp932"))
    result = runner.invoke(app, ["members", "import", str(path), "--workspace", "sample",
                                 "--mode", "upsert"])
    assert result.exit_code == 0, result.output
    assert "created: 2" in result.output and "failed: 1" in result.output
    job = Job.objects.get(kind="import")
    assert job.output_path and job.output_path.endswith("-errors.csv")
    assert "Error report:" in result.output
    with open(job.output_path, encoding="utf-8-sig", newline="") as handle:
        assert list(csv.reader(handle))[1][:3] == ["3", "ポイント", "ten"]
    assert Member.objects.get(email="taro@example.jp").attributes == {"name": "山田太郎",
                                                                       "points": 10}
    assert AuditEvent.objects.get(action="members.imported").detail["via"] == "cli"
    again = runner.invoke(app, ["members", "import", str(path), "-w", "sample"])
    assert "created: 0" in again.output and "unchanged: 2" in again.output


def test_map_options_override_the_guessed_columns(workspace, attrs, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("mail,who\na@example.jp,A\n", encoding="utf-8")
    result = runner.invoke(app, ["members", "import", str(path), "-w", "sample",
                                 "--map", "who=name", "--encoding", "utf-8"])
    assert result.exit_code == 0, result.output
    assert Member.objects.get().attributes == {"name": "A"}
    bad = runner.invoke(app, ["members", "import", str(path), "-w", "sample",
                              "--map", "who=nickname"])
    assert bad.exit_code == 2


def test_an_unreadable_file_exits_non_zero(workspace, tmp_path):
    missing = runner.invoke(app, ["members", "import", str(tmp_path / "nope.csv"), "-w", "sample"])
    assert missing.exit_code == 1
    path = tmp_path / "sjis.csv"
    path.write_bytes("メール\ntaro@example.jp\n".encode("cp932"))
    wrong = runner.invoke(app, ["members", "import", str(path), "-w", "sample",
                                "--encoding", "utf-8"])
    assert wrong.exit_code == 1 and "UTF-8" in wrong.output
    assert not Job.objects.exists()


def test_an_unknown_workspace_or_unmappable_file_exits_non_zero(workspace, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("foo,bar\n1,2\n", encoding="utf-8")
    assert runner.invoke(app, ["members", "import", str(path), "-w", "nope"]).exit_code == 2
    assert runner.invoke(app, ["members", "import", str(path), "-w", "sample"]).exit_code == 2


def test_it_exports_to_a_file_in_cp932(workspace, attrs, tmp_path):
    Member.objects.create(workspace=workspace, email="taro@example.jp",
                          attributes={"name": "𠮷田"})
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["members", "export", "--workspace", "sample", "--out", str(out),
                                 "--encoding", "cp932", "--columns", "email,name"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(out.open(encoding="cp932", newline="")))
    assert rows[1] == ["taro@example.jp", "?田"]
    assert AuditEvent.objects.get(action="members.exported").detail["rows"] == 1


def test_a_masked_export(workspace, attrs, tmp_path):
    Member.objects.create(workspace=workspace, email="taro@example.jp", attributes={"name": "X"})
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["members", "export", "-w", "sample", "-o", str(out), "--mask",
                                 "--columns", "email,name"])
    assert result.exit_code == 0, result.output
    assert list(csv.reader(out.open(encoding="utf-8-sig")))[1] == ["ta***@example.jp", "***"]
    bad = runner.invoke(app, ["members", "export", "-w", "sample", "--columns", "email,secret"])
    assert bad.exit_code == 2
