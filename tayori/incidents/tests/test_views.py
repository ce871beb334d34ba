"""The console's pages: who may open them, and an operator's way through the four screens by
posting what the browser would post."""

import re

import pytest
from django.test import Client

from conftest import make_operator
from tayori.incidents.models import Notice, NoticeType, Service
from tayori.members.models import Attribute

FORM = {"f-services": ["payment_api", "transfer"], "f-started_at": "2026-11-30T03:12",
        "f-impact": "全面停止", "f-details": "", "f-next_update": "30分後"}


def client_for(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def approver_client(approver):
    return client_for(approver)


@pytest.mark.parametrize("path", ["/notices/", "/notices/new/{type}/", "/notices/{notice}/"])
def test_the_console_needs_the_send_permission(workspace, owner, teammate, starter, merchants,
                                               path):
    editor = make_operator(workspace, "editor@sample.jp", "Editor")  # may define, not send
    notice = Notice.objects.create(workspace=workspace, type=starter["障害発生"],
                                   incident=_incident(workspace))
    url = path.format(type=starter["障害発生"].pk, notice=notice.pk)
    assert client_for(teammate).get(url).status_code == 403
    assert client_for(editor).get(url).status_code == 403
    assert client_for(owner).get(url).status_code == 200


def _incident(workspace):
    from tayori.incidents.models import Incident

    return Incident.objects.create(workspace=workspace, title="t")


@pytest.mark.parametrize("path", ["/notices/types/", "/notices/types/new/", "/notices/services/"])
def test_types_and_services_need_the_manage_permission(workspace, approver_client, starter,
                                                       path):
    editor = make_operator(workspace, "editor@sample.jp", "Editor")
    assert approver_client.get(path).status_code == 403
    assert client_for(editor).get(path).status_code == 200


def test_an_operator_goes_through_the_four_screens(workspace, approver, approver_client,
                                                   starter, merchants):
    outage = starter["障害発生"]
    first = approver_client.get("/notices/")
    assert first.status_code == 200
    buttons = re.findall(r'href="/notices/new/(\d+)/" data-testid="type-choice"',
                         first.content.decode())
    assert buttons[0] == str(outage.pk) and len(buttons) == 4

    form = approver_client.get(f"/notices/new/{outage.pk}/").content.decode()
    assert form.count('type="checkbox" name="f-services"') == 5
    assert re.search(r'name="f-started_at" value="\d{4}-\d\d-\d\dT\d\d:\d\d"', form)  # now
    count = approver_client.post(f"/notices/new/{outage.pk}/count/",
                                 {"f-services": ["payment_api", "transfer"]})
    assert re.fullmatch(r"\D*3\D+2\D*", count.content.decode())  # 3 recipients (2 skipped)

    bad = approver_client.post(f"/notices/new/{outage.pk}/", {**FORM, "f-services": []})
    assert bad.status_code == 400 and Notice.objects.count() == 0
    kept = bad.content.decode()  # what was typed stays, the error is by its field
    assert 'name="f-started_at" value="2026-11-30T03:12"' in kept
    assert 'value="30分後"' in kept and 'class="error" role="alert"' in kept
    made = approver_client.post(f"/notices/new/{outage.pk}/", FORM)
    notice = Notice.objects.get()
    assert made.status_code == 302 and made["Location"] == f"/notices/{notice.pk}/"

    preview = approver_client.get(f"/notices/{notice.pk}/").content.decode()
    assert 'data-count="3"' in preview
    assert "【障害発生】決済API、送金APIに障害が発生しています" in preview
    assert "■ 次回のご案内: 30分後" in preview
    # Without the PII permission the sample is masked; the unsubscribed member is listed.
    assert "a***@merchant.example.jp" in preview and "a@merchant.example.jp" not in preview
    assert "e***@merchant.example.jp" in preview

    sent = approver_client.post(f"/notices/{notice.pk}/confirm/")
    assert sent.status_code == 302
    notice.refresh_from_db()
    assert notice.status == "sent" and notice.source.priority == 9
    page = approver_client.get(f"/notices/{notice.pk}/").content.decode()
    assert 'data-testid="progress"' in page and 'data-testid="delivery-log"' in page
    assert "f***@merchant.example.jp" in page  # skipped, with its reason, in the log
    recovery = starter["障害復旧"]
    assert f"/notices/new/{recovery.pk}/?after={notice.pk}" in page

    follow = approver_client.get(f"/notices/new/{recovery.pk}/", {"after": notice.pk})
    follow_page = follow.content.decode()
    assert 'value="payment_api" checked' in follow_page
    assert 'value="transfer" checked' in follow_page and 'value="card" checked' not in follow_page
    assert 'name="f-started_at" value="2026-11-30T03:12"' in follow_page
    made = approver_client.post(f"/notices/new/{recovery.pk}/", {
        "after": notice.pk, "f-services": ["payment_api", "transfer"],
        "f-started_at": "2026-11-30T03:12", "f-recovered_at": "2026-11-30T04:40"})
    second = Notice.objects.exclude(pk=notice.pk).get()
    assert made.status_code == 302 and second.incident_id == notice.incident_id


def test_a_draft_goes_back_to_its_form_and_can_be_discarded(approver_client, starter, merchants):
    approver_client.post(f"/notices/new/{starter['障害発生'].pk}/", FORM)
    notice = Notice.objects.get()
    edit = approver_client.get(f"/notices/{notice.pk}/edit/").content.decode()
    assert 'value="payment_api" checked' in edit
    approver_client.post(f"/notices/{notice.pk}/edit/", {**FORM, "f-services": ["card"]})
    notice.refresh_from_db()
    assert notice.values["services"] == ["card"] and notice.recipients == 1
    approver_client.post(f"/notices/{notice.pk}/cancel/")
    notice.refresh_from_db()
    assert notice.status == "cancelled"
    assert approver_client.get(f"/notices/{notice.pk}/edit/").status_code == 302


def test_the_creator_waits_for_a_second_operator(workspace, approver, approver_client,
                                                 second_approver, starter, merchants):
    report = starter["事後報告"]
    approver_client.post(f"/notices/new/{report.pk}/", {
        "f-services": ["transfer"], "f-started_at": "2026-11-30T03:12",
        "f-recovered_at": "2026-11-30T04:40", "f-cause": "DB", "f-measures": "冗長化"})
    notice = Notice.objects.get()
    approver_client.post(f"/notices/{notice.pk}/confirm/")
    notice.refresh_from_db()
    assert notice.status == "awaiting_confirmation"
    mine = approver_client.get(f"/notices/{notice.pk}/").content.decode()
    assert 'id="confirm-refusal"' in mine and 'data-testid="confirm-send"' not in mine
    approver_client.post(f"/notices/{notice.pk}/confirm/")
    notice.refresh_from_db()
    assert notice.status == "awaiting_confirmation"  # refused, still waiting

    other = client_for(second_approver)
    assert f'href="/notices/{notice.pk}/"' in other.get("/notices/").content.decode()
    assert 'data-testid="confirm-send"' in other.get(f"/notices/{notice.pk}/").content.decode()
    other.post(f"/notices/{notice.pk}/confirm/")
    notice.refresh_from_db()
    assert notice.status == "sent" and notice.confirmed_by == second_approver


def test_the_starter_button_needs_the_manage_permission(workspace, owner, approver_client):
    assert approver_client.post("/notices/starter/", {"from_address": "a@example.jp"}
                                ).status_code == 403
    owner_client = client_for(owner)
    page = owner_client.get("/notices/").content.decode()
    assert 'data-testid="starter"' in page
    owner_client.post("/notices/starter/", {"from_address": "status@example.jp"})
    assert NoticeType.objects.filter(workspace=workspace).count() == 4
    assert Attribute.objects.get(workspace=workspace, key="services").choices == [
        "payment_api", "card", "konbini", "transfer", "dashboard"]


def test_a_new_service_becomes_a_choice_members_can_hold(workspace, owner, starter):
    client = client_for(owner)
    response = client.post("/notices/services/", {"code": "qr", "name": "QRコード決済",
                                                  "group": "決済", "position": 6,
                                                  "active": "on"})
    assert response.status_code == 302
    assert "qr" in Attribute.objects.get(workspace=workspace, key="services").choices
    taken = client.post("/notices/services/", {"code": "qr", "name": "again", "position": 7})
    assert taken.status_code == 400 and Service.objects.filter(code="qr").count() == 1


def test_a_notice_type_is_edited_with_its_fields(workspace, owner, starter):
    client = client_for(owner)
    form = {"name": "速報", "position": 5, "active": "on", "from_address": "s@example.jp",
            "subject": "【速報】{{ notice.services }}", "text": "{{ notice.note }}",
            "target": "services", "target_attribute": "services", "fld-count": 3,
            "fld-0-key": "services", "fld-0-label": "対象", "fld-0-kind": "services",
            "fld-0-required": "on", "fld-1-key": "note", "fld-1-label": "内容",
            "fld-1-kind": "text", "fld-2-key": "", "fld-2-label": ""}
    bad = client.post("/notices/types/new/", {**form, "text": "{{ notice.nte }}"})
    assert bad.status_code == 400 and "notice.nte" in bad.content.decode()
    no_services = client.post("/notices/types/new/", {**form, "fld-0-kind": "text"})
    assert no_services.status_code == 400
    assert client.post("/notices/types/new/", form).status_code == 302
    made = NoticeType.objects.get(workspace=workspace, name="速報")
    assert [f["key"] for f in made.fields] == ["services", "note"]
    assert made.fields[0]["required"] is True
