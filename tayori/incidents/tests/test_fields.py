"""A notice type's form: the fields it may have and the values operators and the API give."""

from zoneinfo import ZoneInfo

import pytest
from django.utils import translation

from tayori.incidents import fields, notices
from tayori.incidents.tests.conftest import outage_fields

JST = ZoneInfo("Asia/Tokyo")


def clean(notice_type, raw):
    return fields.clean(notice_type, raw, catalogue=notices.catalogue(notice_type.workspace),
                        zone=JST)



@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):  # messages are asserted in the source language
        yield

def test_values_are_kept_as_codes_utc_and_text(starter):
    values, errors = clean(starter["障害発生"], outage_fields(
        services=["transfer", "payment_api", "transfer"], details="  一部の加盟店で\r\nエラー "))
    assert errors == []
    assert values == {"services": ["payment_api", "transfer"],  # catalogue order, once each
                      "started_at": "2026-11-29T18:12:00+00:00", "impact": "全面停止",
                      "details": "一部の加盟店で\nエラー"}


@pytest.mark.parametrize("raw,field,words", [
    ({"services": ["nope"]}, "services", "nope"),
    ({"services": []}, "services", "required"),
    ({"services": "payment_api", "started_at": "yesterday"}, "started_at", "2026-11-30T03:12"),
    ({"started_at": "2026-02-30T10:00"}, "started_at", "ISO 8601"),
    ({"impact": "大変"}, "impact", "大変"),
    ({"impact": 3}, "impact", "text"),
    ({"next_update": "x" * 201}, "next_update", "200"),
    ({"colour": "red"}, "colour", "colour"),
])
def test_each_bad_value_is_named_by_its_field(starter, raw, field, words):
    _values, errors = clean(starter["障害発生"], outage_fields(**raw))
    assert [e.field for e in errors] == [field]
    assert words in errors[0].message


def test_a_missing_required_field_is_refused_and_an_optional_one_is_not(starter):
    raw = outage_fields()
    del raw["impact"]
    _values, errors = clean(starter["障害発生"], raw)
    assert [e.field for e in errors] == ["impact"]


def test_a_services_value_may_be_one_code(starter):
    values, errors = clean(starter["障害発生"], outage_fields(services="transfer"))
    assert errors == [] and values["services"] == ["transfer"]


def test_shown_values_name_the_services_and_print_times_in_the_zone(starter):
    values, _errors = clean(starter["障害発生"], outage_fields())
    shown = fields.shown(starter["障害発生"], values,
                         names=notices.names(starter["障害発生"].workspace), zone=JST)
    assert shown == {"services": "決済API、送金API", "started_at": "2026年11月30日（月）03:12",
                     "impact": "全面停止", "details": "", "next_update": ""}


def test_a_field_list_is_checked():
    specs, problems = fields.check_specs([
        {"key": "services", "label": "対象", "kind": "services", "required": True},
        {"key": "services", "label": "again", "kind": "text"},
        {"key": "Bad Key", "label": "x", "kind": "text"},
        {"key": "level", "label": "影響度", "kind": "choice", "choices": []},
        {"key": "when", "label": "", "kind": "nope"},
        {"key": "level2", "label": "影響度", "kind": "choice", "choices": ["大", "大", "小"]},
    ])
    assert [s["key"] for s in specs] == ["services", "level2"]
    assert specs[1]["choices"] == ["大", "小"] and specs[1]["label"] == "影響度"
    assert len(problems) == 4
