import json

import pytest
from django.urls import reverse

from conftest import make_operator
from tayori.accounts.models import AuditEvent, Role
from tayori.members.models import Attribute, Member


@pytest.fixture(autouse=True)
def english(workspace):
    workspace.language = "en"
    workspace.save()


def definition(**fields):
    data = {"key": "", "label": "", "type": "text", "choices_text": ""}
    data.update(fields)
    return {k: v for k, v in data.items() if v is not False}


def test_it_lists_attributes_in_display_order(owner_client, workspace):
    Attribute.objects.create(workspace=workspace, key="b", label="二番", position=1)
    Attribute.objects.create(workspace=workspace, key="a", label="一番", position=0)
    html = owner_client.get(reverse("members:attributes")).content.decode()
    assert html.index("一番") < html.index("二番")


def test_it_creates_an_attribute_at_the_end_and_audits_it(owner_client, workspace):
    Attribute.objects.create(workspace=workspace, key="a", label="A", position=4)
    response = owner_client.post(reverse("members:attribute-create"), definition(
        key="plan", label="プラン", type="choice", choices_text="free\n gold \n\nfree",
        required="on", pii=False))
    assert response.status_code == 302
    plan = Attribute.objects.get(key="plan")
    assert plan.choices == ["free", "gold"] and plan.required and not plan.pii
    assert plan.position == 5 and plan.workspace == workspace
    assert AuditEvent.objects.filter(action="attribute.created",
                                     target=f"attribute:{plan.pk}").exists()


@pytest.mark.parametrize(("key", "problem"), [
    ("Name", "lower-case"), ("1st", "lower-case"), ("a__b", "lower-case"),
    ("email", "reserved"), ("taken", "already exists"),
])
def test_it_refuses_bad_keys_on_the_key_field(owner_client, workspace, key, problem):
    Attribute.objects.create(workspace=workspace, key="taken", label="T")
    response = owner_client.post(reverse("members:attribute-create"),
                                 definition(key=key, label="L"))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == ["key"] and problem in errors["key"][0].lower()


def test_a_choice_type_needs_choices(owner_client):
    response = owner_client.post(reverse("members:attribute-create"),
                                 definition(key="plan", label="P", type="choice"))
    assert list(response.context["form"].errors) == ["choices_text"]
    assert not Attribute.objects.exists()


def test_the_key_cannot_be_changed_after_creation(owner_client, workspace):
    code = Attribute.objects.create(workspace=workspace, key="code", label="コード")
    response = owner_client.post(reverse("members:attribute-edit", args=[code.pk]),
                                 definition(key="renamed", label="会員コード"))
    assert response.status_code == 302
    code.refresh_from_db()
    assert code.key == "code" and code.label == "会員コード"


def test_changing_the_type_converts_stored_values(owner_client, workspace):
    code = Attribute.objects.create(workspace=workspace, key="code", label="コード")
    member = Member.objects.create(workspace=workspace, email="a@example.jp",
                                   attributes={"code": "42"})
    response = owner_client.post(reverse("members:attribute-edit", args=[code.pk]),
                                 definition(key="code", label="コード", type="number"))
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.attributes == {"code": 42}
    event = AuditEvent.objects.get(action="attribute.updated")
    assert event.detail["changes"] == {"type": ["text", "number"]}
    assert event.detail["converted"] == 1


def test_a_blocked_type_change_lists_the_members_and_why(owner_client, workspace):
    code = Attribute.objects.create(workspace=workspace, key="code", label="コード")
    Member.objects.create(workspace=workspace, email="ok@example.jp", attributes={"code": "1"})
    bad = Member.objects.create(workspace=workspace, email="bad@example.jp",
                                attributes={"code": "abc"})
    Member.objects.bulk_create([Member(workspace=workspace, email=f"m{i}@example.jp",
                                       attributes={"code": f"x{i}"}) for i in range(22)])
    response = owner_client.post(reverse("members:attribute-edit", args=[code.pk]),
                                 definition(key="code", label="コード", type="number"))
    assert response.status_code == 409
    html = response.content.decode()
    assert "23 members have values" in html and "and 3 more members" in html
    assert reverse("members:detail", args=[bad.pk]) in html and "bad@example.jp" in html
    assert "abc" in html  # the reason quotes the value
    assert len(response.context["blocked"]["rows"]) == 20
    code.refresh_from_db()
    assert code.type == "text"
    assert Member.objects.get(pk=bad.pk).attributes == {"code": "abc"}


