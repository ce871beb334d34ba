"""Who may open the administration pages, and that other workspaces' objects are out of reach."""

import pytest
from django.urls import reverse

from tayori.accounts.models import ApiKey, IPRule, Membership, Role
from tayori.accounts.tests.conftest import role, seat

PAGES = ["accounts:operators", "accounts:operator-add", "accounts:roles", "accounts:role-create",
         "accounts:apikeys", "accounts:apikey-create", "accounts:iprules", "accounts:audit",
         "accounts:audit-export", "accounts:settings"]


@pytest.mark.parametrize("name", PAGES)
def test_an_analyst_is_refused_every_administration_page(analyst_client, name):
    assert analyst_client.get(reverse(name)).status_code == 403
    assert analyst_client.post(reverse(name), {}).status_code == 403


@pytest.mark.parametrize("name", PAGES)
def test_a_visitor_is_sent_to_sign_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


@pytest.mark.parametrize("name", PAGES)
def test_an_owner_opens_every_administration_page(owner_client, name):
    assert owner_client.get(reverse(name)).status_code == 200


def test_an_analyst_cannot_act_on_objects_either(analyst_client, workspace, owner, teammate):
    key, _raw = ApiKey.issue(workspace, "k", ["members.view"])
    custom = Role.objects.create(workspace=workspace, name="Desk", permissions=[])
    rule = IPRule.objects.create(workspace=workspace, cidr="0.0.0.0/0")
    owner_seat = seat(workspace, owner)
    attempts = [
        reverse("accounts:operator-role", args=[owner_seat.pk]),
        reverse("accounts:operator-remove", args=[owner_seat.pk]),
        reverse("accounts:operator-unlock", args=[owner_seat.pk]),
        reverse("accounts:role-edit", args=[custom.pk]),
        reverse("accounts:role-delete", args=[custom.pk]),
        reverse("accounts:apikey-revoke", args=[key.pk]),
        reverse("accounts:iprule-delete", args=[rule.pk]),
    ]
    for url in attempts:
        assert analyst_client.post(url, {"role": role(workspace, "Analyst").pk}).status_code == 403
    assert Membership.objects.filter(pk=owner_seat.pk, role__name="Owner").exists()
    assert Role.objects.filter(pk=custom.pk).exists() and IPRule.objects.filter(pk=rule.pk).exists()
    key.refresh_from_db()
    assert key.active


def test_another_workspaces_objects_are_not_found(owner_client, other_workspace, outsider):
    key, raw = ApiKey.issue(other_workspace, "theirs", ["members.view"])
    custom = Role.objects.create(workspace=other_workspace, name="Desk", permissions=[])
    rule = IPRule.objects.create(workspace=other_workspace, cidr="192.0.2.0/24")
    their_seat = seat(other_workspace, outsider)
    for url, data in [
        (reverse("accounts:operator-role", args=[their_seat.pk]),
         {"role": role(other_workspace, "Viewer").pk}),
        (reverse("accounts:operator-remove", args=[their_seat.pk]), {}),
        (reverse("accounts:operator-unlock", args=[their_seat.pk]), {}),
        (reverse("accounts:role-edit", args=[custom.pk]), {"name": "Mine", "permissions": []}),
        (reverse("accounts:role-delete", args=[custom.pk]), {}),
        (reverse("accounts:apikey-revoke", args=[key.pk]), {}),
        (reverse("accounts:iprule-delete", args=[rule.pk]), {}),
    ]:
        assert owner_client.post(url, data).status_code == 404, url
    assert seat(other_workspace, outsider).role.name == "Owner"
    custom.refresh_from_db()
    assert custom.name == "Desk"
    assert ApiKey.find(raw) is not None and IPRule.objects.filter(pk=rule.pk).exists()
