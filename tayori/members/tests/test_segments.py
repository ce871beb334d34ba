"""Segment conditions: what each operator selects, how definitions are validated, and the rules
for missing values, time zones, lists, nested segments and PII. Every expectation is checked on
the SQL query and on the Python evaluator."""

import datetime as dt

import pytest
from django.utils import translation

from tayori.members import segments
from tayori.members.models import Attribute, ListMembership, Member, MemberList, Segment
from tayori.members.segments import SegmentError

# 12:00 on 15 June 2024 in Tokyo.
NOW = dt.datetime(2024, 6, 15, 3, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _english():
    # Messages are asserted in English; the UI's default language is Japanese.
    with translation.override("en"):
        yield


def at(days_ago: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days_ago)


@pytest.fixture
def people(workspace):
    """Four members of 株式会社サンプル, by name."""
    attribute = Attribute.objects.create
    attribute(workspace=workspace, key="prefecture", label="都道府県", type="text")
    attribute(workspace=workspace, key="points", label="ポイント", type="number")
    attribute(workspace=workspace, key="birthday", label="誕生日", type="date")
    attribute(workspace=workspace, key="last_order", label="最終購入", type="datetime")
    attribute(workspace=workspace, key="vip", label="VIP", type="boolean")
    attribute(workspace=workspace, key="plan", label="プラン", type="choice", choices=["free", "gold"])
    attribute(workspace=workspace, key="interests", label="興味", type="multi_choice",
              choices=["music", "sports", "travel"])
    attribute(workspace=workspace, key="memo", label="メモ", type="text", pii=True)
    create = Member.objects.create
    return {
        "taro": create(workspace=workspace, email="taro@example.jp", phone="+819012340001",
                       created_at=at(10), attributes={
                           "prefecture": "東京都", "points": 120, "birthday": "1990-06-18",
                           "last_order": "2024-06-13T01:00:00Z", "vip": True, "plan": "gold",
                           "interests": ["music", "travel"], "memo": "call after 6"}),
        "hana": create(workspace=workspace, email="hana@example.jp", status="unsubscribed",
                       created_at=at(400), attributes={
                           "prefecture": "大阪府", "points": 80.5, "birthday": "1985-06-05",
                           "last_order": "2024-05-06T10:00:00.250000Z", "vip": False,
                           "plan": "free", "interests": ["sports"]}),
        "kumi": create(workspace=workspace, phone="+819012340003", created_at=at(0.1),
                       attributes={}),
        # Values of the wrong JSON type count as no value at all.
        "jiro": create(workspace=workspace, email="jiro@mail.example", status="bounced",
                       created_at=at(31), attributes={
                           "prefecture": 13, "points": "100", "birthday": 19900618,
                           "vip": "yes", "plan": ["gold"], "interests": "music"}),
    }


def selected(workspace, people, definition, now=NOW) -> set[str]:
    names = {m.pk: name for name, m in people.items()}
    sql = {names[pk] for pk in segments.segment_queryset(workspace, definition, now=now)
           .values_list("pk", flat=True)}
    members = list(Member.objects.filter(workspace=workspace))
    python = {names[m.pk] for m in segments.Evaluator(workspace, now=now).select(members, definition)}
    assert sql == python
    return sql


def one(field, operator, value=None):
    leaf = {"field": field, "operator": operator}
    if value is not None:
        leaf["value"] = value
    return {"op": "and", "conditions": [leaf]}


EVERYONE = {"taro", "hana", "kumi", "jiro"}

OPERATOR_CASES = [
    # text
    ("prefecture", "equals", "東京都", {"taro"}),
    ("prefecture", "not_equals", "東京都", {"hana", "kumi", "jiro"}),
    ("prefecture", "contains", "阪", {"hana"}),
    ("prefecture", "not_contains", "阪", {"taro", "kumi", "jiro"}),
    ("prefecture", "starts_with", "東京", {"taro"}),
    ("prefecture", "in", ["東京都", "大阪府", "13"], {"taro", "hana"}),
    ("prefecture", "not_in", ["東京都"], {"hana", "kumi", "jiro"}),
    ("prefecture", "is_empty", None, {"kumi", "jiro"}),
    ("prefecture", "is_not_empty", None, {"taro", "hana"}),
    # email and phone columns
    ("email", "equals", "Taro@EXAMPLE.jp", set()),  # the local part keeps its case
    ("email", "equals", "taro@EXAMPLE.jp", {"taro"}),
    ("email", "contains", "@example.jp", {"taro", "hana"}),
    ("email", "starts_with", "jiro@", {"jiro"}),
    ("email", "not_contains", "example.jp", {"kumi", "jiro"}),
    ("email", "is_empty", None, {"kumi"}),
    ("email", "in", ["hana@example.jp", "nobody@example.jp"], {"hana"}),
    ("phone", "equals", "090-1234-0003", {"kumi"}),
    ("phone", "is_not_empty", None, {"taro", "kumi"}),
    ("phone", "starts_with", "+8190", {"taro", "kumi"}),
    # number
    ("points", "equals", 120, {"taro"}),
    ("points", "equals", "120.0", {"taro"}),
    ("points", "not_equals", 120, {"hana", "kumi", "jiro"}),
    ("points", "gt", 80.5, {"taro"}),
    ("points", "gte", 80.5, {"taro", "hana"}),
    ("points", "lt", "１００", {"hana"}),  # full-width digits, as typed on a Japanese keyboard
    ("points", "lte", 120, {"taro", "hana"}),
    ("points", "between", [80, 100], {"hana"}),
    ("points", "in", [80.5, 100], {"hana"}),
    ("points", "not_in", [80.5], {"taro", "kumi", "jiro"}),
    ("points", "is_empty", None, {"kumi", "jiro"}),
    # date (today is 2024-06-15 in Tokyo)
    ("birthday", "equals", "1990/6/18", {"taro"}),
    ("birthday", "gt", "1985-06-05", {"taro"}),
    ("birthday", "gte", "1985-06-05", {"taro", "hana"}),
    ("birthday", "lt", "1990-06-18", {"hana"}),
    ("birthday", "lte", "1990-06-18", {"taro", "hana"}),
    ("birthday", "between", ["1980-01-01", "1989-12-31"], {"hana"}),
    ("birthday", "anniversary_within_days", 3, {"taro"}),
    ("birthday", "anniversary_within_days", 2, set()),
    ("birthday", "anniversary_within_days", 365, {"taro", "hana"}),
    ("birthday", "is_empty", None, {"kumi", "jiro"}),
    # datetime: stored in UTC, compared by day in Tokyo (2024-06-13T01:00Z is the 13th in Tokyo)
    ("last_order", "equals", "2024-06-13", {"taro"}),
    ("last_order", "within_last_days", 2, {"taro"}),
    ("last_order", "within_last_days", 1, set()),
    ("last_order", "less_than_days_ago", 3, {"taro"}),
    ("last_order", "less_than_days_ago", 2, set()),
    ("last_order", "more_than_days_ago", 30, {"hana"}),  # 6 May is 40 days ago
    ("last_order", "more_than_days_ago", 40, set()),
    ("last_order", "gte", "2024-05-06", {"taro", "hana"}),
    ("last_order", "gt", "2024-05-06", {"taro"}),
    ("last_order", "lte", "2024-05-06", {"hana"}),
    ("last_order", "not_equals", "2024-06-13", {"hana", "kumi", "jiro"}),
    # created_at (a column): taro 10 days ago, hana 400, kumi today, jiro 31
    ("created_at", "within_last_days", 10, {"taro", "kumi"}),
    ("created_at", "within_last_days", 9, {"kumi"}),
    ("created_at", "more_than_days_ago", 30, {"hana", "jiro"}),
    ("created_at", "less_than_days_ago", 31, {"taro", "kumi"}),
    ("created_at", "within_next_days", 5, {"kumi"}),
    ("created_at", "equals", "2024-06-05", {"taro"}),
    ("created_at", "anniversary_within_days", 0, {"kumi"}),
    ("created_at", "anniversary_within_days", 20, {"kumi"}),
    # 335 days reach 16 May, 333 reach 14 May: hana joined on 12 May 2023, jiro on 15 May 2024
    ("created_at", "anniversary_within_days", 335, {"kumi", "hana", "jiro"}),
    ("created_at", "anniversary_within_days", 333, {"kumi", "hana"}),
    # boolean
    ("vip", "is_true", None, {"taro"}),
    ("vip", "is_false", None, {"hana"}),
    ("vip", "is_empty", None, {"kumi", "jiro"}),
    ("vip", "is_not_empty", None, {"taro", "hana"}),
    # choice
    ("plan", "equals", "gold", {"taro"}),
    ("plan", "in", ["gold", "free"], {"taro", "hana"}),
    ("plan", "not_equals", "gold", {"hana", "kumi", "jiro"}),
    ("plan", "is_empty", None, {"kumi", "jiro"}),
    # multi-choice
    ("interests", "has_any", ["music", "sports"], {"taro", "hana"}),
    ("interests", "has_all", ["music", "travel"], {"taro"}),
    ("interests", "has_all", ["music", "sports"], set()),
    ("interests", "has_none", ["music"], {"hana", "kumi", "jiro"}),
    ("interests", "is_empty", None, {"kumi", "jiro"}),
    ("interests", "is_not_empty", None, {"taro", "hana"}),
    # status
    ("status", "equals", "active", {"taro", "kumi"}),
    ("status", "not_equals", "active", {"hana", "jiro"}),
    ("status", "in", ["bounced", "unsubscribed"], {"hana", "jiro"}),
    ("status", "not_in", ["bounced", "unsubscribed"], {"taro", "kumi"}),
]

@pytest.mark.django_db
@pytest.mark.parametrize(("field", "operator", "value", "expected"), OPERATOR_CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in OPERATOR_CASES])
def test_it_selects_what_each_operator_means(workspace, people, field, operator, value, expected):
    assert selected(workspace, people, one(field, operator, value)) == expected


