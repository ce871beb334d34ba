"""The import pages: upload, mapping, dry run, start, progress, error report, permissions."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tayori.members import importing
from tayori.members.models import Attribute, Job, Member

SJIS = ("メールアドレス,氏名,都道府県\n"
        "taro@example.jp,山田太郎,東京都\n"
        "hanako@example.jp,佐藤花子,沖縄県\n"
        "jiro@example.jp,鈴木次郎,大阪府\n").encode("cp932")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def attrs(workspace):
    Attribute.objects.create(workspace=workspace, key="name", label="氏名", pii=True)
    Attribute.objects.create(workspace=workspace, key="pref", label="都道府県", type="choice",
                             choices=["東京都", "大阪府"])


def upload(client, data=SJIS, encoding="auto", name="会員.csv"):
    return client.post(reverse("members:job-import"), {
        "file": SimpleUploadedFile(name, data, content_type="text/csv"), "encoding": encoding})


def mapping_post(client, job, action, mode="upsert", mapping=("email", "name", "pref")):
    data = {"action": action, "mode": mode}
    data.update({f"col_{i}": f for i, f in enumerate(mapping)})
    return client.post(reverse("members:job-mapping", args=[job.pk]), data)


def test_it_uploads_detects_shift_jis_and_prefills_the_mapping(owner_client, workspace, attrs):
    response = upload(owner_client)
    job = Job.objects.get(workspace=workspace)
    assert response.url == reverse("members:job-mapping", args=[job.pk])
    assert job.options["encoding"] == "cp932" and job.file_name == "会員.csv"
    page = owner_client.get(response.url).content.decode()
    assert "メールアドレス" in page and "山田太郎" in page
    assert '<option value="email" selected>' in page
    assert '<option value="name" selected>' in page


def test_a_wrong_encoding_override_is_refused_and_nothing_is_kept(owner_client, workspace,
                                                                 attrs):
    response = upload(owner_client, encoding="utf-8")
    assert response.status_code == 200
    assert "UTF-8" in response.content.decode()
    assert not Job.objects.exists()


def test_the_encoding_can_be_changed_on_the_mapping_page(owner_client, workspace, attrs):
    upload(owner_client, data="email,名前\na@example.jp,ｱｲｳ\n".encode("cp932"))
    job = Job.objects.get()
    assert job.options["encoding"] == "cp932"
    url = reverse("members:job-mapping", args=[job.pk])
    bad = owner_client.post(url, {"action": "encoding", "encoding": "utf-8"})
    assert bad.status_code == 200 and "errors" in bad.content.decode()
    job.refresh_from_db()
    assert job.options["encoding"] == "cp932"


def test_dry_run_shows_rows_and_errors_and_stores_nothing(owner_client, workspace, attrs):
    upload(owner_client)
    job = Job.objects.get()
    response = mapping_post(owner_client, job, "dry_run")
    page = response.content.decode()
    assert response.status_code == 200
    assert "taro@example.jp" in page and "沖縄県" in page
    assert Member.objects.count() == 0
    job.refresh_from_db()
    assert job.state == Job.State.PENDING and not job.options["started"]


def test_starting_runs_the_job_and_the_page_shows_counts_and_errors(owner_client, workspace,
                                                                    attrs):
    upload(owner_client)
    job = Job.objects.get()
    response = mapping_post(owner_client, job, "start")
    assert response.url == reverse("members:job", args=[job.pk])
    job.refresh_from_db()
    assert job.state == Job.State.DONE and (job.succeeded, job.failed) == (2, 1)
    assert Member.objects.filter(workspace=workspace).count() == 2
    page = owner_client.get(response.url).content.decode()
    assert "沖縄県" in page and "都道府県" in page
    assert reverse("members:job-errors", args=[job.pk]) in page
    assert 'hx-trigger="every 1s"' not in page  # finished: no more polling
    report = owner_client.get(reverse("members:job-errors", args=[job.pk]))
    rows = list(csv.reader(io.StringIO(b"".join(report.streaming_content).decode("utf-8-sig"))))
    assert rows[1][:3] == ["3", "都道府県", "沖縄県"]
    # A started job cannot be started again.
    assert mapping_post(owner_client, job, "start").url == reverse("members:job", args=[job.pk])
    assert Job.objects.get().processed == 3


def test_a_mapping_without_email_or_phone_is_refused(owner_client, workspace, attrs):
    upload(owner_client)
    job = Job.objects.get()
    response = mapping_post(owner_client, job, "start", mapping=("", "name", "pref"))
    assert response.status_code == 200 and "errors" in response.content.decode()
    job.refresh_from_db()
    assert not job.options["started"] and job.state == Job.State.PENDING


def test_a_running_job_is_polled_every_second(owner_client, workspace):
    job = Job.objects.create(workspace=workspace, kind="import", state="running", total=10,
                             processed=4, options={"started": True, "mode": "upsert"})
    page = owner_client.get(reverse("members:job", args=[job.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in page and "width: 40%" in page
    fragment = owner_client.get(reverse("members:job-progress", args=[job.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in fragment and "<html" not in fragment
    Job.objects.filter(pk=job.pk).update(state="done", processed=10)
    fragment = owner_client.get(reverse("members:job-progress", args=[job.pk])).content.decode()
    assert 'hx-trigger="every 1s"' not in fragment and "width: 100%" in fragment


def test_the_jobs_page_lists_jobs_with_who_and_when(owner_client, workspace, owner):
    Job.objects.create(workspace=workspace, kind="import", state="done", file_name="a.csv",
                       created_by=owner, succeeded=5, options={"started": True})
    page = owner_client.get(reverse("members:jobs")).content.decode()
    assert "a.csv" in page and str(owner) in page


def test_an_analyst_may_not_import_or_read_error_reports(analyst_client, workspace, teammate,
                                                        owner):
    assert upload(analyst_client).status_code == 403
    job = Job.objects.create(workspace=workspace, kind="import", state="done", created_by=owner,
                             output_path="/dev/null", options={"started": True},
                             errors=[{"line": 2, "column": "メール", "field": "email",
                                      "value": "taro@example.jp", "reason": "bad"}])
    assert analyst_client.get(reverse("members:job-mapping", args=[job.pk])).status_code == 403
    assert analyst_client.get(reverse("members:job-errors", args=[job.pk])).status_code == 403
    page = analyst_client.get(reverse("members:job", args=[job.pk])).content.decode()
    assert "ta***@example.jp" in page and "taro@example.jp" not in page


@pytest.mark.parametrize("name", ["members:job", "members:job-progress", "members:job-mapping",
                                  "members:job-errors", "members:job-download"])
def test_another_workspaces_job_is_not_found(client, outsider, other_workspace, workspace,
                                             owner, name):
    job = Job.objects.create(workspace=workspace, kind="import", created_by=owner,
                             output_path="/dev/null", options={"started": True})
    client.force_login(outsider)
    assert client.get(reverse(name, args=[job.pk])).status_code == 404


def test_jobs_of_another_workspace_are_not_listed(client, outsider, workspace, owner):
    Job.objects.create(workspace=workspace, kind="import", file_name="secret-list.csv",
                       created_by=owner, options={"started": True})
    client.force_login(outsider)
    assert "secret-list.csv" not in client.get(reverse("members:jobs")).content.decode()


def test_guessed_mapping_uses_job_options_once_saved(owner_client, workspace, attrs):
    upload(owner_client)
    job = Job.objects.get()
    mapping_post(owner_client, job, "dry_run", mapping=("email", "", "pref"))
    job.refresh_from_db()
    assert job.options["mapping"] == ["email", "", "pref"]
    page = owner_client.get(reverse("members:job-mapping", args=[job.pk])).content.decode()
    assert importing.IGNORE == "" and '<option value="name" selected>' not in page
