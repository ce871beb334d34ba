"""Workspace settings page: name, time zone, language and the API-key IP requirement."""

from django.urls import reverse

from tayori.accounts.models import ApiKey, AuditEvent
from tayori.accounts.tests.conftest import page_text


def form_data(workspace, **changes):
    data = {"name": workspace.name, "time_zone": workspace.time_zone,
            "language": workspace.language, "require_key_ip_rules": ""}
    data.update(changes)
    return data


def test_it_saves_settings_and_audits_before_and_after(owner_client, workspace):
    response = owner_client.post(reverse("accounts:settings"), form_data(
        workspace, name="サンプル商事", time_zone="America/New_York", language="en"))
    assert response.status_code == 302
    workspace.refresh_from_db()
    assert (workspace.name, workspace.time_zone, workspace.language) == (
        "サンプル商事", "America/New_York", "en")
    event = AuditEvent.objects.get(action="settings.changed")
    assert event.detail == {
        "before": {"name": "株式会社サンプル", "time_zone": "Asia/Tokyo", "language": "ja"},
        "after": {"name": "サンプル商事", "time_zone": "America/New_York", "language": "en"},
    }


def test_an_unchanged_form_writes_no_audit_event(owner_client, workspace):
    owner_client.post(reverse("accounts:settings"), form_data(workspace))
    assert not AuditEvent.objects.filter(action="settings.changed").exists()


def test_it_refuses_an_unknown_time_zone_and_a_blank_name(owner_client, workspace):
    response = owner_client.post(reverse("accounts:settings"),
                                 form_data(workspace, time_zone="Asia/Atlantis", name="  "))
    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"time_zone", "name"}
    workspace.refresh_from_db()
    assert workspace.time_zone == "Asia/Tokyo" and workspace.name == "株式会社サンプル"
    # The page around the failed form still shows the stored name.
    assert "株式会社サンプル" in page_text(response)


def test_it_refuses_an_unknown_language(owner_client, workspace):
    response = owner_client.post(reverse("accounts:settings"), form_data(workspace, language="fr"))
    assert response.context["form"].errors["language"]


def test_pages_follow_the_new_time_zone(owner_client, workspace):
    owner_client.post(reverse("accounts:settings"), form_data(workspace, time_zone="UTC"))
    event = AuditEvent.objects.get(action="settings.changed")
    html = page_text(owner_client.get(reverse("accounts:audit")))
    assert event.created_at.strftime("%Y-%m-%d %H:%M") in html


def test_requiring_key_networks_warns_about_keys_that_stop_working(owner_client, workspace,
                                                                   english):
    open_key, raw = ApiKey.issue(workspace, "Legacy export", ["members.view"])
    ApiKey.issue(workspace, "Office sync", ["members.view"], allowed_cidrs=["192.0.2.0/24"])
    response = owner_client.post(reverse("accounts:settings"),
                                 form_data(workspace, require_key_ip_rules="on"), follow=True)
    html = page_text(response)
    assert "Legacy export" in html and "Office sync" not in html
    workspace.refresh_from_db()
    assert workspace.require_key_ip_rules
    assert not ApiKey.find(raw).allows_ip("192.0.2.1")
    event = AuditEvent.objects.get(action="settings.changed")
    assert event.detail == {"before": {"require_key_ip_rules": False},
                            "after": {"require_key_ip_rules": True}}
