"""The tracking settings page: windows, IP handling, domains and the conversion tag."""

import pytest

from tayori.accounts.models import AuditEvent
from tayori.delivery.models import DeliverySettings
from tayori.tracking.models import TrackingDomain, TrackingSettings

pytestmark = pytest.mark.django_db


def test_settings_are_validated_saved_and_audited(workspace, owner_client):
    bad = owner_client.post("/mail/tracking/", {"form": "settings", "ip_mode": "none",
                                                "conversion_days": "400", "scanner_seconds": "5"})
    assert bad.status_code == 400 and "90" in bad.content.decode()
    response = owner_client.post("/mail/tracking/", {"form": "settings", "ip_mode": "none",
                                                     "conversion_days": "14",
                                                     "scanner_seconds": "5"})
    assert response.status_code == 302
    options = TrackingSettings.objects.get(workspace=workspace)
    assert (options.ip_mode, options.conversion_days, options.scanner_seconds) == ("none", 14, 5)
    assert AuditEvent.objects.filter(action="tracking.settings").exists()


def test_domains_are_added_once_and_removed_only_in_their_workspace(
        workspace, other_workspace, owner_client):
    assert owner_client.post("/mail/tracking/", {"form": "domain",
                                                 "host": "T.Example.jp"}).status_code == 302
    assert TrackingDomain.objects.get().host == "t.example.jp"
    taken = owner_client.post("/mail/tracking/", {"form": "domain", "host": "t.example.jp"})
    assert taken.status_code == 400
    assert owner_client.post("/mail/tracking/", {"form": "domain",
                                                 "host": "not a host"}).status_code == 400
    theirs = TrackingDomain.objects.create(workspace=other_workspace, host="t.other.jp")
    owner_client.post("/mail/tracking/", {"form": "remove", "domain": theirs.pk})
    assert TrackingDomain.objects.filter(pk=theirs.pk).exists()
    mine = TrackingDomain.objects.get(host="t.example.jp")
    owner_client.post("/mail/tracking/", {"form": "remove", "domain": mine.pk})
    assert not TrackingDomain.objects.filter(pk=mine.pk).exists()


def test_the_conversion_tag_points_to_the_tracking_host(workspace, owner_client):
    assert "tag.js" not in owner_client.get("/mail/tracking/").content.decode()
    DeliverySettings.objects.create(workspace=workspace, tracking_host="t.example.jp")
    page = owner_client.get("/mail/tracking/").content.decode()
    assert "https://t.example.jp/t/tag.js" in page and "data-conversion" in page


def test_a_role_without_settings_rights_cannot_open_it(analyst_client):
    assert analyst_client.get("/mail/tracking/").status_code == 403
