import pytest
from django.urls import reverse

from conftest import make_operator
from tayori.accounts.models import AuditEvent, Role
from tayori.members.models import ListMembership, Member, MemberList


@pytest.fixture(autouse=True)
def english(workspace):
    workspace.language = "en"
    workspace.save()


@pytest.fixture
def vip(workspace):
    return MemberList.objects.create(workspace=workspace, name="VIP会員", description="上得意")


@pytest.fixture
def taro(workspace):
    return Member.objects.create(workspace=workspace, email="Taro@example.jp",
                                 phone="+819012345678")


def test_it_lists_lists_with_member_counts(owner_client, workspace, vip, taro):
    MemberList.objects.create(workspace=workspace, name="空のリスト")
    ListMembership.objects.create(member_list=vip, member=taro)
    response = owner_client.get(reverse("members:lists"))
    counts = {lst.name: lst.member_count for lst in response.context["page_obj"]}
    assert counts == {"VIP会員": 1, "空のリスト": 0}


def test_it_creates_renames_and_deletes_a_list_with_audit(owner_client, workspace):
    response = owner_client.post(reverse("members:list-create"),
                                 {"name": "春のキャンペーン", "description": ""})
    created = MemberList.objects.get()
    assert response.url == reverse("members:list-detail", args=[created.pk])
    owner_client.post(reverse("members:list-edit", args=[created.pk]),
                      {"name": "夏のキャンペーン", "description": "改名"})
    created.refresh_from_db()
    assert created.name == "夏のキャンペーン"
    confirm = owner_client.get(reverse("members:list-delete", args=[created.pk]))
    assert confirm.status_code == 200 and MemberList.objects.exists()
    owner_client.post(reverse("members:list-delete", args=[created.pk]))
    assert not MemberList.objects.exists()
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["list.created", "list.updated", "list.deleted"]


def test_a_duplicate_name_is_refused_on_the_name_field(owner_client, workspace, vip):
    response = owner_client.post(reverse("members:list-create"), {"name": "VIP会員"})
    assert list(response.context["form"].errors) == ["name"]
    other = MemberList.objects.create(workspace=workspace, name="Other")
    response = owner_client.post(reverse("members:list-edit", args=[other.pk]),
                                 {"name": "VIP会員"})
    assert list(response.context["form"].errors) == ["name"]


def test_pasting_addresses_adds_members_and_reports_the_rest(owner_client, workspace, vip, taro):
    hanako = Member.objects.create(workspace=workspace, email="hanako@example.jp")
    jiro = Member.objects.create(workspace=workspace, email="jiro@example.jp")
    ListMembership.objects.create(member_list=vip, member=jiro)
    response = owner_client.post(reverse("members:list-add-members", args=[vip.pk]), {
        "emails": "taro@EXAMPLE.JP\nhanako@example.jp\n\njiro@example.jp\n"
                  "nobody@example.jp\nnot an address\nhanako@example.jp"})
    assert response.status_code == 200
    report = response.context["report"]
    assert report["added"] == 2 and report["already"] == 1
    assert report["not_found"] == ["nobody@example.jp"]
    assert report["invalid"] == ["not an address"]
    assert set(ListMembership.objects.filter(member_list=vip).values_list(
        "member_id", flat=True)) == {taro.pk, hanako.pk, jiro.pk}
    html = response.content.decode()
    assert "nobody@example.jp" in html and "not an address" in html
    event = AuditEvent.objects.get(action="list.members_added")
    assert event.detail == {"added": 2, "not_found": 1, "invalid": 1}


def test_an_empty_paste_is_refused_on_the_field(owner_client, vip):
    response = owner_client.post(reverse("members:list-add-members", args=[vip.pk]),
                                 {"emails": "\n \n"})
    assert response.status_code == 400
    assert list(response.context["paste_form"].errors) == ["emails"]


def test_an_editor_who_may_not_see_emails_cannot_look_members_up_by_pasting_them(
        client, workspace, vip, taro):
    role = Role.objects.create(workspace=workspace, name="Clerk",
                               permissions=["members.view", "members.edit"])
    clerk = make_operator(workspace, "clerk@sample.jp", "Viewer")
    clerk.memberships.update(role=role)
    client.force_login(clerk)
    response = client.post(reverse("members:list-add-members", args=[vip.pk]),
                           {"emails": "Taro@example.jp\nnobody@example.jp"})
    assert response.status_code == 403
    assert response.context["report"] is None
    assert "may not see email addresses" in response.context["paste_form"].errors["emails"][0]
    assert not ListMembership.objects.exists()


