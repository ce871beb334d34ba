"""Export jobs: selection, columns, encodings, masking, permissions and audit."""

import csv
import io

import pytest
from django.urls import reverse

from tayori.accounts.models import AuditEvent
from tayori.members import exporting
from tayori.members.models import Attribute, Job, Member, MemberList


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def people(workspace, other_workspace):
    Attribute.objects.create(workspace=workspace, key="name", label="氏名", pii=True, position=1)
    Attribute.objects.create(workspace=workspace, key="pref", label="都道府県", type="choice",
                             choices=["東京都", "大阪府"], position=2)
    Attribute.objects.create(workspace=workspace, key="tags", label="タグ", type="multi_choice",
                             choices=["a", "b"], position=3)
    taro = Member.objects.create(workspace=workspace, email="taro@example.jp",
                                 phone="+819012345678",
                                 attributes={"name": "山田太郎", "pref": "東京都", "tags": ["a", "b"]})
    Member.objects.create(workspace=workspace, email="yoshi@example.jp", status="unsubscribed",
                          attributes={"name": "𠮷田", "pref": "大阪府"})
    Member.objects.create(workspace=other_workspace, email="stranger@example.jp")
    return taro


def read(response, encoding):
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode(encoding))))


def export(client, **data):
    data = {"selection": "all", "columns": ["email", "phone", "status", "name", "pref", "tags"],
            "encoding": "utf-8-sig", **data}
    response = client.post(reverse("members:job-export"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    return Job.objects.filter(kind="export").latest("pk")


def test_an_owner_exports_everything_with_pii(owner_client, people):
    job = export(owner_client)
    assert job.state == Job.State.DONE and job.options["include_pii"] is True
    rows = read(owner_client.get(reverse("members:job-download", args=[job.pk])), "utf-8-sig")
    assert len(rows[0]) == 6 and rows[0][3:] == ["氏名", "都道府県", "タグ"]
    by_email = {r[0]: r for r in rows[1:]}
    assert set(by_email) == {"taro@example.jp", "yoshi@example.jp"}  # not the other workspace
    assert by_email["taro@example.jp"][1] == "+819012345678"
    assert by_email["taro@example.jp"][3:] == ["山田太郎", "東京都", "a;b"]


def test_an_analyst_export_is_masked(analyst_client, people):
    job = export(analyst_client)
    assert job.options["include_pii"] is False
    rows = read(analyst_client.get(reverse("members:job-download", args=[job.pk])), "utf-8-sig")
    body = "\n".join(",".join(r) for r in rows)
    assert "taro@example.jp" not in body and "山田太郎" not in body and "12345678" not in body
    taro = next(r for r in rows if r[0].startswith("ta"))
    assert taro[0] == "ta***@example.jp" and taro[3] == "***" and taro[4] == "東京都"


def test_an_analyst_cannot_download_an_export_made_with_pii(client, owner, teammate, people):
    client.force_login(owner)
    job = export(client)
    client.force_login(teammate)
    assert client.get(reverse("members:job-download", args=[job.pk])).status_code == 403
    assert "job-download" not in client.get(reverse("members:job", args=[job.pk])).content.decode()


def test_cp932_export_replaces_unencodable_characters_and_says_how_many(owner_client, people):
    job = export(owner_client, encoding="cp932")
    assert job.options["replaced_cells"] == 1
    assert "1" in job.message
    rows = read(owner_client.get(reverse("members:job-download", args=[job.pk])), "cp932")
    yoshi = next(r for r in rows if r[0] == "yoshi@example.jp")
    assert yoshi[3] == "?田"
    assert next(r for r in rows if r[0] == "taro@example.jp")[3] == "山田太郎"


def test_plain_utf8_has_no_bom(owner_client, people):
    job = export(owner_client, encoding="utf-8")
    data = b"".join(owner_client.get(reverse("members:job-download", args=[job.pk])).streaming_content)
    assert not data.startswith(b"\xef\xbb\xbf") and "𠮷田".encode() in data


def test_it_exports_a_status_or_a_list(owner_client, workspace, people):
    job = export(owner_client, selection="status", status="unsubscribed", columns=["email"])
    assert job.total == 1
    vip = MemberList.objects.create(workspace=workspace, name="VIP")
    vip.members.add(people)
    job = export(owner_client, selection="list", member_list=vip.pk, columns=["email"])
    rows = read(owner_client.get(reverse("members:job-download", args=[job.pk])), "utf-8-sig")
    assert rows[1:] == [["taro@example.jp"]]


def test_another_workspaces_list_cannot_be_exported(owner_client, other_workspace, people):
    theirs = MemberList.objects.create(workspace=other_workspace, name="Theirs")
    response = owner_client.post(reverse("members:job-export"), {
        "selection": "list", "member_list": theirs.pk, "columns": ["email"],
        "encoding": "utf-8"})
    assert response.status_code == 200 and not Job.objects.exists()
    with pytest.raises(exporting.BadSelection):
        exporting.select_members(people.workspace, {"kind": "list", "value": theirs.pk})


def test_the_export_is_audited_with_rows_and_pii(owner_client, people):
    export(owner_client)
    event = AuditEvent.objects.get(action="members.exported")
    assert event.detail["rows"] == 2 and event.detail["pii_included"] is True


def test_an_analyst_export_is_audited_as_masked(analyst_client, teammate, people):
    export(analyst_client)
    event = AuditEvent.objects.get(action="members.exported")
    assert event.operator == teammate and event.detail["pii_included"] is False


def test_a_viewer_may_not_export(client, workspace, people):
    from conftest import make_operator

    client.force_login(make_operator(workspace, "viewer@sample.jp", "Viewer"))
    assert client.get(reverse("members:job-export")).status_code == 403
    assert client.post(reverse("members:job-export"), {"selection": "all"}).status_code == 403


def test_a_viewer_may_not_download_an_export(client, owner, workspace, people):
    from conftest import make_operator

    client.force_login(owner)
    job = export(client)
    client.force_login(make_operator(workspace, "viewer@sample.jp", "Viewer"))
    assert client.get(reverse("members:job-download", args=[job.pk])).status_code == 403


def test_an_export_is_read_back_by_an_import_unchanged(owner_client, workspace, people,
                                                      tmp_path):
    from tayori.members import csvio, importing

    job = export(owner_client, encoding="cp932", columns=["email", "phone", "pref", "tags"])
    headers = csvio.read_header(job.output_path, csvio.detect_encoding(job.output_path))
    attributes = list(Attribute.objects.filter(workspace=workspace))
    mapping = importing.guess_mapping(headers, attributes)
    assert mapping == ["email", "phone", "pref", "tags"]
    result = importing.dry_run(workspace, job.output_path, "cp932", mapping, "upsert",
                               can_view_pii=True)
    assert [r.outcome for r in result.preview] == ["unchanged", "unchanged"]


def test_datetimes_are_written_in_the_workspace_time_zone(owner_client, workspace, people):
    Attribute.objects.create(workspace=workspace, key="seen", label="最終来店", type="datetime")
    Member.objects.filter(pk=people.pk).update(
        attributes={**people.attributes, "seen": "2024-03-01T00:30:00Z"})
    job = export(owner_client, columns=["email", "seen"])
    rows = read(owner_client.get(reverse("members:job-download", args=[job.pk])), "utf-8-sig")
    assert ["taro@example.jp", "2024-03-01T09:30:00+09:00"] in rows


def test_it_exports_the_members_of_a_saved_segment(owner_client, workspace, people):
    from tayori.members.models import Segment

    segment = Segment.objects.create(workspace=workspace, name="大阪", definition={
        "op": "and", "conditions": [{"field": "pref", "operator": "equals", "value": "大阪府"}]})
    job = export(owner_client, selection="segment", segment=segment.pk, columns=["email"])
    rows = read(owner_client.get(reverse("members:job-download", args=[job.pk])), "utf-8-sig")
    assert rows[1:] == [["yoshi@example.jp"]]