def test_blockers_are_masked_for_an_editor_without_the_pii_right(client, workspace):
    role = Role.objects.create(workspace=workspace, name="Clerk",
                               permissions=["members.view", "members.edit"])
    clerk = make_operator(workspace, "clerk@sample.jp", "Viewer")
    clerk.memberships.update(role=role)
    client.force_login(clerk)
    secret = Attribute.objects.create(workspace=workspace, key="secret", label="秘密", pii=True)
    Member.objects.create(workspace=workspace, email="hidden@example.jp",
                          attributes={"secret": "口座1234"})
    response = client.post(reverse("members:attribute-edit", args=[secret.pk]),
                           definition(key="secret", label="秘密", type="number", pii="on"))
    assert response.status_code == 409
    html = response.content.decode()
    assert "hi***@example.jp" in html
    assert "hidden@example.jp" not in html and "口座1234" not in html


def test_turning_on_required_is_refused_while_members_lack_a_value(owner_client, workspace):
    code = Attribute.objects.create(workspace=workspace, key="code", label="コード")
    empty = Member.objects.create(workspace=workspace, email="empty@example.jp")
    response = owner_client.post(reverse("members:attribute-edit", args=[code.pk]),
                                 definition(key="code", label="コード", required="on"))
    assert response.status_code == 409
    assert [r["member_id"] for r in response.context["blocked"]["rows"]] == [empty.pk]
    assert not Attribute.objects.get(pk=code.pk).required


def test_moving_swaps_an_attribute_with_its_neighbour(owner_client, workspace):
    a = Attribute.objects.create(workspace=workspace, key="a", label="A")
    b = Attribute.objects.create(workspace=workspace, key="b", label="B")
    c = Attribute.objects.create(workspace=workspace, key="c", label="C")
    owner_client.post(reverse("members:attribute-move", args=[c.pk, "up"]))
    assert list(Attribute.objects.values_list("key", flat=True)) == ["a", "c", "b"]
    owner_client.post(reverse("members:attribute-move", args=[a.pk, "down"]))
    assert list(Attribute.objects.values_list("key", flat=True)) == ["c", "a", "b"]
    owner_client.post(reverse("members:attribute-move", args=[c.pk, "up"]))  # already first
    assert list(Attribute.objects.values_list("key", flat=True)) == ["c", "a", "b"]
    assert owner_client.post(reverse("members:attribute-move", args=[b.pk, "sideways"])
                             ).status_code == 404
    assert AuditEvent.objects.filter(action="attribute.moved").count() == 2


def test_deleting_says_how_many_members_have_a_value_and_removes_them(owner_client, workspace):
    code = Attribute.objects.create(workspace=workspace, key="code", label="コード")
    m1 = Member.objects.create(workspace=workspace, email="a@example.jp",
                               attributes={"code": "1", "keep": "x"})
    Member.objects.create(workspace=workspace, email="b@example.jp", attributes={"code": "2"})
    Member.objects.create(workspace=workspace, email="c@example.jp")
    confirm = owner_client.get(reverse("members:attribute-delete", args=[code.pk]))
    assert confirm.context["count"] == 2
    assert "2 members have a value" in confirm.content.decode()
    owner_client.post(reverse("members:attribute-delete", args=[code.pk]))
    assert not Attribute.objects.filter(pk=code.pk).exists()
    m1.refresh_from_db()
    assert m1.attributes == {"keep": "x"}
    assert not Member.objects.filter(attributes__has_key="code").exists()
    event = AuditEvent.objects.get(action="attribute.deleted")
    assert event.detail == {"key": "code", "members_cleared": 2}


