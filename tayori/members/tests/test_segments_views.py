"""Segment pages: the list with live counts, the builder's live count and preview, saving with
validation errors, deletion, permissions, masking and workspace scoping."""

import json

import pytest
from django.urls import reverse

from conftest import make_operator
from tayori.accounts.models import AuditEvent, Role
from tayori.members.models import Attribute, Member, MemberList, Segment


@pytest.fixture(autouse=True)
def english(workspace):
    workspace.language = "en"
    workspace.save()


@pytest.fixture
def audience(workspace):
    Attribute.objects.create(workspace=workspace, key="prefecture", label="都道府県", type="text")
    Attribute.objects.create(workspace=workspace, key="points", label="ポイント", type="number")
    Attribute.objects.create(workspace=workspace, key="memo", label="メモ", type="text", pii=True)
    return [
        Member.objects.create(workspace=workspace, email="taro@example.jp",
                              attributes={"prefecture": "東京都", "points": 10, "memo": "秘密"}),
        Member.objects.create(workspace=workspace, email="hana@example.jp",
                              attributes={"prefecture": "大阪府", "points": 30}),
        Member.objects.create(workspace=workspace, email="jiro@example.jp", status="bounced",
                              attributes={"prefecture": "東京都", "points": 50}),
    ]


def tree(*conditions, op="and"):
    return {"op": op, "conditions": list(conditions)}


TOKYO = {"field": "prefecture", "operator": "equals", "value": "東京都"}
ACTIVE = {"field": "status", "operator": "equals", "value": "active"}


@pytest.fixture
def tokyo(workspace, audience):
    return Segment.objects.create(workspace=workspace, name="東京の会員", description="関東キャンペーン",
                                  definition=tree(TOKYO))


def live(client, definition, **extra):
    return client.post(reverse("members:segment-live"),
                       {"definition": json.dumps(definition), **extra})