@pytest.mark.django_db
def test_it_selects_everyone_for_an_empty_definition(workspace, people):
    assert selected(workspace, people, {}) == EVERYONE
    assert selected(workspace, people, {"op": "or", "conditions": []}) == EVERYONE
    assert segments.count(workspace, {}) == 4


@pytest.mark.django_db
def test_it_combines_groups_with_and_and_or(workspace, people):
    definition = {"op": "or", "conditions": [
        {"op": "and", "conditions": [
            {"field": "status", "operator": "equals", "value": "active"},
            {"field": "prefecture", "operator": "equals", "value": "東京都"},
        ]},
        {"field": "email", "operator": "ends_with", "value": "x"},
    ]}
    with pytest.raises(SegmentError):
        segments.validate(workspace, definition)
    definition["conditions"][1] = {"field": "status", "operator": "equals", "value": "bounced"}
    assert selected(workspace, people, definition) == {"taro", "jiro"}
    negated = {"op": "and", "conditions": [
        {"field": "prefecture", "operator": "not_in", "value": ["大阪府"]},
        {"op": "or", "conditions": [
            {"field": "points", "operator": "lt", "value": 200},
            {"field": "interests", "operator": "has_none", "value": ["music"]},
        ]},
    ]}
    assert selected(workspace, people, negated) == {"taro", "kumi", "jiro"}


