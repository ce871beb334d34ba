"""A notice's words: the type's templates with the notice's values, member fields merged per
recipient by the engine, values that can never become template code."""

import asyncio
import email
import email.policy

import pytest
from django.utils import translation

from tayori.delivery.engine import Worker
from tayori.delivery.models import OutboxMessage
from tayori.delivery.rendering import _text_env
from tayori.incidents import fields, notices, rendering
from tayori.incidents.tests.conftest import outage_fields, request_by


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):  # messages are asserted in the source language
        yield

def test_subject_and_body_are_made_from_the_fields(starter, merchants):
    planned = notices.plan(starter["障害発生"], outage_fields(details="決済が失敗します"))
    assert planned.words.subject == "【障害発生】決済API、送金APIに障害が発生しています"
    text = planned.words.text
    assert "■ 影響のあるサービス: 決済API、送金API" in text
    assert "■ 発生日時: 2026年11月30日（月）03:12" in text
    assert "■ 詳細:\n決済が失敗します" in text
    assert "次回のご案内" not in text  # an empty optional field leaves its line out
    assert "いつも株式会社サンプルのサービスを" in text


def test_member_fields_are_merged_per_recipient(transactional_db, workspace, owner, starter,
                                                merchants):
    notice_type = starter["障害発生"]
    notice_type.subject = "{{ member.services|join('/') }}: {{ notice.services }}"
    notice_type.save()
    notice = notices.draft(notice_type, outage_fields(), request=request_by(owner))
    notices.confirm(notice, request=request_by(owner))
    asyncio.run(Worker(name="notices").drain())
    subjects = {m.recipient: m.subject for m in OutboxMessage.objects.all()}
    assert subjects == {"a@merchant.example.jp": "payment_api: 決済API、送金API",
                        "b@merchant.example.jp": "payment_api/transfer: 決済API、送金API",
                        "e@merchant.example.jp": "transfer: 決済API、送金API"}
    raw = OutboxMessage.objects.get(recipient="b@merchant.example.jp").raw
    message = email.message_from_bytes(bytes(raw), policy=email.policy.default)
    assert "■ 影響: 全面停止" in message.get_body(("plain",)).get_content()
    assert message["List-Unsubscribe"] is None  # service mail, not a newsletter


@pytest.mark.parametrize("value", [
    "{{ member.secret }}", "{% if true %}x{% endif %}", "\"}}{{ 7*7 }}", "'%}{%", "\\u0041 \\",
    "<a href='https://evil.example'>x</a>", "{# #}", "😀\n改行\r\n", "\x1b",
])
def test_a_value_is_printed_as_given_never_run(value):
    bound = rendering.bind("[{{ notice.details }}]", {"details": value})
    assert _text_env.from_string(bound).render(member={"secret": "S"}) == f"[{value}]"


def test_only_the_values_a_template_uses_are_bound():
    assert rendering.referenced("{{ notice.a }}{{ notice['b'] }}{{ member.c }}") == {"a", "b"}
    assert rendering.referenced("{% for k in notice %}{% endfor %}") is None
    assert rendering.bind("plain {{ member.x }}", {"a": "1"}) == "plain {{ member.x }}"
    bound = rendering.bind("{{ notice.a }}", {"a": "1", "b": "2"})
    assert '"b"' not in bound and '"a": "1"' in bound


def test_the_history_link_is_named_for_templates():
    bound = rendering.bind("{{ notice_history_url }}", {})
    assert bound.startswith("{% set notice_history_url = tayori.notices %}")


def test_a_type_s_templates_are_checked_for_syntax_and_field_names(starter):
    specs = fields.specs_of(starter["障害発生"])
    errors = rendering.check("{{ notice.servces }}", "ok\n{% if %}", "", specs)
    assert [(e.field, e.message) for e in errors] == [
        ("subject", "No field with the key: notice.servces"),
        ("text", errors[1].message)]
    assert errors[1].message.startswith("Line 2")
    assert rendering.check(starter["障害発生"].subject, starter["障害発生"].text, "", specs) == []


def test_a_subject_the_source_cannot_hold_is_refused(starter, workspace):
    notice_type = starter["障害発生"]
    notice_type.subject = "{{ notice.details }}"
    with pytest.raises(notices.NoticeRefused) as refused:
        notices.plan(notice_type, outage_fields(details="長" * 499))
    assert refused.value.errors[0].field == "subject"
