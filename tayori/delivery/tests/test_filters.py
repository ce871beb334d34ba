"""Japanese formatting filters for mail templates."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from jinja2 import StrictUndefined, Undefined
from jinja2.sandbox import SandboxedEnvironment

from tayori.delivery.filters import (
    FILTERS,
    date_ja,
    datetime_ja,
    era_ja,
    jst,
    number,
    weekday_ja,
    yen,
)

BLANKS = [None, "", Undefined(), StrictUndefined()]


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("blank", BLANKS, ids=["None", "empty", "undefined", "strict"])
def test_every_filter_turns_blanks_into_empty_text(name, blank):
    assert FILTERS[name](blank) == ""


@pytest.mark.parametrize(("value", "expected"), [
    (1234567, "¥1,234,567"),
    (0, "¥0"),
    (-1234, "-¥1,234"),
    (Decimal("1980"), "¥1,980"),
    ("1234", "¥1,234"),
    (" 1234.0 ", "¥1,234"),
    (1234.5, "¥1,235"),
    (1234.4, "¥1,234"),
    (2.5, "¥3"),  # half up, not to even
    (-2.5, "-¥3"),
    (-0.4, "¥0"),
    (Decimal("99.5"), "¥100"),
])
def test_yen(value, expected):
    assert yen(value) == expected


def test_yen_with_suffix():
    assert yen(1234567, suffix=True) == "1,234,567円"
    assert yen(-1234, suffix=True) == "-1,234円"


@pytest.mark.parametrize("value", ["無料", "12a", "nan", "inf"])
def test_number_filters_give_back_text_that_is_not_a_number(value):
    assert yen(value) == value
    assert number(value) == value


def test_number_filters_give_back_other_types_as_text():
    assert yen(True) == "True"
    assert number([1]) == "[1]"


@pytest.mark.parametrize(("value", "expected"), [
    (1234567, "1,234,567"),
    (1234.5, "1,234.5"),
    (-1234567, "-1,234,567"),
    (12, "12"),
    (Decimal("1234.50"), "1,234.50"),
    ("9876543", "9,876,543"),
    ("1234.25", "1,234.25"),
])
def test_number(value, expected):
    assert number(value) == expected


MONDAY = dt.date(2026, 11, 30)


@pytest.mark.parametrize("value", [
    MONDAY,
    "2026-11-30",
    dt.datetime(2026, 11, 30, 3, 0),  # naive is UTC
    dt.datetime(2026, 11, 30, 3, 0, tzinfo=dt.UTC),
    "2026-11-30T03:00:00Z",
    "2026-11-30T03:00:00+00:00",
])
def test_date_formats(value):
    assert date_ja(value) == "2026年11月30日"
    assert date_ja(value, "weekday") == "2026年11月30日（月）"
    assert date_ja(value, "short") == "11月30日"
    assert date_ja(value, "slash") == "2026/11/30"
    assert weekday_ja(value) == "月"
    assert era_ja(value) == "令和8年11月30日"


def test_slash_dates_pad_month_and_day():
    assert date_ja(dt.date(2027, 1, 5), "slash") == "2027/01/05"


def test_an_unknown_date_format_is_a_template_error():
    with pytest.raises(ValueError, match="shout"):
        date_ja(MONDAY, "shout")


@pytest.mark.parametrize("value", [
    dt.datetime(2026, 11, 30, 15, 30),  # naive: UTC, so 00:30 on Tuesday in Tokyo
    dt.datetime(2026, 11, 30, 15, 30, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 30, 10, 30, tzinfo=ZoneInfo("America/New_York")),
    "2026-11-30T15:30:00Z",
    "2026-11-30T15:30:00+00:00",
    "2026-12-01T00:30:00+09:00",
])
def test_late_utc_times_are_the_next_day_in_japan(value):
    assert date_ja(value, "weekday") == "2026年12月1日（火）"
    assert weekday_ja(value) == "火"
    assert datetime_ja(value) == "2026年12月1日 00:30"
    assert jst(value) == "2026-12-01 00:30"
    assert era_ja(value) == "令和8年12月1日"


def test_datetime_ja_and_jst():
    noon = dt.datetime(2026, 11, 30, 12, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert datetime_ja(noon) == "2026年11月30日 12:00"
    assert datetime_ja("2026-11-30T03:00:00Z") == "2026年11月30日 12:00"
    assert jst("2026-11-30T03:00:00Z") == "2026-11-30 12:00"
    assert jst(dt.datetime(2026, 11, 30, 3, 5)) == "2026-11-30 12:05"


def test_a_date_alone_has_no_time():
    assert datetime_ja(MONDAY) == "2026年11月30日"
    assert datetime_ja("2026-11-30") == "2026年11月30日"
    assert jst("2026-11-30") == "2026-11-30"


@pytest.mark.parametrize(("day", "expected"), [
    (dt.date(2019, 5, 1), "令和元年5月1日"),
    (dt.date(2019, 12, 31), "令和元年12月31日"),
    (dt.date(2020, 1, 1), "令和2年1月1日"),
    (dt.date(2019, 4, 30), "平成31年4月30日"),
    (dt.date(1989, 1, 8), "平成元年1月8日"),
    (dt.date(1989, 1, 7), "昭和64年1月7日"),
    (dt.date(1926, 12, 25), "昭和元年12月25日"),
    (dt.date(1926, 12, 24), "大正15年12月24日"),
    (dt.date(1912, 7, 30), "大正元年7月30日"),
    (dt.date(1912, 7, 29), "明治45年7月29日"),
    (dt.date(1873, 1, 1), "明治6年1月1日"),
    (dt.date(1872, 12, 31), "1872年12月31日"),  # lunar calendar: not converted
])
def test_era_ja(day, expected):
    assert era_ja(day) == expected


def test_era_ja_uses_the_japanese_day():
    # 15:00 UTC on the last day of Heisei is already the first day of Reiwa in Tokyo.
    assert era_ja("2019-04-30T15:00:00Z") == "令和元年5月1日"
    assert era_ja("2019-04-30T14:59:59Z") == "平成31年4月30日"


@pytest.mark.parametrize("name", ["date_ja", "weekday_ja", "datetime_ja", "era_ja", "jst"])
@pytest.mark.parametrize("value", ["来週", "2026-13-01", "30/11/2026", "2026-11-30T25:00"])
def test_date_filters_give_back_text_that_is_not_a_date(name, value):
    assert FILTERS[name](value) == value


def test_date_filters_give_back_other_types_as_text():
    assert date_ja(20261130) == "20261130"


def test_filters_render_in_a_sandboxed_environment():
    env = SandboxedEnvironment()
    env.filters.update(FILTERS)
    template = env.from_string('{{ price|yen }} {{ d|date_ja("weekday") }}')
    assert template.render(price=1980, d=MONDAY) == "¥1,980 2026年11月30日（月）"
    assert template.render() == " "
