"""Days in the workspace time zone: the bounds a day operator selects and the month-day window
of an anniversary, shared by the SQL compiler and the Python evaluator so both use the same
arithmetic."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def workspace_today(workspace, now: dt.datetime) -> dt.date:
    """The date ``now`` falls on in the workspace time zone."""
    return now.astimezone(ZoneInfo(workspace.time_zone)).date()


def day_range(operator: str, value, today: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """The inclusive range of days a day operator selects (None: unbounded)."""
    day = dt.timedelta(days=1)
    if operator in ("within_last_days", "within_next_days", "more_than_days_ago",
                    "less_than_days_ago"):
        n = dt.timedelta(days=value)
        return {
            "within_last_days": (today - n, today),
            "within_next_days": (today, today + n),
            "more_than_days_ago": (None, today - n - day),
            "less_than_days_ago": (today - n + day, today),
        }[operator]
    if operator == "between":
        return dt.date.fromisoformat(value[0]), dt.date.fromisoformat(value[1])
    d = dt.date.fromisoformat(value)
    return {
        "equals": (d, d), "gt": (d + day, None), "gte": (d, None),
        "lt": (None, d - day), "lte": (None, d),
    }[operator]


def day_start(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant at which ``day`` begins in the workspace time zone."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz).astimezone(dt.UTC)


def instant_range(operator: str, value, today: dt.date,
                  tz: ZoneInfo) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The UTC instants a day operator selects: from the start of its first day (inclusive) to
    the start of the day after its last (exclusive). None: unbounded."""
    low, high = day_range(operator, value, today)
    return (None if low is None else day_start(low, tz),
            None if high is None else day_start(high + dt.timedelta(days=1), tz))


def instant_text(instant: dt.datetime) -> str:
    # Stored datetimes are "YYYY-MM-DDTHH:MM:SS[.ffffff]Z"; a bound without the "Z" compares
    # bytewise exactly like the instant it names, whatever fraction of a second follows.
    return instant.replace(tzinfo=None).isoformat(timespec="seconds")


def month_day_window(days: int, today: dt.date) -> tuple[str, str, bool] | None:
    """(first MM-DD, last MM-DD, wraps past 31 Dec), or None when the window covers a year."""
    if days >= 365:
        return None
    end = today + dt.timedelta(days=days)
    return today.strftime("%m-%d"), end.strftime("%m-%d"), end.year != today.year
