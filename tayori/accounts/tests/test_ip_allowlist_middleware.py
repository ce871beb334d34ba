"""The admin-UI IP allow-list enforced by WorkspaceMiddleware, and who is believed to be calling."""

import pytest
from django.urls import reverse

from tayori.accounts.models import IPRule


@pytest.fixture
def office_only(workspace):
    IPRule.objects.create(workspace=workspace, cidr="203.0.113.0/24")
    IPRule.objects.create(workspace=workspace, cidr="2001:db8:1::/48")


def get_home(client, **meta):
    return client.get(reverse("home"), **meta)


def test_it_lets_an_address_inside_the_rules_in(owner_client, office_only):
    assert get_home(owner_client, REMOTE_ADDR="203.0.113.5").status_code == 200
    assert get_home(owner_client, REMOTE_ADDR="2001:db8:1:ff::1").status_code == 200


def test_it_refuses_an_address_outside_the_rules(owner_client, office_only):
    assert get_home(owner_client, REMOTE_ADDR="198.51.100.5").status_code == 403
    assert get_home(owner_client, REMOTE_ADDR="2001:db8:2::1").status_code == 403
    assert owner_client.get(reverse("accounts:operators"),
                            REMOTE_ADDR="198.51.100.5").status_code == 403


def test_an_ipv4_mapped_address_does_not_slip_through_ipv6_rules(owner_client, workspace):
    IPRule.objects.create(workspace=workspace, cidr="2001:db8:1::/48")
    assert get_home(owner_client, REMOTE_ADDR="203.0.113.5").status_code == 403


def test_without_rules_every_address_is_let_in(owner_client):
    assert get_home(owner_client, REMOTE_ADDR="198.51.100.5").status_code == 200


def test_the_rules_of_another_workspace_do_not_apply(owner_client, other_workspace):
    IPRule.objects.create(workspace=other_workspace, cidr="192.0.2.0/24")
    assert get_home(owner_client, REMOTE_ADDR="198.51.100.5").status_code == 200


def test_forwarded_for_is_ignored_from_an_untrusted_peer(owner_client, office_only, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    response = get_home(owner_client, REMOTE_ADDR="198.51.100.5",
                        HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert response.status_code == 403


def test_forwarded_for_is_ignored_when_no_proxy_is_trusted(owner_client, office_only, settings):
    settings.TRUSTED_PROXIES = []
    response = get_home(owner_client, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert response.status_code == 403


def test_forwarded_for_is_honored_from_a_trusted_proxy(owner_client, office_only, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::/8"]
    assert get_home(owner_client, REMOTE_ADDR="10.0.0.2",
                    HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 200
    assert get_home(owner_client, REMOTE_ADDR="fd00::2",
                    HTTP_X_FORWARDED_FOR="2001:db8:1::7").status_code == 200
    assert get_home(owner_client, REMOTE_ADDR="10.0.0.2",
                    HTTP_X_FORWARDED_FOR="198.51.100.5").status_code == 403


def test_a_client_cannot_forge_its_address_by_prepending_to_forwarded_for(owner_client,
                                                                          office_only, settings):
    # The proxy appends the real client (198.51.100.5) after whatever the client sent.
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    response = get_home(owner_client, REMOTE_ADDR="10.0.0.2",
                        HTTP_X_FORWARDED_FOR="203.0.113.5, 198.51.100.5")
    assert response.status_code == 403


def test_chained_trusted_proxies_are_walked_to_the_client(owner_client, office_only, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    response = get_home(owner_client, REMOTE_ADDR="10.0.0.2",
                        HTTP_X_FORWARDED_FOR="203.0.113.5, 10.1.1.1")
    assert response.status_code == 200


def test_the_sign_in_page_is_not_blocked_for_strangers(client, office_only):
    # Rules are per workspace, so they apply once someone is signed in to one.
    assert client.get(reverse("login"), REMOTE_ADDR="198.51.100.5").status_code == 200