@pytest.mark.django_db
def test_it_counts_days_in_the_workspace_time_zone(workspace, people):
    # 01:00 on 15 June in Tokyo, still 14 June in UTC.
    now = dt.datetime(2024, 6, 14, 16, 0, tzinfo=dt.UTC)
    late_on_the_14th = Member.objects.create(
        workspace=workspace, email="late@example.jp",
        created_at=dt.datetime(2024, 6, 14, 14, 30, tzinfo=dt.UTC),  # 23:30 on the 14th in Tokyo
        attributes={"last_order": "2024-06-14T15:00:00Z"})  # midnight of the 15th in Tokyo
    people["late"] = late_on_the_14th
    today = one("created_at", "within_last_days", 0)
    assert "late" not in selected(workspace, people, today, now=now)
    assert selected(workspace, people, one("last_order", "equals", "2024-06-15"), now=now) == {"late"}
    workspace.time_zone = "UTC"
    workspace.save()
    assert "late" in selected(workspace, people, today, now=now)
    assert selected(workspace, people, one("last_order", "equals", "2024-06-15"), now=now) == set()


@pytest.mark.django_db
def test_it_finds_anniversaries_across_the_new_year(workspace, people):
    new_years_day = Member.objects.create(workspace=workspace, email="jan@example.jp",
                                          attributes={"birthday": "1970-01-02"})
    people["jan"] = new_years_day
    now = dt.datetime(2024, 12, 28, 3, 0, tzinfo=dt.UTC)
    assert selected(workspace, people, one("birthday", "anniversary_within_days", 5), now=now) == {"jan"}
    assert selected(workspace, people, one("birthday", "anniversary_within_days", 4), now=now) == set()


