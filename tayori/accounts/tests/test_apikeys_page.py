"""API keys page: listing, creating (shown once, hashed), network allow-lists, revoking."""

from django.urls import reverse

from conftest import make_operator
from tayori.accounts.models import ApiKey, AuditEvent, Role
from tayori.accounts.tests.conftest import page_text


def create(client, **data):
    payload = {"name": "CRM sync", "permissions": ["members.view"], "allowed_networks": ""}
    payload.update(data)
    return client.post(reverse("accounts:apikey-create"), payload)


def test_it_creates_a_key_shown_once_and_stored_hashed(owner_client, workspace, owner):
    response = create(owner_client, permissions=["members.view", "members.edit"])
    assert response.status_code == 200
    raw = response.context["raw"]
    assert raw.startswith("tyr_") and raw in page_text(response)
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.find(raw)
    assert key.workspace == workspace and key.created_by == owner
    assert key.permissions == ["members.edit", "members.view"]
    assert raw not in key.key_hash
    listing = page_text(owner_client.get(reverse("accounts:apikeys")))
    assert key.prefix in listing and raw not in listing
    event = AuditEvent.objects.get(action="apikey.created")
    assert raw not in str(event.detail) and raw not in event.target
    assert event.detail == {"permissions": ["members.edit", "members.view"], "allowed_cidrs": []}


def test_it_normalizes_ipv4_and_ipv6_networks(owner_client):
    response = create(owner_client, allowed_networks="203.0.113.7/24\n2001:DB8::/32, 198.51.100.1")
    key = ApiKey.find(response.context["raw"])
    assert key.allowed_cidrs == ["203.0.113.0/24", "2001:db8::/32", "198.51.100.1/32"]
    assert key.allows_ip("2001:db8::5") and key.allows_ip("203.0.113.200")
    assert not key.allows_ip("192.0.2.1")


def test_it_names_every_malformed_network(owner_client, english):
    response = create(owner_client, allowed_networks="10.0.0.0/8\n10.0.0.0/33\nnot-an-ip")
    assert response.status_code == 200
    error = " ".join(response.context["form"].errors["allowed_networks"])
    assert "10.0.0.0/33" in error and "not-an-ip" in error
    assert not ApiKey.objects.exists()


def test_it_refuses_a_key_without_networks_when_the_workspace_requires_them(owner_client,
                                                                             workspace):
    workspace.require_key_ip_rules = True
    workspace.save()
    response = create(owner_client)
    assert response.context["form"].errors["allowed_networks"]
    assert not ApiKey.objects.exists()
    create(owner_client, allowed_networks="192.0.2.0/24")
    assert ApiKey.objects.count() == 1


def test_it_refuses_permissions_the_creator_lacks(client, workspace):
    Role.objects.create(workspace=workspace, name="Integrator",
                        permissions=["apikeys.manage", "members.view"])
    client.force_login(make_operator(workspace, "dev@sample.jp", "Integrator"))
    response = create(client, permissions=["members.view", "members.view_pii"])
    assert response.context["form"].errors["permissions"]
    response = create(client, permissions=["members.view"])
    assert ApiKey.find(response.context["raw"]) is not None


def test_it_revokes_a_key_once(owner_client, workspace):
    key, raw = ApiKey.issue(workspace, "Old", ["members.view"])
    url = reverse("accounts:apikey-revoke", args=[key.pk])
    assert owner_client.get(url).status_code == 405
    owner_client.post(url)
    first = ApiKey.objects.get(pk=key.pk).revoked_at
    owner_client.post(url)
    assert ApiKey.objects.get(pk=key.pk).revoked_at == first is not None
    assert ApiKey.find(raw) is None
    assert AuditEvent.objects.filter(action="apikey.revoked").count() == 1


def test_it_lists_only_this_workspaces_keys(owner_client, workspace, other_workspace):
    ApiKey.issue(workspace, "Ours", ["members.view"], allowed_cidrs=["192.0.2.0/24"])
    ApiKey.issue(other_workspace, "Theirs", ["members.view"])
    response = owner_client.get(reverse("accounts:apikeys"))
    html = page_text(response)
    assert "Ours" in html and "192.0.2.0/24" in html and "Theirs" not in html
