"""The checks a template passes when it is saved: merge fields, syntax, filters and block
conditions, each reported with its field and line."""

import pytest
from django.utils import translation

from tayori.content.checks import template_errors
from tayori.members.models import Attribute


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def attributes(workspace):
    Attribute.objects.create(workspace=workspace, key="name", label="氏名", type="text")
    Attribute.objects.create(workspace=workspace, key="prefecture", label="都道府県", type="text")
    Attribute.objects.create(workspace=workspace, key="birthday", label="誕生日", type="date")
    return workspace


def content(blocks, subject="お知らせ", variants=None, **extra):
    return {"subject": subject, "subject_variants": variants or [], "blocks": blocks,
            "text": "", "text_edited": False, **extra}


def errors(workspace, data, shared=None):
    return [(e.field, e.message) for e in template_errors(workspace, data, shared)]


def test_a_clean_template_has_no_errors(attributes):
    assert errors(attributes, content([
        {"kind": "header", "text": "{{ member.name }}様"},
        {"kind": "text", "text": "{{ member.birthday|date_ja }} {{ data.total|yen }}\n"
                                 "{{ member.prefecture|default('未登録') }} {{ email }}",
         "condition": {"op": "and", "conditions": [
             {"field": "prefecture", "operator": "equals", "value": "東京都"}]}},
        {"kind": "button", "label": "見る", "url": "https://example.jp/{{ data.code }}"},
        {"kind": "html", "html": "<p>{{ member['name'] }}</p>"},
        {"kind": "footer"}])) == []


def test_an_unknown_attribute_names_the_field_and_its_line_in_the_block(attributes):
    found = errors(attributes, content([
        {"kind": "text", "text": "はじめに"},
        {"kind": "text", "text": "こんにちは\n{{ member.name }}様\n{{ member.xyz }}をご確認ください"},
    ]))
    assert len(found) == 1
    field, message = found[0]
    assert field == "blocks.2"
    assert "member.xyz" in message and message.startswith("Line 3:")


def test_an_unknown_attribute_by_subscript_and_in_the_subject(attributes):
    found = errors(attributes, content(
        [{"kind": "html", "html": "<p>\n\n{{ member['plan'] }}</p>"}],
        subject="{{ member.nickname }}様"))
    assert ("subject", "Line 1: unknown field “member.nickname” (no such attribute).") in found
    assert any(f == "blocks.1" and "member.plan" in m and m.startswith("Line 3:")
               for f, m in found)


def test_unknown_root_names_are_reported(attributes):
    found = errors(attributes, content([{"kind": "text", "text": "{{ name }}様\n{{ user.id }}"}]))
    assert [(f, m.split(":")[0]) for f, m in found] == [("blocks.1", "Line 1"),
                                                       ("blocks.1", "Line 2")]
    assert "“name”" in found[0][1] and "“user”" in found[1][1]


def test_a_syntax_error_names_its_line(attributes):
    found = errors(attributes, content([
        {"kind": "text", "text": "ok"},
        {"kind": "html", "html": "<p>一行目</p>\n<p>{% if member.name %}二行目</p>\n<p>三行目</p>"},
    ]))
    assert len(found) == 1 and found[0][0] == "blocks.2"
    assert found[0][1].startswith("Line 2:") and "endif" in found[0][1]
    found = errors(attributes, content([{"kind": "text", "text": "a\n{% endif %}\nc"}]))
    assert found == [("blocks.1", "Line 2: Encountered unknown tag 'endif'.")]
    found = errors(attributes, content([{"kind": "text", "text": "a\nb\n{{ member.name }"}]))
    assert found[0][0] == "blocks.1" and found[0][1].startswith("Line 3:")


def test_an_unknown_filter_is_an_error_and_known_ones_pass(attributes):
    found = errors(attributes, content([{"kind": "text", "text": "合計\n{{ data.total|yenn }}"}]))
    assert len(found) == 1 and found[0][0] == "blocks.1"
    assert "yenn" in found[0][1] and found[0][1].startswith("Line 2:")
    assert errors(attributes, content([{"kind": "text", "text": (
        "{{ data.total|yen }} {{ member.birthday|date_ja }} {{ member.name|default('お客') }}"
        " {{ data.total|number }} {{ data.at|jst }}")}])) == []


def test_loop_variables_and_assignments_are_known(attributes):
    assert errors(attributes, content([{"kind": "html", "html": (
        "<table>{% for item in data.items %}<tr><td>{{ item.name }}</td>"
        "<td>{{ item.price|yen }}</td><td>{{ loop.index }}</td></tr>{% endfor %}</table>"
        "{% for key, value in data.extra.items() %}{{ key }}={{ value }}{% endfor %}"
        "{% set total = data.total %}{{ total|yen }}")}])) == []
    # A misspelt loop variable is caught.
    found = errors(attributes, content([{"kind": "html", "html": (
        "{% for item in data.items %}{{ itme.name }}{% endfor %}")}]))
    assert len(found) == 1 and "“itme”" in found[0][1]


def test_a_condition_on_a_missing_attribute_is_reported_for_its_block(attributes):
    condition = {"op": "and", "conditions": [
        {"field": "plan", "operator": "equals", "value": "gold"}]}
    found = errors(attributes, content([
        {"kind": "text", "text": "全員"},
        {"kind": "text", "text": "ゴールド会員へ", "condition": condition}],
        variants=[{"condition": condition, "subject": "ゴールド会員さま"}]))
    assert {f for f, _m in found} == {"blocks.2", "subject_variants.1"}
    assert all("plan" in m for _f, m in found)


def test_a_condition_on_a_deleted_attribute_is_reported(attributes):
    data = content([{"kind": "text", "text": "東京の方へ", "condition": {"op": "and", "conditions": [
        {"field": "prefecture", "operator": "equals", "value": "東京都"}]}}])
    assert errors(attributes, data) == []
    Attribute.objects.filter(workspace=attributes, key="prefecture").delete()
    found = errors(attributes, data)
    assert len(found) == 1 and found[0][0] == "blocks.1" and "prefecture" in found[0][1]


def test_attributes_of_another_workspace_are_unknown(attributes, other_workspace):
    Attribute.objects.create(workspace=other_workspace, key="plan", label="プラン", type="text")
    found = errors(attributes, content([{"kind": "text", "text": "{{ member.plan }}"}]))
    assert len(found) == 1 and "member.plan" in found[0][1]


def test_a_subject_and_a_block_are_required(attributes):
    found = errors(attributes, content([], subject="  "))
    assert ("subject", "A subject is required.") in found
    assert ("blocks", "Add at least one block.") in found


def test_a_shared_block_must_exist(attributes):
    data = content([{"kind": "shared", "shared_id": 3}])
    assert errors(attributes, data, {3: {"kind": "text", "text": "共通"}}) == []
    assert errors(attributes, data, {}) == [("blocks.1", "Choose a shared block.")]


def test_a_hand_edited_text_part_is_checked(attributes):
    found = errors(attributes, content([{"kind": "text", "text": "本文"}],
                                       text="一行目\n{{ member.xyz }}", text_edited=True))
    assert len(found) == 1 and found[0][0] == "text" and found[0][1].startswith("Line 2:")
    # Not checked while the text part is made from the HTML.
    assert errors(attributes, content([{"kind": "text", "text": "本文"}],
                                      text="{{ member.xyz }}")) == []
