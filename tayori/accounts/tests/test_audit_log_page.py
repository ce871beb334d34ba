"""Audit log page: filters, workspace time zone, pagination and the CSV download."""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from tayori.accounts.models import AuditEvent
from tayori.accounts.tests.conftest import page_text


def event(workspace, action, when, operator=None, target="", **detail):
    return AuditEvent.objects.create(workspace=workspace, operator=operator,
                                     actor=operator.email if operator else "", action=action,
                                     target=target, detail=detail, created_at=when,
                                     ip="192.0.2.1")


@pytest.fixture
def history(workspace, other_workspace, owner, teammate, outsider):
    return {
        # 2024-04-01 23:30 JST
        "late": event(workspace, "member.viewed", datetime(2024, 4, 1, 14, 30, tzinfo=UTC),
                      teammate, "田中 太郎"),
        # 2024-04-02 00:30 JST (still 1 April in UTC)
        "early": event(workspace, "role.updated", datetime(2024, 4, 1, 15, 30, tzinfo=UTC),
                       owner, "Desk", added=["members.view"], removed=[]),
        "next": event(workspace, "login", datetime(2024, 4, 3, 1, 0, tzinfo=UTC), owner,
                      owner.email),
        "elsewhere": event(other_workspace, "login", datetime(2024, 4, 2, 1, 0, tzinfo=UTC),
                           outsider, outsider.email),
    }


def listed(response):
    return [e.pk for e in response.context["page_obj"]]


def test_it_lists_this_workspaces_events_newest_first(owner_client, history):
    response = owner_client.get(reverse("accounts:audit"))
    assert listed(response) == [history["next"].pk, history["early"].pk, history["late"].pk]
    html = page_text(response)
    assert "田中 太郎" in html and history["elsewhere"].actor not in html
    # Shown in JST: 15:30 UTC is 00:30 the next day.
    assert "2024-04-02 00:30:00" in html


def test_it_filters_by_operator_and_action(owner_client, history, owner, teammate):
    assert listed(owner_client.get(reverse("accounts:audit"), {"operator": teammate.pk})) == [
        history["late"].pk]
    assert listed(owner_client.get(reverse("accounts:audit"),
                                   {"operator": owner.pk, "action": "login"})) == [
        history["next"].pk]


def test_it_filters_by_whole_days_in_the_workspace_time_zone(owner_client, history):
    response = owner_client.get(reverse("accounts:audit"),
                                {"date_from": "2024-04-02", "date_to": "2024-04-02"})
    assert listed(response) == [history["early"].pk]
    response = owner_client.get(reverse("accounts:audit"), {"date_to": "2024-04-01"})
    assert listed(response) == [history["late"].pk]


def test_the_day_boundaries_follow_a_changed_time_zone(owner_client, workspace, history):
    workspace.time_zone = "UTC"
    workspace.save()
    response = owner_client.get(reverse("accounts:audit"), {"date_to": "2024-04-01"})
    assert set(listed(response)) == {history["late"].pk, history["early"].pk}


def test_an_operator_from_another_workspace_is_not_a_valid_filter(owner_client, history, outsider):
    response = owner_client.get(reverse("accounts:audit"), {"operator": outsider.pk})
    assert response.context["form"].errors["operator"]
    assert listed(response) == []


def test_an_inverted_date_range_is_an_error_not_everything(owner_client, history):
    response = owner_client.get(reverse("accounts:audit"),
                                {"date_from": "2024-04-03", "date_to": "2024-04-01"})
    assert response.context["form"].errors
    assert listed(response) == []
    response = owner_client.get(reverse("accounts:audit-export"),
                                {"date_from": "2024-04-03", "date_to": "2024-04-01"})
    assert response.status_code == 400


def test_it_paginates(owner_client, workspace, owner):
    AuditEvent.objects.bulk_create([
        AuditEvent(workspace=workspace, operator=owner, actor=owner.email, action="login",
                   created_at=datetime(2024, 1, 1, tzinfo=UTC)) for _ in range(120)])
    first = owner_client.get(reverse("accounts:audit"))
    assert len(first.context["page_obj"]) == 50 and first.context["page_obj"].paginator.num_pages == 3
    last = owner_client.get(reverse("accounts:audit"), {"page": 3})
    assert len(last.context["page_obj"]) == 20


def download(client, **params):
    response = client.get(reverse("accounts:audit-export"), params)
    assert response.status_code == 200
    return response, b"".join(response.streaming_content)


def test_the_csv_is_utf8_with_bom_and_holds_the_filtered_rows(owner_client, history, owner):
    response, body = download(owner_client, action="role.updated")
    assert body.startswith(b"\xef\xbb\xbf")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-sample-')
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == ["time", "actor", "action", "target", "ip", "detail"]
    assert rows[1:] == [["2024-04-02T00:30:00+09:00", owner.email, "role.updated", "Desk",
                         "192.0.2.1", '{"added": ["members.view"], "removed": []}']]


def test_the_csv_can_be_cp932_for_older_tools(owner_client, history):
    _response, body = download(owner_client, encoding="cp932", operator=history["late"].operator_id)
    assert not body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("cp932"))))
    assert rows[1][3] == "田中 太郎"
    assert len(rows) == 2


def test_characters_cp932_lacks_become_question_marks(owner_client, workspace, owner):
    event(workspace, "member.viewed", datetime(2024, 5, 1, tzinfo=UTC), owner, "🎉 髙橋")
    _response, body = download(owner_client, encoding="cp932", action="member.viewed")
    rows = list(csv.reader(io.StringIO(body.decode("cp932"))))
    assert rows[1][3] == "? 髙橋"


def test_the_csv_defuses_spreadsheet_formulas(owner_client, workspace, owner):
    event(workspace, "member.viewed", datetime(2024, 5, 1, tzinfo=UTC), owner,
          '=HYPERLINK("http://evil.example","x")')
    _response, body = download(owner_client, action="member.viewed")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[1][3].startswith("'=")


def test_downloading_is_audited_with_its_filters(owner_client, history, owner, workspace):
    _response, body = download(owner_client, action="login", date_from="2024-04-01")
    exported = AuditEvent.objects.get(action="audit.exported")
    assert exported.workspace == workspace and exported.operator == owner
    assert exported.target == "utf-8"
    assert exported.detail == {"filters": {"action": "login", "date_from": "2024-04-01"},
                               "rows": 1}
    # The file lists what was asked for, not the download's own event.
    assert body.decode("utf-8-sig").count("\r\n") == 2


def test_the_csv_never_holds_another_workspaces_events(owner_client, history):
    _response, body = download(owner_client)
    assert history["elsewhere"].actor not in body.decode("utf-8-sig")
