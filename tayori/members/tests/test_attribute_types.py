import pytest

from tayori.members.attribute_types import SHOWN_BLOCKERS, needs_check, save_attribute
from tayori.members.models import Attribute, Member


def add(workspace, email, **values):
    return Member.objects.create(workspace=workspace, email=email, attributes=values)


def changed(attribute, **fields):
    """A fresh copy of the attribute carrying the new definition, as the edit form gives it."""
    fresh = Attribute.objects.get(pk=attribute.pk)
    for name, value in fields.items():
        setattr(fresh, name, value)
    return fresh


@pytest.fixture
def code(workspace):
    return Attribute.objects.create(workspace=workspace, key="code", label="コード")


def test_it_converts_text_to_numbers_when_every_value_is_numeric(workspace, code):
    a = add(workspace, "a@example.jp", code="42")
    b = add(workspace, "b@example.jp", code="１,２００")
    c = add(workspace, "c@example.jp")
    result = save_attribute(changed(code, type="number"))
    assert result.ok and result.converted == 2
    a.refresh_from_db(), b.refresh_from_db(), c.refresh_from_db()
    assert a.attributes == {"code": 42} and b.attributes == {"code": 1200} and c.attributes == {}
    assert Attribute.objects.get(pk=code.pk).type == "number"


def test_it_refuses_text_to_number_and_names_the_blocking_members(workspace, code):
    good = add(workspace, "a@example.jp", code="42")
    bad = add(workspace, "b@example.jp", code="abc")
    result = save_attribute(changed(code, type="number"))
    assert not result.ok and result.blocked == 1
    [blocker] = result.blockers
    assert blocker.member_id == bad.pk and blocker.value == "abc"
    assert "abc" in blocker.reason
    good.refresh_from_db()
    assert good.attributes == {"code": "42"}  # nothing converted
    assert Attribute.objects.get(pk=code.pk).type == "text"


def test_it_lists_the_first_twenty_blockers_and_counts_the_rest(workspace, code):
    Member.objects.bulk_create([Member(workspace=workspace, email=f"m{i}@example.jp",
                                       attributes={"code": f"x{i}"}) for i in range(25)])
    result = save_attribute(changed(code, type="number"))
    assert result.blocked == 25 and len(result.blockers) == SHOWN_BLOCKERS


def test_it_converts_numbers_to_text(workspace):
    age = Attribute.objects.create(workspace=workspace, key="age", label="年齢", type="number")
    m = add(workspace, "a@example.jp", age=30)
    n = add(workspace, "b@example.jp", age=1.5)
    assert save_attribute(changed(age, type="text")).ok
    m.refresh_from_db(), n.refresh_from_db()
    assert m.attributes == {"age": "30"} and n.attributes == {"age": "1.5"}


def test_it_converts_text_to_dates_in_the_forms_clean_value_reads(workspace, code):
    m = add(workspace, "a@example.jp", code="2024/4/1")
    n = add(workspace, "b@example.jp", code="2024年12月31日")
    assert save_attribute(changed(code, type="date")).ok
    m.refresh_from_db(), n.refresh_from_db()
    assert m.attributes == {"code": "2024-04-01"} and n.attributes == {"code": "2024-12-31"}


def test_it_refuses_text_that_is_not_a_date(workspace, code):
    add(workspace, "a@example.jp", code="next tuesday")
    result = save_attribute(changed(code, type="date"))
    assert not result.ok and "next tuesday" in result.blockers[0].reason


def test_datetimes_become_the_date_in_the_workspace_time_zone(workspace):
    seen = Attribute.objects.create(workspace=workspace, key="seen", label="最終", type="datetime")
    m = add(workspace, "a@example.jp", seen="2024-03-31T16:30:00Z")  # 01:30 on 1 April in Tokyo
    assert save_attribute(changed(seen, type="date")).ok
    m.refresh_from_db()
    assert m.attributes == {"seen": "2024-04-01"}


def test_dates_become_midnight_in_the_workspace_time_zone(workspace):
    day = Attribute.objects.create(workspace=workspace, key="day", label="日", type="date")
    m = add(workspace, "a@example.jp", day="2024-04-01")
    assert save_attribute(changed(day, type="datetime")).ok
    m.refresh_from_db()
    assert m.attributes == {"day": "2024-03-31T15:00:00Z"}