def test_the_list_page_shows_its_members_paginated_and_masked(owner_client, teammate,
                                                              workspace, vip, taro):
    Member.objects.bulk_create([Member(workspace=workspace, email=f"m{i:03}@example.jp")
                                for i in range(60)])
    ListMembership.objects.bulk_create([ListMembership(member_list=vip, member=m)
                                        for m in Member.objects.all()])
    owners = owner_client.get(reverse("members:list-detail", args=[vip.pk]))
    assert len(owners.context["rows"]) == 50 and owners.context["page_obj"].paginator.count == 61
    assert len(owner_client.get(reverse("members:list-detail", args=[vip.pk]), {"page": 2}
                                ).context["rows"]) == 11
    owner_client.force_login(teammate)  # now an Analyst
    html = "".join(owner_client.get(reverse("members:list-detail", args=[vip.pk]), {"page": n}
                                    ).content.decode() for n in (1, 2))
    assert "Ta***@example.jp" in html and "Taro@example.jp" not in html
    assert "+819012345678" not in html


def test_removing_a_member_from_the_list(owner_client, vip, taro):
    ListMembership.objects.create(member_list=vip, member=taro)
    response = owner_client.post(reverse("members:list-remove-member", args=[vip.pk, taro.pk]))
    assert response.url == reverse("members:list-detail", args=[vip.pk])
    assert not ListMembership.objects.exists() and Member.objects.filter(pk=taro.pk).exists()
    assert AuditEvent.objects.filter(action="member.list_removed",
                                     target=f"member:{taro.pk}").exists()


def test_an_analyst_sees_lists_but_cannot_change_them(analyst_client, vip, taro):
    assert analyst_client.get(reverse("members:lists")).status_code == 200
    page = analyst_client.get(reverse("members:list-detail", args=[vip.pk]))
    assert page.status_code == 200
    assert reverse("members:list-add-members", args=[vip.pk]) not in page.content.decode()
    assert analyst_client.post(reverse("members:list-create"), {"name": "X"}).status_code == 403
    assert analyst_client.post(reverse("members:list-edit", args=[vip.pk]),
                               {"name": "X"}).status_code == 403
    assert analyst_client.post(reverse("members:list-delete", args=[vip.pk])).status_code == 403
    assert analyst_client.post(reverse("members:list-add-members", args=[vip.pk]),
                               {"emails": "taro@example.jp"}).status_code == 403
    assert analyst_client.post(reverse("members:list-remove-member", args=[vip.pk, taro.pk])
                               ).status_code == 403
    assert MemberList.objects.get().name == "VIP会員" and not ListMembership.objects.exists()


def test_another_workspaces_lists_and_members_are_not_found(owner_client, other_workspace, vip):
    theirs = MemberList.objects.create(workspace=other_workspace, name="Theirs")
    their_member = Member.objects.create(workspace=other_workspace, email="x@other.example")
    ListMembership.objects.create(member_list=theirs, member=their_member)
    for name in ("members:list-detail", "members:list-edit", "members:list-delete"):
        assert owner_client.get(reverse(name, args=[theirs.pk])).status_code == 404
    assert owner_client.post(reverse("members:list-delete", args=[theirs.pk])).status_code == 404
    assert owner_client.post(reverse("members:list-add-members", args=[theirs.pk]),
                             {"emails": "x@other.example"}).status_code == 404
    assert owner_client.post(reverse("members:list-remove-member",
                                     args=[theirs.pk, their_member.pk])).status_code == 404
    assert owner_client.post(reverse("members:list-remove-member",
                                     args=[vip.pk, their_member.pk])).status_code == 404
    # Another workspace's member is "not found" when pasted into one of ours.
    response = owner_client.post(reverse("members:list-add-members", args=[vip.pk]),
                                 {"emails": "x@other.example"})
    assert response.context["report"]["not_found"] == ["x@other.example"]
    assert ListMembership.objects.count() == 1
    assert "Theirs" not in owner_client.get(reverse("members:lists")).content.decode()