def test_it_lists_segments_and_loads_each_count(owner_client, tokyo):
    page = owner_client.get(reverse("members:segments"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "東京の会員" in body
    count_url = reverse("members:segment-count", args=[tokyo.pk])
    assert f'hx-get="{count_url}"' in body
    count = owner_client.get(count_url)
    assert count.status_code == 200 and count.context["total"] == 2


def test_a_segment_that_cannot_run_says_so_in_the_list(owner_client, workspace, tokyo):
    Segment.objects.filter(pk=tokyo.pk).update(
        definition=tree({"field": "nickname", "operator": "equals", "value": "x"}))
    count = owner_client.get(reverse("members:segment-count", args=[tokyo.pk]))
    assert count.status_code == 200
    assert "Unknown field “nickname”" in count.context["error"]


def test_the_live_count_follows_the_conditions(owner_client, audience):
    assert live(owner_client, tree()).context["outcome"]["total"] == 3
    assert live(owner_client, tree(TOKYO)).context["outcome"]["total"] == 2
    both = live(owner_client, tree(TOKYO, ACTIVE))
    assert both.context["outcome"]["total"] == 1
    assert [row["member"].email for row in both.context["outcome"]["rows"]] == ["taro@example.jp"]
    assert "taro@example.jp" in both.content.decode()


def test_the_live_count_names_a_bad_condition_instead_of_counting(owner_client, audience):
    response = live(owner_client, tree(TOKYO, {"field": "points", "operator": "gt", "value": "many"}))
    assert response.status_code == 200
    [error] = response.context["outcome"]["errors"]
    assert error.startswith("Condition 2: ポイント: Expected a number")
    assert "total" not in response.context["outcome"]


def test_the_preview_masks_personal_information_for_an_analyst(analyst_client, audience):
    response = live(analyst_client, tree(TOKYO))
    body = response.content.decode()
    assert response.context["outcome"]["total"] == 2
    assert "ta***@example.jp" in body and "taro@example.jp" not in body
    assert "秘密" not in body


def test_an_analyst_may_not_count_by_a_masked_field(analyst_client, audience):
    for field in ("email", "memo"):
        response = live(analyst_client, tree({"field": field, "operator": "starts_with", "value": "ta"}))
        [error] = response.context["outcome"]["errors"]
        assert "needs permission to view personal information" in error
        assert "total" not in response.context["outcome"]


def test_it_creates_a_segment_with_audit(owner_client, workspace, audience):
    response = owner_client.post(reverse("members:segment-create"), {
        "name": "大口顧客", "description": "",
        "definition": json.dumps(tree({"field": "points", "operator": "gte", "value": "３０"})),
    })
    segment = Segment.objects.get(workspace=workspace, name="大口顧客")
    assert response.status_code == 302
    assert response.url == reverse("members:segment", args=[segment.pk])
    assert segment.definition == tree({"field": "points", "operator": "gte", "value": 30})
    event = AuditEvent.objects.get(action="segment.created")
    assert event.target == f"segment:{segment.pk}" and event.detail["name"] == "大口顧客"
    detail = owner_client.get(response.url)
    assert detail.context["outcome"]["total"] == 2


def test_saving_shows_every_bad_condition_and_stores_nothing(owner_client, workspace, audience):
    definition = tree(TOKYO, tree({"field": "nickname", "operator": "equals", "value": "x"},
                                  {"field": "points", "operator": "between", "value": [9, 1]}))
    response = owner_client.post(reverse("members:segment-create"), {
        "name": "壊れた", "definition": json.dumps(definition)})
    assert response.status_code == 400
    assert not Segment.objects.exists()
    errors = response.context["condition_errors"]
    assert [e["where"] for e in errors] == ["2.1", "2.2"]
    body = response.content.decode()
    assert "Condition 2.1: Unknown field “nickname”" in body
    # The builder gets back what was posted, to fix rather than rebuild.
    assert response.context["tree"] == definition


def test_a_duplicate_name_is_refused(owner_client, tokyo):
    response = owner_client.post(reverse("members:segment-create"), {
        "name": "東京の会員", "definition": json.dumps(tree())})
    assert response.status_code == 400
    assert "already exists" in response.context["form"].errors["name"][0]
    assert Segment.objects.count() == 1


def test_it_edits_a_segment_with_audit(owner_client, tokyo):
    page = owner_client.get(reverse("members:segment-edit", args=[tokyo.pk]))
    assert page.status_code == 200
    assert json.loads(page.context["form"]["definition"].value()) == tokyo.definition
    assert "segment-builder.js" in page.content.decode()
    response = owner_client.post(reverse("members:segment-edit", args=[tokyo.pk]), {
        "name": "東京のアクティブ会員", "description": "",
        "definition": json.dumps(tree(TOKYO, ACTIVE))})
    assert response.status_code == 302
    tokyo.refresh_from_db()
    assert tokyo.name == "東京のアクティブ会員" and len(tokyo.definition["conditions"]) == 2
    event = AuditEvent.objects.get(action="segment.updated")
    assert event.detail["old_name"] == "東京の会員" and event.detail["conditions"] == 2


def test_a_segment_cannot_include_itself(owner_client, tokyo):
    itself = tree({"field": "segment", "operator": "in_segment", "value": tokyo.pk})
    response = owner_client.post(reverse("members:segment-edit", args=[tokyo.pk]), {
        "name": tokyo.name, "definition": json.dumps(itself)})
    assert response.status_code == 400
    assert "cannot include or exclude itself" in response.content.decode()
    live_check = live(owner_client, itself, segment=tokyo.pk)
    assert "itself" in live_check.context["outcome"]["errors"][0]


def test_the_builder_offers_the_workspace_fields_lists_and_other_segments(owner_client, workspace, tokyo):
    MemberList.objects.create(workspace=workspace, name="VIP")
    other = Segment.objects.create(workspace=workspace, name="全員", definition={})
    page = owner_client.get(reverse("members:segment-edit", args=[tokyo.pk]))
    catalog = page.context["catalog"]
    assert {"prefecture", "points", "memo", "email"} <= {f["name"] for f in catalog["fields"]}
    assert [s["id"] for s in catalog["segments"]] == [other.pk]  # not itself
    assert [entry["name"] for entry in catalog["lists"]] == ["VIP"]
    assert 'id="segment-catalog"' in page.content.decode()


def test_it_deletes_a_segment_with_audit(owner_client, tokyo):
    confirm = owner_client.get(reverse("members:segment-delete", args=[tokyo.pk]))
    assert confirm.status_code == 200
    response = owner_client.post(reverse("members:segment-delete", args=[tokyo.pk]))
    assert response.status_code == 302 and response.url == reverse("members:segments")
    assert not Segment.objects.exists()
    assert AuditEvent.objects.get(action="segment.deleted").detail["name"] == "東京の会員"


def test_a_segment_used_by_another_cannot_be_deleted(owner_client, workspace, tokyo):
    Segment.objects.create(workspace=workspace, name="東京以外",
                           definition=tree({"field": "segment", "operator": "not_in_segment",
                                            "value": tokyo.pk}))
    response = owner_client.post(reverse("members:segment-delete", args=[tokyo.pk]))
    assert response.status_code == 409
    assert "東京以外" in response.content.decode()
    assert Segment.objects.filter(pk=tokyo.pk).exists()
    assert not AuditEvent.objects.filter(action="segment.deleted").exists()


def test_the_detail_page_describes_conditions_masked_for_an_analyst(analyst_client, workspace, tokyo):
    secret = Segment.objects.create(workspace=workspace, name="太郎", definition=tree(
        {"field": "email", "operator": "equals", "value": "taro@example.jp"}))
    page = analyst_client.get(reverse("members:segment", args=[secret.pk]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "taro@example.jp" not in body and "***" in body
    # A saved segment may use a field the analyst cannot filter by; it still counts for them.
    assert page.context["outcome"]["total"] == 1
    assert reverse("members:segment-edit", args=[secret.pk]) not in body


def test_an_analyst_sees_segments_but_cannot_save_them(analyst_client, workspace, tokyo):
    assert analyst_client.get(reverse("members:segments")).status_code == 200
    assert "New segment" not in analyst_client.get(reverse("members:segments")).content.decode()
    assert analyst_client.get(reverse("members:segment", args=[tokyo.pk])).status_code == 200
    assert analyst_client.get(reverse("members:segment-create")).status_code == 403
    created = analyst_client.post(reverse("members:segment-create"), {
        "name": "勝手に", "definition": json.dumps(tree())})
    assert created.status_code == 403
    edited = analyst_client.post(reverse("members:segment-edit", args=[tokyo.pk]), {
        "name": "勝手に", "definition": json.dumps(tree())})
    assert edited.status_code == 403
    deleted = analyst_client.post(reverse("members:segment-delete", args=[tokyo.pk]))
    assert deleted.status_code == 403
    tokyo.refresh_from_db()
    assert tokyo.name == "東京の会員"
    assert list(Segment.objects.values_list("name", flat=True)) == ["東京の会員"]
    assert not AuditEvent.objects.filter(action__startswith="segment.").exists()


def test_an_editor_without_pii_rights_cannot_save_a_condition_on_a_masked_field(
        client, workspace, audience):
    role = Role.objects.create(workspace=workspace, name="Clerk",
                               permissions=["members.view", "members.edit"])
    clerk = make_operator(workspace, "clerk@sample.jp", "Viewer")
    clerk.memberships.update(role=role)
    client.force_login(clerk)
    page = client.get(reverse("members:segment-create"))
    assert "email" not in {f["name"] for f in page.context["catalog"]["fields"]}
    response = client.post(reverse("members:segment-create"), {
        "name": "メモ", "definition": json.dumps(tree({"field": "memo", "operator": "is_not_empty"}))})
    assert response.status_code == 400
    assert "Filtering by “メモ” needs permission" in response.content.decode()
    assert not Segment.objects.exists()


def test_another_workspaces_segment_is_not_found(owner_client, other_workspace, tokyo):
    theirs = Segment.objects.create(workspace=other_workspace, name="theirs", definition={})
    for name in ("members:segment", "members:segment-edit", "members:segment-delete",
                 "members:segment-count"):
        assert owner_client.get(reverse(name, args=[theirs.pk])).status_code == 404
    assert owner_client.post(reverse("members:segment-edit", args=[theirs.pk]), {
        "name": "taken", "definition": "{}"}).status_code == 404
    assert owner_client.post(reverse("members:segment-delete", args=[theirs.pk])).status_code == 404
    assert live(owner_client, tree(), segment=theirs.pk).status_code == 404
    # Nor can a condition point at it.
    response = live(owner_client, tree({"field": "segment", "operator": "in_segment",
                                        "value": theirs.pk}))
    assert f"Segment #{theirs.pk} does not exist" in response.context["outcome"]["errors"][0]
    theirs.refresh_from_db()
    assert theirs.name == "theirs"


def test_the_live_count_needs_a_post_and_a_signed_in_operator(client, owner_client, audience):
    assert owner_client.get(reverse("members:segment-live")).status_code == 405
    owner_client.logout()
    response = client.post(reverse("members:segment-live"), {"definition": "{}"})
    assert response.status_code == 302 and "login" in response.url


def test_the_live_count_leaves_out_conditions_still_waiting_for_a_value(owner_client, audience):
    unfinished = [
        {"field": "prefecture", "operator": "equals", "value": ""},
        {"field": "points", "operator": "between", "value": ["10", ""]},
        {"field": "prefecture", "operator": "in", "value": []},
        {"field": "created_at", "operator": "within_last_days", "value": ""},
        {"field": "list", "operator": "in_list", "value": ""},
        tree({"field": "points", "operator": "gt", "value": "  "}),  # a group of nothing finished
    ]
    response = live(owner_client, tree(TOKYO, *unfinished))
    outcome = response.context["outcome"]
    assert outcome["errors"] == [] and outcome["total"] == 2 and outcome["skipped"] == 6
    assert 'data-skipped="6"' in response.content.decode()
    # Only unfinished ones: a value-less operator counts, and so does a finished condition.
    done = live(owner_client, tree({"field": "points", "operator": "is_not_empty"}, ACTIVE))
    assert done.context["outcome"]["total"] == 2 and done.context["outcome"]["skipped"] == 0
    assert "data-skipped" not in done.content.decode()


def test_a_live_error_names_the_row_on_screen_even_after_unfinished_rows(owner_client, audience):
    definition = tree({"field": "prefecture", "operator": "equals", "value": ""},
                      tree({"field": "points", "operator": "gt", "value": ""},
                           {"field": "points", "operator": "between", "value": [9, 1]}))
    outcome = live(owner_client, definition).context["outcome"]
    assert outcome["skipped"] == 2
    [error] = outcome["errors"]
    assert error.startswith("Condition 2.2: ポイント: The start of the range is after its end")
    assert outcome["condition_errors"] == [
        {"where": "2.2", "message": "ポイント: The start of the range is after its end."}]
    assert 'id="segment-live-errors"' in live(owner_client, definition).content.decode()


def test_saving_still_refuses_a_condition_without_a_value(owner_client, workspace, audience):
    response = owner_client.post(reverse("members:segment-create"), {
        "name": "未完成", "definition": json.dumps(tree(TOKYO, {"field": "points",
                                                              "operator": "gt", "value": ""}))})
    assert response.status_code == 400
    assert [e["where"] for e in response.context["condition_errors"]] == ["2"]
    assert not Segment.objects.exists()


def test_the_preview_shows_tested_attributes_first_and_phone_only_when_someone_has_one(
        owner_client, workspace, audience):
    for index in range(5):
        Attribute.objects.create(workspace=workspace, key=f"extra{index}", label=f"追加{index}",
                                 type="text", position=10 + index)
    outcome = live(owner_client, tree({"field": "extra4", "operator": "is_empty"},
                                      {"field": "points", "operator": "gt", "value": 0}))
    columns = [a.key for a in outcome.context["outcome"]["attributes"]]
    assert columns == ["extra4", "points", "prefecture", "memo", "extra0"]
    assert outcome.context["outcome"]["show_phone"] is False
    assert "<th>Phone</th>" not in outcome.content.decode()
    Member.objects.filter(email="hana@example.jp").update(phone="+819012345678")
    with_phone = live(owner_client, tree())
    assert with_phone.context["outcome"]["show_phone"] is True
    assert "<th>Phone</th>" in with_phone.content.decode()


def test_the_builder_marks_personal_fields_and_words_its_operator_select(owner_client, audience):
    page = owner_client.get(reverse("members:segment-create"))
    personal = {f["name"] for f in page.context["catalog"]["fields"] if f["pii"]}
    assert personal == {"email", "phone", "memo"}
    text = page.context["builder_text"]
    assert text["operator"] == "Operator" and text["join"] == "Combine conditions"


def test_builder_words_that_mean_something_else_elsewhere_have_their_own_japanese(
        owner_client, workspace, audience):
    workspace.language = "ja"
    workspace.save()
    text = owner_client.get(reverse("members:segment-create")).context["builder_text"]
    assert (text["operator"], text["join"], text["and"]) == ("演算子", "条件の組み合わせ", "～")
    hint = live(owner_client, tree({"field": "points", "operator": "gt", "value": ""}))
    assert "未入力の条件（1 件）は数えていません。" in hint.content.decode()