def test_booleans_become_one_and_zero_as_numbers(workspace):
    flag = Attribute.objects.create(workspace=workspace, key="flag", label="旗", type="boolean")
    m = add(workspace, "a@example.jp", flag=True)
    assert save_attribute(changed(flag, type="number")).ok
    m.refresh_from_db()
    assert m.attributes["flag"] == 1 and m.attributes["flag"] is not True


def test_removing_a_choice_in_use_is_blocked(workspace):
    plan = Attribute.objects.create(workspace=workspace, key="plan", label="プラン",
                                    type="choice", choices=["free", "gold"])
    gold = add(workspace, "a@example.jp", plan="gold")
    add(workspace, "b@example.jp", plan="free")
    result = save_attribute(changed(plan, choices=["free"]))
    assert not result.ok and [b.member_id for b in result.blockers] == [gold.pk]
    assert Attribute.objects.get(pk=plan.pk).choices == ["free", "gold"]


def test_removing_an_unused_choice_is_allowed(workspace):
    plan = Attribute.objects.create(workspace=workspace, key="plan", label="プラン",
                                    type="choice", choices=["free", "gold", "silver"])
    add(workspace, "a@example.jp", plan="gold")
    assert save_attribute(changed(plan, choices=["free", "gold"])).ok
    assert Attribute.objects.get(pk=plan.pk).choices == ["free", "gold"]


def test_a_multiple_choice_with_several_values_cannot_become_a_single_choice(workspace):
    tags = Attribute.objects.create(workspace=workspace, key="tags", label="タグ",
                                    type="multi_choice", choices=["a", "b"])
    one = add(workspace, "a@example.jp", tags=["a"])
    two = add(workspace, "b@example.jp", tags=["a", "b"])
    result = save_attribute(changed(tags, type="choice"))
    assert [b.member_id for b in result.blockers] == [two.pk]
    one.refresh_from_db()
    assert one.attributes == {"tags": ["a"]}


def test_turning_on_required_is_blocked_by_members_without_a_value(workspace, code):
    add(workspace, "a@example.jp", code="1")
    empty = add(workspace, "b@example.jp")
    result = save_attribute(changed(code, required=True))
    assert not result.ok and [b.member_id for b in result.blockers] == [empty.pk]
    assert result.blockers[0].reason
    assert not Attribute.objects.get(pk=code.pk).required


def test_turning_on_required_succeeds_when_everyone_has_a_value(workspace, code):
    add(workspace, "a@example.jp", code="1")
    assert save_attribute(changed(code, required=True)).ok
    assert Attribute.objects.get(pk=code.pk).required


def test_turning_on_unique_is_blocked_by_duplicates(workspace, code):
    first = add(workspace, "a@example.jp", code="X1")
    second = add(workspace, "b@example.jp", code="X1")
    add(workspace, "c@example.jp", code="X2")
    result = save_attribute(changed(code, unique=True))
    assert [b.member_id for b in result.blockers] == [second.pk]
    assert f"#{first.pk}" in result.blockers[0].reason
    assert not Attribute.objects.get(pk=code.pk).unique


def test_unique_compares_the_converted_values(workspace, code):
    add(workspace, "a@example.jp", code="42")
    add(workspace, "b@example.jp", code="42.0")  # the same number once converted
    result = save_attribute(changed(code, type="number", unique=True))
    assert result.blocked == 1


def test_other_workspaces_are_neither_checked_nor_converted(workspace, other_workspace, code):
    theirs = Member.objects.create(workspace=other_workspace, email="x@example.jp",
                                   attributes={"code": "abc"})
    add(workspace, "a@example.jp", code="7")
    assert save_attribute(changed(code, type="number")).ok
    theirs.refresh_from_db()
    assert theirs.attributes == {"code": "abc"}


def test_label_and_pii_changes_need_no_check(workspace, code):
    assert not needs_check(code, changed(code, label="新", pii=True))
    assert needs_check(code, changed(code, type="number"))
    assert not needs_check(code, changed(code, required=False, unique=False))


def test_the_key_cannot_change(workspace, code):
    with pytest.raises(ValueError):
        save_attribute(changed(code, key="other"))