@pytest.mark.django_db
def test_it_celebrates_29_february_on_1_march_in_common_years(workspace, people):
    leapling = Member.objects.create(workspace=workspace, email="leap@example.jp",
                                     attributes={"birthday": "2000-02-29"})
    people["leap"] = leapling
    now = dt.datetime(2025, 2, 27, 3, 0, tzinfo=dt.UTC)  # 27 Feb 2025 in Tokyo
    assert selected(workspace, people, one("birthday", "anniversary_within_days", 1), now=now) == set()
    assert selected(workspace, people, one("birthday", "anniversary_within_days", 2), now=now) == {"leap"}


@pytest.mark.django_db
def test_it_reads_attributes_whose_key_looks_like_a_number(workspace, people):
    Attribute.objects.create(workspace=workspace, key="2024", label="2024年度", type="number")
    Member.objects.filter(pk=people["kumi"].pk).update(attributes={"2024": 5})
    assert selected(workspace, people, one("2024", "gte", 5)) == {"kumi"}


@pytest.mark.django_db
def test_it_selects_members_of_a_list(workspace, people):
    vips = MemberList.objects.create(workspace=workspace, name="VIP")
    ListMembership.objects.create(member_list=vips, member=people["hana"])
    ListMembership.objects.create(member_list=vips, member=people["kumi"])
    assert selected(workspace, people, one("list", "in_list", vips.pk)) == {"hana", "kumi"}
    assert selected(workspace, people, one("list", "not_in_list", str(vips.pk))) == {"taro", "jiro"}


@pytest.mark.django_db
def test_it_includes_and_excludes_saved_segments(workspace, people):
    active = Segment.objects.create(workspace=workspace, name="active",
                                    definition=one("status", "equals", "active"))
    tokyo_active = Segment.objects.create(workspace=workspace, name="active in Tokyo", definition={
        "op": "and", "conditions": [{"field": "segment", "operator": "in_segment", "value": active.pk},
                                    {"field": "prefecture", "operator": "equals", "value": "東京都"}]})
    assert selected(workspace, people, one("segment", "in_segment", tokyo_active.pk)) == {"taro"}
    assert selected(workspace, people, one("segment", "not_in_segment", tokyo_active.pk)) == {
        "hana", "kumi", "jiro"}
    assert segments.referring_segments(active) == [tokyo_active]
    assert set(segments.segment_members(tokyo_active, now=NOW)) == {people["taro"]}


@pytest.mark.django_db
def test_it_refuses_a_segment_that_would_include_itself(workspace, people):
    first = Segment.objects.create(workspace=workspace, name="first", definition={})
    second = Segment.objects.create(workspace=workspace, name="second",
                                    definition=one("segment", "in_segment", first.pk))
    with pytest.raises(SegmentError, match="itself"):
        segments.validate(workspace, one("segment", "in_segment", first.pk), segment=first)
    with pytest.raises(SegmentError, match="loop"):
        segments.validate(workspace, one("segment", "not_in_segment", second.pk), segment=first)
    # A loop written straight into the database is refused when run, not followed forever.
    Segment.objects.filter(pk=first.pk).update(definition=one("segment", "in_segment", second.pk))
    with pytest.raises(SegmentError, match="loop"):
        segments.count(workspace, one("segment", "in_segment", first.pk))


