"""IP rules page: adding and deleting admin-UI networks without locking oneself out."""

from django.urls import reverse

from tayori.accounts.models import AuditEvent, IPRule
from tayori.accounts.tests.conftest import page_text

HOME = {"REMOTE_ADDR": "203.0.113.10"}
HOME6 = {"REMOTE_ADDR": "2001:db8:1::10"}


def add(client, cidr, note="", **extra):
    return client.post(reverse("accounts:iprules"), {"cidr": cidr, "note": note}, **extra)


def test_it_adds_a_rule_that_covers_the_operator_and_audits_it(owner_client, workspace):
    response = add(owner_client, "203.0.113.99/24", "Head office", **HOME)
    assert response.status_code == 302
    rule = IPRule.objects.get(workspace=workspace)
    assert rule.cidr == "203.0.113.0/24" and rule.note == "Head office"
    event = AuditEvent.objects.get(action="iprule.added")
    assert event.target == "203.0.113.0/24" and event.ip == "203.0.113.10"
    assert owner_client.get(reverse("accounts:iprules"), **HOME).status_code == 200


def test_it_adds_ipv6_rules(owner_client, workspace):
    add(owner_client, "2001:DB8:1::/48", **HOME6)
    assert IPRule.objects.get(workspace=workspace).cidr == "2001:db8:1::/48"


def test_it_refuses_a_first_rule_that_would_lock_the_operator_out(owner_client, workspace,
                                                                  english):
    response = add(owner_client, "198.51.100.0/24", **HOME)
    assert response.status_code == 200
    error = " ".join(response.context["form"].errors["cidr"])
    assert "lock you out" in error and "203.0.113.10" in error
    assert not IPRule.objects.exists()
    # An IPv6 network does not cover an IPv4 operator either.
    add(owner_client, "::/0", **HOME)
    assert not IPRule.objects.exists()


def test_once_the_operator_is_covered_other_networks_may_be_added(owner_client, workspace):
    add(owner_client, "203.0.113.0/24", **HOME)
    add(owner_client, "198.51.100.0/24", "Branch", **HOME)
    assert set(IPRule.objects.values_list("cidr", flat=True)) == {"203.0.113.0/24",
                                                                  "198.51.100.0/24"}


def test_it_refuses_malformed_and_duplicate_networks(owner_client, workspace):
    add(owner_client, "203.0.113.0/24", **HOME)
    for bad in ("203.0.113.0/24", "203.0.113.1/24", "300.1.1.1", "", "office"):
        response = add(owner_client, bad, **HOME)
        assert response.status_code == 200 and response.context["form"].errors["cidr"], bad
    assert IPRule.objects.count() == 1


def test_deleting_a_rule_may_not_lock_the_operator_out(owner_client, workspace, english):
    mine = IPRule.objects.create(workspace=workspace, cidr="203.0.113.0/24")
    branch = IPRule.objects.create(workspace=workspace, cidr="198.51.100.0/24")
    response = owner_client.post(reverse("accounts:iprule-delete", args=[mine.pk]), follow=True,
                                 **HOME)
    assert "lock you out" in page_text(response)
    assert IPRule.objects.filter(pk=mine.pk).exists()
    owner_client.post(reverse("accounts:iprule-delete", args=[branch.pk]), **HOME)
    assert not IPRule.objects.filter(pk=branch.pk).exists()
    assert AuditEvent.objects.get(action="iprule.deleted").target == "198.51.100.0/24"
    # Deleting the last rule opens the workspace to every address again, which is allowed.
    owner_client.post(reverse("accounts:iprule-delete", args=[mine.pk]), **HOME)
    assert not IPRule.objects.exists()


def test_it_lists_only_this_workspaces_rules(owner_client, workspace, other_workspace):
    IPRule.objects.create(workspace=other_workspace, cidr="192.0.2.0/24")
    response = owner_client.get(reverse("accounts:iprules"), **HOME)
    assert "192.0.2.0/24" not in page_text(response)
