import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from tayori.accounts.models import AuditEvent
from tayori.members.models import Suppression


@pytest.fixture(autouse=True)
def english(workspace):
    workspace.language = "en"
    workspace.save()


@pytest.fixture
def bounced(workspace):
    return Suppression.objects.create(workspace=workspace, kind="email",
                                      value="taro@example.jp", reason="hard bounce",
                                      source="inbound")


@pytest.fixture
def phone(workspace):
    return Suppression.objects.create(workspace=workspace, kind="phone", value="+819012345678",
                                      reason="苦情", source="manual")


def page(client, **params):
    return client.get(reverse("members:suppressions"), params)


def test_it_shows_suppressions_with_values_for_the_pii_right(owner_client, bounced, phone):
    html = page(owner_client).content.decode()
    assert "taro@example.jp" in html and "+819012345678" in html
    assert "hard bounce" in html and "苦情" in html and "inbound" in html


def test_an_analyst_sees_values_masked(analyst_client, bounced, phone):
    html = page(analyst_client).content.decode()
    assert "ta***@example.jp" in html and "taro@example.jp" not in html
    assert "+819012345678" not in html


def test_it_searches_by_value_reason_and_source(owner_client, bounced, phone):
    def found(**params):
        return [r["suppression"] for r in page(owner_client, **params).context["rows"]]

    assert found(q="taro@") == [bounced]
    assert found(q="090-1234-5678") == [phone]  # the way people write it
    assert found(q="苦情") == [phone]
    assert found(kind="email") == [bounced]


def test_an_analyst_cannot_search_by_address_or_number(analyst_client, bounced, phone):
    for query in ("taro@example.jp", "09012345678"):
        response = page(analyst_client, q=query)
        assert response.context["refusal"] and response.context["rows"] == []
    assert [r["suppression"] for r in page(analyst_client, q="bounce").context["rows"]] == [
        bounced]
    # "taro" appears only in the address, which an Analyst does not search.
    assert page(analyst_client, q="taro").context["rows"] == []


def test_it_paginates(owner_client, workspace):
    Suppression.objects.bulk_create([Suppression(workspace=workspace, value=f"s{i}@example.jp",
                                                 reason="r") for i in range(75)])
    assert len(page(owner_client).context["rows"]) == 50
    assert len(page(owner_client, page=2).context["rows"]) == 25


def test_it_adds_normalized_addresses_and_numbers_and_audits_masked(owner_client, workspace):
    expiry = (timezone.localtime() + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    response = owner_client.post(reverse("members:suppression-create"), {
        "kind": "email", "value": " Hanako@Example.JP ", "reason": "本人の申し出",
        "source": "", "expires_at": expiry})
    assert response.status_code == 302
    email = Suppression.objects.get(kind="email")
    assert email.value == "Hanako@example.jp" and email.source == "manual"
    assert email.expires_at > timezone.now()
    owner_client.post(reverse("members:suppression-create"), {
        "kind": "phone", "value": "０９０－１１１１－２２２２", "reason": "苦情"})
    assert Suppression.objects.get(kind="phone").value == "+819011112222"
    event = AuditEvent.objects.filter(action="suppression.added").first()
    assert event.detail["value"] == "+81********22"
    assert "Hanako@example.jp" not in str(
        list(AuditEvent.objects.values_list("detail", flat=True)))


def test_bad_values_and_duplicates_are_refused_on_the_field(owner_client, bounced):
    def errors(**data):
        response = owner_client.post(reverse("members:suppression-create"),
                                     {"reason": "r", **data})
        assert response.status_code == 200
        return response.context["form"].errors

    assert list(errors(kind="email", value="not-an-address")) == ["value"]
    assert list(errors(kind="phone", value="12")) == ["value"]
    assert list(errors(kind="email", value="taro@EXAMPLE.jp")) == ["value"]  # already there
    assert list(errors(kind="email", value="new@example.jp", expires_at="2001-01-01T00:00")
                ) == ["expires_at"]
    assert "reason" in errors(kind="email", value="new@example.jp", reason="")
    assert Suppression.objects.count() == 1


def test_expiry_is_shown_in_the_workspace_time_zone(owner_client, bounced):
    bounced.expires_at = dt.datetime(2030, 3, 31, 16, 30, tzinfo=dt.UTC)
    bounced.save()
    assert "2030-04-01 01:30" in page(owner_client).content.decode()


def test_it_removes_a_suppression_and_audits_it(owner_client, bounced):
    response = owner_client.post(reverse("members:suppression-delete", args=[bounced.pk]))
    assert response.url == reverse("members:suppressions")
    assert not Suppression.objects.exists()
    event = AuditEvent.objects.get(action="suppression.removed")
    assert event.target == f"suppression:{bounced.pk}" and event.detail["value"] == (
        "ta***@example.jp")


def test_an_analyst_cannot_add_or_remove(analyst_client, bounced):
    assert analyst_client.get(reverse("members:suppression-create")).status_code == 403
    assert analyst_client.post(reverse("members:suppression-create"), {
        "kind": "email", "value": "x@example.jp", "reason": "r"}).status_code == 403
    assert analyst_client.post(reverse("members:suppression-delete", args=[bounced.pk])
                               ).status_code == 403
    assert list(Suppression.objects.all()) == [bounced]


def test_another_workspaces_suppressions_are_not_found(owner_client, other_workspace):
    theirs = Suppression.objects.create(workspace=other_workspace, value="x@other.example",
                                        reason="r")
    assert owner_client.post(reverse("members:suppression-delete", args=[theirs.pk])
                             ).status_code == 404
    assert Suppression.objects.filter(pk=theirs.pk).exists()
    assert "x@other.example" not in page(owner_client).content.decode()
    # The same address may be suppressed in each workspace independently.
    response = owner_client.post(reverse("members:suppression-create"), {
        "kind": "email", "value": "x@other.example", "reason": "r"})
    assert response.status_code == 302
