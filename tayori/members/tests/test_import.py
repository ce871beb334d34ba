"""Import jobs end to end through importing.execute (what the huey task and the CLI run)."""

import csv

import pytest

from tayori.accounts.models import AuditEvent
from tayori.members import importing
from tayori.members.models import Attribute, ConsentRecord, Job, Member, Suppression

HEADER = "メールアドレス,電話番号,氏名,都道府県,誕生日,ポイント\n"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def attrs(workspace):
    Attribute.objects.create(workspace=workspace, key="name", label="氏名", pii=True, position=1)
    Attribute.objects.create(workspace=workspace, key="pref", label="都道府県", type="choice",
                             choices=["東京都", "大阪府", "北海道"], position=2)
    Attribute.objects.create(workspace=workspace, key="birthday", label="誕生日", type="date",
                             position=3)
    Attribute.objects.create(workspace=workspace, key="points", label="ポイント", type="number",
                             position=4)
    return list(Attribute.objects.filter(workspace=workspace))


def make_file(tmp_path, text, encoding="utf-8", name="members.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def run(workspace, path, *, mode="upsert", encoding="utf-8", mapping=None, chunk_rows=2000):
    from tayori.members import csvio

    headers = csvio.read_header(path, encoding)
    attributes = list(Attribute.objects.filter(workspace=workspace))
    job = importing.create_job(workspace, operator=None, path=path, file_name=path.name,
                               encoding=encoding, detected=encoding)
    job.options = {**job.options, "mode": mode, "started": True,
                   "mapping": mapping or importing.guess_mapping(headers, attributes)}
    job.save()
    return importing.execute(job.pk, chunk_rows=chunk_rows)


GOOD = (HEADER
        + "taro@example.jp,090-1234-5678,山田太郎,東京都,1990/01/02,100\n"
        + "hanako@example.jp,,佐藤花子,大阪府,1985-12-31,\n"
        + "jiro@example.jp,08011112222,鈴木次郎,北海道,,3000\n")


def test_it_imports_a_shift_jis_file_with_japanese_headers(workspace, attrs, tmp_path):
    job = run(workspace, make_file(tmp_path, GOOD, "cp932"), encoding="cp932")
    assert job.state == Job.State.DONE
    assert (job.total, job.processed, job.succeeded, job.failed) == (3, 3, 3, 0)
    taro = Member.objects.get(workspace=workspace, email="taro@example.jp")
    assert taro.phone == "+819012345678"
    assert taro.attributes == {"name": "山田太郎", "pref": "東京都", "birthday": "1990-01-02",
                               "points": 100}
    assert Member.objects.get(email="hanako@example.jp").attributes == {
        "name": "佐藤花子", "pref": "大阪府", "birthday": "1985-12-31"}


def test_one_bad_row_is_reported_and_the_good_rows_are_stored(workspace, attrs, tmp_path):
    text = (HEADER
            + "a@example.jp,,A,東京都,2000-01-01,1\n"
            + "b@example.jp,,B,沖縄県,2000-01-01,2\n"  # line 3: not a choice
            + "c@example.jp,,C,大阪府,2000-01-01,3\n")
    job = run(workspace, make_file(tmp_path, text))
    assert set(Member.objects.values_list("email", flat=True)) == {"a@example.jp", "c@example.jp"}
    assert (job.succeeded, job.failed) == (2, 1)
    assert job.errors[0]["line"] == 3
    assert job.errors[0]["column"] == "都道府県"
    assert job.errors[0]["value"] == "沖縄県"
    with open(job.output_path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 2
    line, column, value, reason = rows[1]
    assert (line, column, value) == ("3", "都道府県", "沖縄県")
    assert "沖縄県" in reason and "東京都" in reason


def test_errors_in_several_fields_of_a_row_are_each_named(workspace, attrs, tmp_path):
    text = HEADER + "not-an-address,123,X,東京都,someday,many\n"
    job = run(workspace, make_file(tmp_path, text))
    assert {e["column"] for e in job.errors} >= {"メールアドレス", "誕生日", "ポイント"}
    assert {e["line"] for e in job.errors} == {2}


def test_a_row_with_more_cells_than_the_header_is_refused(workspace, attrs, tmp_path):
    text = HEADER + "a@example.jp,,A,東京都,,1,surplus\nb@example.jp,,B,東京都,,1,\n"
    job = run(workspace, make_file(tmp_path, text))
    assert job.failed == 1 and job.errors[0]["line"] == 2
    assert list(Member.objects.values_list("email", flat=True)) == ["b@example.jp"]


def test_rerunning_the_same_file_in_upsert_mode_is_idempotent(workspace, attrs, tmp_path):
    path = make_file(tmp_path, GOOD)
    first = run(workspace, path)
    before = list(Member.objects.order_by("pk").values("pk", "attributes", "updated_at"))
    second = run(workspace, path)
    assert first.options["counts"]["created"] == 3
    assert second.options["counts"] == {**second.options["counts"], "created": 0, "updated": 0,
                                         "unchanged": 3, "failed": 0}
    assert list(Member.objects.order_by("pk").values("pk", "attributes", "updated_at")) == before
    assert ConsentRecord.objects.count() == 3


def test_it_records_import_consent_for_created_members(workspace, attrs, tmp_path):
    run(workspace, make_file(tmp_path, GOOD, name="会員リスト.csv"))
    consent = ConsentRecord.objects.get(member__email="taro@example.jp")
    assert (consent.method, consent.source) == ("import", "会員リスト.csv")


def test_it_audits_the_import_with_counts(workspace, attrs, tmp_path):
    job = run(workspace, make_file(tmp_path, GOOD))
    event = AuditEvent.objects.get(action="members.imported")
    assert event.workspace == workspace and event.target == "members.csv"
    assert event.detail["created"] == 3 and event.detail["failed"] == 0
    assert event.detail["job"] == job.pk


def test_small_chunks_give_the_same_result_and_count_progress(workspace, attrs, tmp_path):
    rows = "".join(f"m{i}@example.jp,,M{i},東京都,,{i}\n" for i in range(25))
    job = run(workspace, make_file(tmp_path, HEADER + rows + "bad,,X,東京都,,1\n"), chunk_rows=7)
    assert (job.total, job.processed, job.succeeded, job.failed) == (26, 26, 25, 1)
    assert job.errors[0]["line"] == 27
    assert Member.objects.count() == 25


def test_add_mode_refuses_existing_members(workspace, attrs, tmp_path):
    Member.objects.create(workspace=workspace, email="taro@example.jp")
    job = run(workspace, make_file(tmp_path, GOOD), mode="add")
    assert job.options["counts"]["created"] == 2 and job.failed == 1
    assert job.errors[0]["line"] == 2 and job.errors[0]["column"] == "メールアドレス"


def test_update_mode_changes_only_existing_members(workspace, attrs, tmp_path):
    Member.objects.create(workspace=workspace, email="taro@example.jp", attributes={"points": 1})
    job = run(workspace, make_file(tmp_path, GOOD), mode="update")
    assert job.options["counts"]["updated"] == 1 and job.failed == 2
    assert Member.objects.count() == 1
    assert Member.objects.get().attributes["points"] == 100


def test_unsubscribe_mode_unsubscribes_listed_members(workspace, attrs, tmp_path):
    run(workspace, make_file(tmp_path, GOOD))
    path = make_file(tmp_path, "email\ntaro@example.jp\nnobody@example.jp\n", name="stop.csv")
    job = run(workspace, path, mode="unsubscribe")
    assert job.options["counts"]["unsubscribed"] == 1 and job.failed == 1
    assert Member.objects.get(email="taro@example.jp").status == "unsubscribed"
    assert Member.objects.get(email="hanako@example.jp").status == "active"
    assert ConsentRecord.objects.get(member__email="taro@example.jp").withdrawn_at is not None


def test_suppress_mode_adds_addresses_and_phones_to_the_suppression_list(workspace, attrs,
                                                                       tmp_path):
    path = make_file(tmp_path, "email,tel\nx@example.jp,\n,09012345678\n")
    job = run(workspace, path, mode="suppress")
    assert job.options["counts"]["suppressed"] == 2
    assert set(Suppression.objects.filter(workspace=workspace).values_list("kind", "value")) == {
        ("email", "x@example.jp"), ("phone", "+819012345678")}
    assert Member.objects.count() == 0


def test_an_import_never_touches_another_workspace(workspace, other_workspace, attrs, tmp_path):
    Member.objects.create(workspace=other_workspace, email="taro@example.jp",
                          attributes={"keep": 1})
    run(workspace, make_file(tmp_path, GOOD))
    assert Member.objects.get(workspace=other_workspace).attributes == {"keep": 1}
    assert Member.objects.filter(workspace=workspace).count() == 3


def test_dry_run_shows_rows_and_errors_and_writes_nothing(workspace, attrs, tmp_path):
    text = GOOD + "bad@,,X,東京都,,1\n"
    path = make_file(tmp_path, text)
    headers = ["メールアドレス", "電話番号", "氏名", "都道府県", "誕生日", "ポイント"]
    mapping = importing.guess_mapping(headers, attrs)
    result = importing.dry_run(workspace, path, "utf-8", mapping, "upsert", can_view_pii=True)
    assert Member.objects.count() == 0 and ConsentRecord.objects.count() == 0
    assert result.checked == 4
    assert [r.outcome for r in result.preview] == ["created", "created", "created", "error"]
    assert result.preview[0].email == "taro@example.jp"
    assert result.preview[0].attributes["birthday"] == "1990-01-02"
    assert [(e["line"], e["column"], e["value"]) for e in result.errors] == [
        (5, "メールアドレス", "bad@")]


def test_dry_run_masks_pii_for_roles_without_it(workspace, attrs, tmp_path):
    path = make_file(tmp_path, GOOD)
    mapping = ["email", "phone", "name", "pref", "birthday", "points"]
    result = importing.dry_run(workspace, path, "utf-8", mapping, "upsert", can_view_pii=False)
    row = result.preview[0]
    assert row.email == "ta***@example.jp" and "1234" not in row.phone
    assert row.attributes["name"] == "***" and row.attributes["pref"] == "東京都"


def test_dry_run_errors_mask_pii_values_for_roles_without_it(workspace, attrs, tmp_path):
    path = make_file(tmp_path, GOOD + "hanako.bad@,,X,東京都,,1\n")
    mapping = ["email", "phone", "name", "pref", "birthday", "points"]
    result = importing.dry_run(workspace, path, "utf-8", mapping, "upsert", can_view_pii=False)
    [error] = result.errors
    assert error["value"] != "hanako.bad@" and "hanako.bad" not in error["reason"]


def test_guess_mapping_matches_keys_labels_and_japanese_contact_headers(attrs):
    headers = ["E-Mail", "携帯電話番号", "氏名", "pref", "ステータス", "メモ", "メール"]
    assert importing.guess_mapping(headers, attrs) == [
        "email", "phone", "name", "pref", "status", "", ""]


def test_overrides_and_mapping_checks(attrs):
    headers = ["メール", "名前"]
    mapping = importing.guess_mapping(headers, attrs)
    assert mapping == ["email", ""]
    assert importing.apply_overrides(mapping, headers, ["名前=name"], attrs) == ["email", "name"]
    assert importing.apply_overrides(mapping, headers, ["2=email"], attrs) == ["", "email"]
    assert importing.apply_overrides(mapping, headers, ["メール=ignore"], attrs) == ["", ""]
    with pytest.raises(ValueError):
        importing.apply_overrides(mapping, headers, ["名前=nickname"], attrs)
    with pytest.raises(ValueError):
        importing.apply_overrides(mapping, headers, ["住所=name"], attrs)
    assert importing.check_mapping(["email", "name"], "upsert", attrs) == []
    assert importing.check_mapping(["name", ""], "upsert", attrs)  # nothing to match members by
    assert importing.check_mapping(["email", "email"], "upsert", attrs)
    assert importing.check_mapping(["email", ""], "merge", attrs)


def test_stored_errors_are_masked_for_viewers_without_pii(attrs):
    errors = [{"line": 2, "column": "メール", "field": "email", "value": "taro@example.jp",
               "reason": "taro@example.jp is taken"},
              {"line": 3, "column": "都道府県", "field": "pref", "value": "沖縄県",
               "reason": "“沖縄県” is not one of the choices"}]
    shown = importing.masked_errors(errors, attrs, can_view_pii=False)
    assert shown[0]["value"] == "ta***@example.jp" and "taro@" not in shown[0]["reason"]
    assert shown[1] == errors[1]
    assert importing.masked_errors(errors, attrs, can_view_pii=True) == errors


@pytest.mark.django_db(transaction=True)
def test_chunks_in_flight_together_still_let_the_later_row_win(workspace, attrs, tmp_path,
                                                                monkeypatch):
    # Outside a transaction on PostgreSQL two chunks run at once; rows naming the same member
    # (even written differently) must still apply in file order.
    from django.db import connection

    started = []
    run_worker = importing._ChunkWorker.run
    monkeypatch.setattr(importing._ChunkWorker, "run",
                        lambda self: (started.append(self), run_worker(self)))
    rows = [f"m{i}@example.jp,,M{i},東京都,,{i}\n" for i in range(30)]
    rows[3] = "same@example.jp,,S,東京都,,1\n"
    rows[8] = "same@example.jp,,S,東京都,,2\n"
    rows[12] = "ｓａｍｅ@ｅｘａｍｐｌｅ.jp,,S,東京都,,3\n"
    rows[20] = "m0@example.jp,090-1111-2222,M0,大阪府,,0\n"
    job = run(workspace, make_file(tmp_path, HEADER + "".join(rows)), chunk_rows=5)
    assert job.failed == 0 and job.processed == 30
    assert job.options["counts"]["created"] == 27 and job.options["counts"]["updated"] == 3
    assert Member.objects.get(email="same@example.jp").attributes["points"] == 3
    m0 = Member.objects.get(email="m0@example.jp")
    assert (m0.phone, m0.attributes["pref"]) == ("+819011112222", "大阪府")
    assert ConsentRecord.objects.count() == 27
    assert len(started) == (importing.IMPORT_WORKERS if connection.vendor == "postgresql" else 0)


def _visit_workspace(workspace, tmp_path, **job_options):
    Attribute.objects.create(workspace=workspace, key="visit", label="来店", type="datetime")
    workspace.time_zone = "UTC"
    workspace.save()
    path = make_file(tmp_path, "email,visit,ポイント\n"
                     + "".join(f"v{i}@example.jp,2024-03-01 09:00,{i}\n" for i in range(12))
                     + "bad@example.jp,2024-03-01 09:00,many\n")
    job = importing.create_job(workspace, operator=None, path=path, file_name=path.name,
                               encoding="utf-8", detected="utf-8", language="en")
    job.options = {**job.options, "mode": "upsert", "started": True,
                   "mapping": ["email", "visit", "points"], **job_options}
    job.save()
    return importing.execute(job.pk, chunk_rows=4)


def test_times_are_read_in_the_workspace_zone_and_reasons_in_the_job_language(
        workspace, attrs, tmp_path):
    job = _visit_workspace(workspace, tmp_path)
    assert Member.objects.get(email="v0@example.jp").attributes["visit"] == "2024-03-01T09:00:00Z"
    assert job.errors[0]["reason"].startswith("Expected a number")


@pytest.mark.django_db(transaction=True)
def test_chunk_threads_use_the_job_zone_and_language_too(workspace, attrs, tmp_path):
    job = _visit_workspace(workspace, tmp_path)
    assert set(Member.objects.values_list("attributes__visit", flat=True)) == {
        "2024-03-01T09:00:00Z"}
    assert job.errors[0]["reason"].startswith("Expected a number")
