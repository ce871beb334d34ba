"""Jinja2 filters for Japanese formatting in mail templates (yen, numbers, dates, eras, JST times).
`FILTERS` is what rendering registers; every filter turns None, "" and undefined into ""."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django.utils.translation import gettext as _
from jinja2 import Undefined

JST = ZoneInfo("Asia/Tokyo")
WEEKDAYS = "月火水木金土日"

# (first day, name); years count from the first year of each era. Meiji starts at 1873, the year
# Japan adopted the Gregorian calendar: earlier Meiji dates were lunar and are not converted.
ERAS = [
    (dt.date(2019, 5, 1), "令和"),
    (dt.date(1989, 1, 8), "平成"),
    (dt.date(1926, 12, 25), "昭和"),
    (dt.date(1912, 7, 30), "大正"),
    (dt.date(1873, 1, 1), "明治"),
]
ERA_FIRST_YEARS = {"令和": 2019, "平成": 1989, "昭和": 1926, "大正": 1912, "明治": 1868}


def _blank(value: Any) -> bool:
    return value is None or isinstance(value, Undefined) or value == ""


def _decimal(value: Any) -> Decimal | None:
    """A finite Decimal for ints, floats, Decimals and numeric strings; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = str(value)  # the shortest repr: 2.675 stays 2.675, not 2.67499999...
    elif isinstance(value, str):
        value = value.strip()
    elif not isinstance(value, int | Decimal):
        return None
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def yen(value: Any, suffix: bool = False) -> str:
    """1234567 -> "¥1,234,567" (or "1,234,567円" with suffix), rounded half up to whole yen."""
    if _blank(value):
        return ""
    amount = _decimal(value)
    if amount is None:
        return str(value)
    whole = int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    sign = "-" if whole < 0 else ""
    digits = f"{abs(whole):,}"
    return f"{sign}{digits}円" if suffix else f"{sign}¥{digits}"


def number(value: Any) -> str:
    """1234567 -> "1,234,567"; decimals are kept as given (1234.5 -> "1,234.5")."""
    if _blank(value):
        return ""
    amount = _decimal(value)
    if amount is None:
        return str(value)
    return format(amount, ",f")


def _moment(value: Any) -> dt.date | dt.datetime | None:
    """A date, or a datetime in JST (naive ones are UTC); None when the value is not a date."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        return value
    elif isinstance(value, str):
        text = value.strip()
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(JST)


def _day(moment: dt.date | dt.datetime) -> dt.date:
    return moment.date() if isinstance(moment, dt.datetime) else moment


def _long(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _date_filter(render: Callable[[dt.date | dt.datetime], str]) -> Callable[[Any], str]:
    def apply(value: Any) -> str:
        if _blank(value):
            return ""
        moment = _moment(value)
        return str(value) if moment is None else render(moment)

    return apply


DATE_FORMATS: dict[str, Callable[[dt.date], str]] = {
    "long": _long,
    "weekday": lambda d: f"{_long(d)}（{WEEKDAYS[d.weekday()]}）",
    "short": lambda d: f"{d.month}月{d.day}日",
    "slash": lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}",
}


def date_ja(value: Any, fmt: str = "long") -> str:
    """A date in JST: "long" 2026年11月30日, "weekday" 2026年11月30日（月）, "short" 11月30日,
    "slash" 2026/11/30."""
    if fmt not in DATE_FORMATS:
        raise ValueError(_("Unknown date format %(fmt)s: use one of %(formats)s.")
                         % {"fmt": fmt, "formats": ", ".join(DATE_FORMATS)})
    return _date_filter(lambda m: DATE_FORMATS[fmt](_day(m)))(value)


def weekday_ja(value: Any) -> str:
    """The JST weekday as one kanji, 月 to 日."""
    return _date_filter(lambda m: WEEKDAYS[_day(m).weekday()])(value)


def datetime_ja(value: Any) -> str:
    """"2026年11月30日 12:00" in JST; a date alone gives "2026年11月30日"."""
    def render(m: dt.date | dt.datetime) -> str:
        return f"{_long(m)} {m:%H:%M}" if isinstance(m, dt.datetime) else _long(m)

    return _date_filter(render)(value)


def _era(day: dt.date) -> str:
    for start, name in ERAS:
        if day >= start:
            year = day.year - ERA_FIRST_YEARS[name] + 1
            return f"{name}{'元' if year == 1 else year}年{day.month}月{day.day}日"
    return _long(day)


def era_ja(value: Any) -> str:
    """The date in the Japanese calendar: "令和8年11月30日", "令和元年5月1日", "平成31年4月30日"."""
    return _date_filter(lambda m: _era(_day(m)))(value)


def jst(value: Any) -> str:
    """"2026-11-30 12:00" in JST; a date alone gives "2026-11-30"."""
    def render(m: dt.date | dt.datetime) -> str:
        return f"{m:%Y-%m-%d %H:%M}" if isinstance(m, dt.datetime) else f"{m:%Y-%m-%d}"

    return _date_filter(render)(value)


FILTERS: dict[str, Callable[..., str]] = {
    "yen": yen,
    "number": number,
    "date_ja": date_ja,
    "weekday_ja": weekday_ja,
    "datetime_ja": datetime_ja,
    "era_ja": era_ja,
    "jst": jst,
}
