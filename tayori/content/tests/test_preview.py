"""Previews for a chosen member: conditional blocks and subject variants decided for that
member, with the reasons, and PII masked for roles that may not see it."""

import pytest
from django.utils import translation

from tayori.content.models import SenderIdentity
from tayori.content.preview import render_preview
from tayori.members.models import Attribute, Member

TOKYO = {"op": "and", "conditions": [{"field": "prefecture", "operator": "equals",
                                      "value": "東京都"}]}
GOLD = {"op": "and", "conditions": [{"field": "plan", "operator": "equals", "value": "gold"}]}


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def people(workspace):
    attribute = Attribute.objects.create
    attribute(workspace=workspace, key="name", label="氏名", type="text")
    attribute(workspace=workspace, key="prefecture", label="都道府県", type="text")
    attribute(workspace=workspace, key="plan", label="プラン", type="choice",
              choices=["free", "gold"])
    attribute(workspace=workspace, key="memo", label="メモ", type="text", pii=True)
    create = Member.objects.create
    return {
        "taro": create(workspace=workspace, email="taro@example.jp", attributes={
            "name": "太郎", "prefecture": "東京都", "plan": "free", "memo": "夜に電話"}),
        "hana": create(workspace=workspace, email="hanako@example.jp", attributes={
            "name": "花子", "prefecture": "大阪府", "plan": "gold", "memo": "秘密"}),
    }


@pytest.fixture
def identity(workspace):
    return SenderIdentity.objects.create(
        workspace=workspace, label="news", from_name="サンプル", from_address="news@example.jp",
        organization="株式会社サンプル")


CONTENT = {
    "subject": "{{ member.name }}様へのお知らせ",
    "subject_variants": [{"condition": TOKYO, "subject": "東京の{{ member.name }}様へ"},
                         {"condition": GOLD, "subject": "ゴールド会員の{{ member.name }}様へ"}],
    "preheader": "",
    "blocks": [{"kind": "text", "text": "{{ member.name }}様"},
               {"kind": "text", "text": "東京店の新装開店", "condition": TOKYO},
               {"kind": "text", "text": "メモ: {{ member.memo }} / {{ email }}"},
               {"kind": "footer"}],
    "text": "", "text_edited": False, "charset": "utf-8",
}


def test_the_conditional_block_and_subject_variant_follow_the_member(workspace, people,
                                                                    identity):
    taro = render_preview(workspace, CONTENT, identity, people["taro"], allow_pii=True)
    assert taro.error == ""
    assert taro.subject == "東京の太郎様へ"
    assert "東京店の新装開店" in taro.html and "東京店の新装開店" in taro.text
    assert taro.subject_reason == "Subject variant 1: 都道府県 is 東京都"
    conditional = taro.reasons[1]
    assert (conditional.position, conditional.kind, conditional.shown) == (2, "text", True)
    assert conditional.condition == "都道府県 is 東京都"
    assert conditional.label == "東京店の新装開店"
    assert [r.shown for r in taro.reasons] == [True, True, True, True]
    assert [r.condition for r in taro.reasons] == ["", "都道府県 is 東京都", "", ""]

    hana = render_preview(workspace, CONTENT, identity, people["hana"], allow_pii=True)
    assert hana.subject == "ゴールド会員の花子様へ"
    assert "東京店の新装開店" not in hana.html and "東京店の新装開店" not in hana.text
    assert "花子様" in hana.html
    assert hana.reasons[1].shown is False and hana.reasons[1].condition == "都道府県 is 東京都"
    assert hana.subject_reason == "Subject variant 2: プラン is gold"


def test_the_default_subject_when_no_variant_matches(workspace, people, identity):
    member = Member.objects.create(workspace=workspace, email="jiro@example.jp",
                                   attributes={"name": "次郎", "prefecture": "北海道"})
    preview = render_preview(workspace, CONTENT, identity, member, allow_pii=True)
    assert preview.subject == "次郎様へのお知らせ"
    assert preview.subject_reason == "Default subject (no variant matched)"
    assert preview.reasons[1].shown is False


def test_pii_is_masked_without_the_permission_but_conditions_use_real_values(
        workspace, people, identity):
    hidden = render_preview(workspace, CONTENT, identity, people["taro"], allow_pii=False)
    assert "メモ: *** / ta***@example.jp" in hidden.text
    assert "夜に電話" not in hidden.html + hidden.text
    assert "taro@example.jp" not in hidden.html + hidden.text
    assert "東京店の新装開店" in hidden.text  # the condition saw the real prefecture
    shown = render_preview(workspace, CONTENT, identity, people["taro"], allow_pii=True)
    assert "メモ: 夜に電話 / taro@example.jp" in shown.text


def test_a_condition_on_a_pii_attribute_is_masked_in_the_reasons(workspace, people, identity):
    content = {**CONTENT, "blocks": [
        {"kind": "text", "text": "電話の方へ", "condition": {"op": "and", "conditions": [
            {"field": "memo", "operator": "equals", "value": "夜に電話"}]}}]}
    hidden = render_preview(workspace, content, identity, people["taro"], allow_pii=False)
    assert hidden.reasons[0].shown is True
    assert hidden.reasons[0].condition == "メモ is ***"
    assert "夜に電話" not in hidden.reasons[0].condition
    shown = render_preview(workspace, content, identity, people["taro"], allow_pii=True)
    assert shown.reasons[0].condition == "メモ is 夜に電話"


def test_without_a_member_only_unconditional_content_shows(workspace, people, identity):
    preview = render_preview(workspace, CONTENT, identity, None, allow_pii=False)
    assert preview.error == ""
    assert "東京店の新装開店" not in preview.html
    assert preview.subject == "様へのお知らせ"


def test_a_template_error_is_reported_not_raised(workspace, people, identity):
    content = {**CONTENT, "blocks": [{"kind": "text", "text": "{{ member.name|yenn }}"}]}
    preview = render_preview(workspace, content, identity, people["taro"], allow_pii=True)
    assert "yenn" in preview.error and preview.html == ""