@pytest.mark.django_db
def test_it_reports_a_deleted_segment_when_run(workspace, people):
    gone = Segment.objects.create(workspace=workspace, name="gone", definition={})
    gone_pk = gone.pk
    definition = segments.validate(workspace, one("segment", "in_segment", gone.pk))
    outer = Segment.objects.create(workspace=workspace, name="outer", definition=definition)
    gone.delete()
    with pytest.raises(SegmentError, match=f"Segment #{gone_pk} does not exist"):
        segments.count(workspace, definition)
    with pytest.raises(SegmentError, match="Segment “outer” cannot be used: .* does not exist"):
        segments.count(workspace, one("segment", "in_segment", outer.pk))


@pytest.mark.django_db
def test_it_refuses_lists_and_segments_of_another_workspace(workspace, other_workspace, people):
    theirs = MemberList.objects.create(workspace=other_workspace, name="theirs")
    their_segment = Segment.objects.create(workspace=other_workspace, name="theirs", definition={})
    with pytest.raises(SegmentError, match=f"List #{theirs.pk} does not exist"):
        segments.validate(workspace, one("list", "in_list", theirs.pk))
    with pytest.raises(SegmentError, match=f"Segment #{their_segment.pk} does not exist"):
        segments.count(workspace, one("segment", "in_segment", their_segment.pk))


@pytest.mark.django_db
def test_it_never_selects_members_of_another_workspace(workspace, other_workspace, people):
    Member.objects.create(workspace=other_workspace, email="taro@example.jp",
                          attributes={"prefecture": "東京都"})
    assert segments.count(workspace, {}) == 4
    assert selected(workspace, people, one("email", "equals", "taro@example.jp")) == {"taro"}


@pytest.mark.django_db
@pytest.mark.parametrize(("definition", "message"), [
    (one("nickname", "equals", "x"), "Condition 1: Unknown field “nickname”"),
    (one("points", "resembles", 1), "has no operator “resembles”"),
    (one("points", "gt", "many"), "Expected a number"),
    (one("points", "gt", None), "A value is required"),
    (one("points", "between", [10]), "needs two values"),
    (one("points", "between", [10, 1]), "start of the range is after its end"),
    (one("points", "in", []), "at least one value"),
    (one("plan", "equals", "platinum"), "not one of the choices"),
    (one("interests", "has_any", ["music", "cooking"]), "“cooking” is not one of the choices"),
    (one("status", "equals", "sleeping"), "not one of the choices"),
    (one("birthday", "within_last_days", -1), "between 0 and 36500"),
    (one("birthday", "within_last_days", "a week"), "number of days"),
    (one("birthday", "equals", "31/12/1990"), "Expected a date"),
    (one("email", "equals", "not an address"), "Not a valid email address"),
    (one("prefecture", "equals", ["東京都"]), "not a list"),
    (one("list", "in_list", "VIP"), "Choose a list"),
    (one("created_at", "is_empty"), "has no operator"),
    ({"op": "xor", "conditions": []}, "“and” or “or”"),
    ({"op": "and", "conditions": [{"op": "or", "conditions": []}]}, "Condition 1: This group has no conditions"),
    ({"op": "and", "conditions": "all"}, "must be a list"),
    ({"field": "points"}, "must be a group"),
    ("{not json", "not valid JSON"),
])
def test_it_names_the_bad_condition(workspace, people, definition, message):
    with pytest.raises(SegmentError) as raised:
        segments.validate(workspace, definition)
    assert message in str(raised.value)


@pytest.mark.django_db
def test_it_names_the_position_of_a_nested_bad_condition(workspace, people):
    definition = {"op": "and", "conditions": [
        {"field": "status", "operator": "equals", "value": "active"},
        {"op": "or", "conditions": [
            {"field": "points", "operator": "gt", "value": 1},
            {"field": "points", "operator": "gt", "value": "lots"},
        ]},
    ]}
    with pytest.raises(SegmentError) as raised:
        segments.validate(workspace, definition)
    [error] = raised.value.errors
    assert error.path == (2, 2)
    assert str(error).startswith("Condition 2.2: ポイント:")