def test_an_analyst_cannot_see_or_change_attributes(analyst_client, workspace):
    code = Attribute.objects.create(workspace=workspace, key="code", label="コード")
    assert analyst_client.get(reverse("members:attributes")).status_code == 403
    assert analyst_client.post(reverse("members:attribute-create"),
                               definition(key="x", label="X")).status_code == 403
    assert analyst_client.post(reverse("members:attribute-edit", args=[code.pk]),
                               definition(key="code", label="Y")).status_code == 403
    assert analyst_client.post(reverse("members:attribute-delete", args=[code.pk])
                               ).status_code == 403
    assert analyst_client.post(reverse("members:attribute-move", args=[code.pk, "up"])
                               ).status_code == 403
    assert Attribute.objects.get().label == "コード"


def test_another_workspaces_attributes_are_not_found(owner_client, other_workspace):
    theirs = Attribute.objects.create(workspace=other_workspace, key="code", label="Theirs")
    Member.objects.create(workspace=other_workspace, email="x@example.jp",
                          attributes={"code": "abc"})
    assert owner_client.get(reverse("members:attribute-edit", args=[theirs.pk])
                            ).status_code == 404
    assert owner_client.post(reverse("members:attribute-edit", args=[theirs.pk]),
                             definition(key="code", label="Mine", type="number")
                             ).status_code == 404
    assert owner_client.post(reverse("members:attribute-delete", args=[theirs.pk])
                             ).status_code == 404
    assert owner_client.post(reverse("members:attribute-move", args=[theirs.pk, "up"])
                             ).status_code == 404
    assert "Theirs" not in owner_client.get(reverse("members:attributes")).content.decode()
    theirs.refresh_from_db()
    assert theirs.label == "Theirs" and theirs.type == "text"


def test_a_key_used_in_another_workspace_is_free_here(owner_client, workspace, other_workspace):
    Attribute.objects.create(workspace=other_workspace, key="code", label="Theirs")
    response = owner_client.post(reverse("members:attribute-create"),
                                 definition(key="code", label="Ours"))
    assert response.status_code == 302
    assert Attribute.objects.filter(workspace=workspace, key="code").exists()


def test_the_form_asks_for_the_label_first_and_offers_the_next_numbered_key(owner_client,
                                                                             workspace):
    for key in ("plan", "attr_2", "attr_3"):
        Attribute.objects.create(workspace=workspace, key=key, label=key)
    page = owner_client.get(reverse("members:attribute-create"))
    form = page.context["form"]
    assert [field.name for field in form.visible_fields()][:3] == ["label", "key", "type"]
    attrs = form.fields["key"].widget.attrs
    assert attrs["data-fallback"] == "attr_4"  # attr_3 would be the fourth; it is taken
    assert {"plan", "attr_2", "email"} <= set(json.loads(attrs["data-taken"]))
    assert 'data-fallback="attr_4"' in page.content.decode()


def test_another_workspaces_keys_do_not_shape_the_suggestion(owner_client, other_workspace):
    Attribute.objects.create(workspace=other_workspace, key="attr_1", label="theirs")
    attrs = owner_client.get(reverse("members:attribute-create")).context["form"] \
        .fields["key"].widget.attrs
    assert attrs["data-fallback"] == "attr_1" and "attr_1" not in json.loads(attrs["data-taken"])


def test_editing_offers_no_key_suggestion(owner_client, workspace):
    plan = Attribute.objects.create(workspace=workspace, key="plan", label="Plan")
    form = owner_client.get(reverse("members:attribute-edit", args=[plan.pk])).context["form"]
    assert form.fields["key"].disabled and "data-fallback" not in form.fields["key"].widget.attrs