@pytest.mark.django_db
def test_it_normalizes_what_it_accepts(workspace, people):
    definition = {"conditions": [
        {"field": "points", "operator": "between", "value": ["1,000", "２０００"]},
        {"field": "birthday", "operator": "within_next_days", "value": "7"},
        {"field": "vip", "operator": "is_true", "value": "ignored"},
        {"field": "phone", "operator": "in", "value": "090-1234-0001\n\n09012340003"},
        {"field": "plan", "operator": "in", "value": ["gold", "gold"]},
    ]}
    assert segments.validate(workspace, definition) == {"op": "and", "conditions": [
        {"field": "points", "operator": "between", "value": [1000, 2000]},
        {"field": "birthday", "operator": "within_next_days", "value": 7},
        {"field": "vip", "operator": "is_true"},
        {"field": "phone", "operator": "in", "value": ["+819012340001", "+819012340003"]},
        {"field": "plan", "operator": "in", "value": ["gold"]},
    ]}


@pytest.mark.django_db
def test_it_refuses_filtering_by_personal_information_without_the_right(workspace, people):
    for field, label in [("email", "Email"), ("phone", "Phone"), ("memo", "メモ")]:
        definition = one(field, "is_not_empty")
        with pytest.raises(SegmentError, match=f"Filtering by “{label}” needs permission"):
            segments.segment_queryset(workspace, definition, allow_pii=False)
        assert segments.count(workspace, definition, allow_pii=True) >= 1
    assert segments.count(workspace, one("prefecture", "is_not_empty"), allow_pii=False) == 2


@pytest.mark.django_db
def test_it_handles_long_value_lists(workspace, people):
    many = [f"県{i}" for i in range(segments.CONTAINMENT_MAX_VALUES + 10)] + ["大阪府"]
    assert selected(workspace, people, one("prefecture", "in", many)) == {"hana"}
    assert selected(workspace, people, one("prefecture", "not_in", many)) == {"taro", "kumi", "jiro"}


@pytest.mark.django_db
def test_it_takes_values_with_wildcards_and_quotes_literally(workspace, people):
    Member.objects.filter(pk=people["kumi"].pk).update(attributes={"prefecture": "100%_'京\\"})
    assert selected(workspace, people, one("prefecture", "contains", "%_'")) == {"kumi"}
    assert selected(workspace, people, one("prefecture", "contains", "%")) == {"kumi"}
    assert selected(workspace, people, one("prefecture", "starts_with", "1_0")) == set()
    assert selected(workspace, people, one("prefecture", "equals", "100%_'京\\")) == {"kumi"}


@pytest.mark.django_db
def test_it_limits_the_size_of_a_definition(workspace, people):
    too_many = {"op": "and", "conditions": [
        {"field": "status", "operator": "equals", "value": "active"}] * (segments.MAX_CONDITIONS + 1)}
    with pytest.raises(SegmentError, match="at most"):
        segments.validate(workspace, too_many)
    deep = {"field": "status", "operator": "equals", "value": "active"}
    for _ in range(segments.MAX_DEPTH + 1):
        deep = {"op": "and", "conditions": [deep]}
    with pytest.raises(SegmentError, match="nested too deeply"):
        segments.validate(workspace, deep)


@pytest.mark.django_db
def test_it_describes_a_definition_with_personal_values_masked(workspace, people):
    vips = MemberList.objects.create(workspace=workspace, name="VIP")
    definition = {"op": "or", "conditions": [
        {"field": "email", "operator": "contains", "value": "taro"},
        {"field": "list", "operator": "in_list", "value": vips.pk},
        {"field": "points", "operator": "between", "value": [1, 5]},
    ]}
    masked = segments.describe(workspace, definition, allow_pii=False)
    assert [item["value"] for item in masked["items"]] == ["***", "VIP", "1 and 5"]
    shown = segments.describe(workspace, definition, allow_pii=True)
    assert shown["items"][0]["value"] == "taro"
    assert shown["op"] == "or"


@pytest.mark.django_db
def test_it_offers_only_fields_the_viewer_may_filter_by(workspace, people):
    names = {f["name"] for f in segments.field_catalog(workspace, allow_pii=False)["fields"]}
    assert "email" not in names and "memo" not in names and "prefecture" in names
    full = segments.field_catalog(workspace, allow_pii=True)
    assert {"email", "phone", "memo"} <= {f["name"] for f in full["fields"]}
    points = next(f for f in full["fields"] if f["name"] == "points")
    assert {"code": "between", "label": "between", "shape": "pair"} in points["operators"]
