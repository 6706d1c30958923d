"""Time periods as people in the city mean them: days and months in Asia/Shanghai (UTC+8, no DST).

Stored instants are UTC; only here do local days and months appear."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
HOUR = timedelta(hours=1)
# A billing period as stored and compared: ASCII digits only. ``\d`` and ``int()`` also take full-width and other
# Unicode digits ("２０２６-10"), a second spelling of a month that equality checks on stored periods would miss.
MONTH_PATTERN = r"^([0-9]{4})-(0[1-9]|1[0-2])$"
_MONTH = re.compile(MONTH_PATTERN)


def floor_hour(instant: datetime) -> datetime:
    """Start of the UTC hour holding ``instant``; Shanghai's offset is whole hours, so it is a local hour too."""
    instant = instant.astimezone(UTC)
    return instant.replace(minute=0, second=0, microsecond=0)


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=LOCAL_TZ)


def local_day_of(instant: datetime) -> date:
    return instant.astimezone(LOCAL_TZ).date()


class LocalCalendar:
    """The local day and month (its first day) of a UTC hour, remembered per hour: a batch or a replay asks for
    the same few thousand hours (a year has 8,760) millions of times."""

    def __init__(self) -> None:
        self._days: dict[datetime, tuple[date, date]] = {}

    def __call__(self, hour: datetime) -> tuple[date, date]:
        found = self._days.get(hour)
        if found is None:
            day = local_day_of(hour)
            found = self._days[hour] = (day, day.replace(day=1))
        return found


def month_of(instant: datetime) -> str:
    """The billing period (``YYYY-MM``, local time) that holds ``instant``."""
    local = instant.astimezone(LOCAL_TZ)
    return f"{local.year:04d}-{local.month:02d}"


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a ``YYYY-MM`` billing period as aware local datetimes."""
    year, mon = parse_month(month)
    start = datetime(year, mon, 1, tzinfo=LOCAL_TZ)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=LOCAL_TZ)
    return start, end


def parse_month(month: str) -> tuple[int, int]:
    """(year, month) of a canonical ``YYYY-MM`` (ASCII digits, nothing around it); anything else is a ValueError.
    Every month that reaches the store or a comparison with stored periods goes through here."""
    match = _MONTH.fullmatch(month) if isinstance(month, str) else None
    if match is None:
        raise ValueError(f"{month!r} is not a month in the form YYYY-MM")
    return int(match.group(1)), int(match.group(2))


def canonical_month(month: str) -> str:
    """``month`` itself if it is a canonical ``YYYY-MM`` (a validator: raises ValueError otherwise)."""
    parse_month(month)
    return month


def next_month(month: str) -> str:
    year, mon = parse_month(month)
    return f"{year + (mon == 12):04d}-{mon % 12 + 1:02d}"


def parse_bound(text: str) -> datetime:
    """A query bound: a date means local midnight; a datetime must carry its offset."""
    text = text.strip()
    if len(text) == 10:
        return local_midnight(date.fromisoformat(text))
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("a datetime needs an offset, e.g. 2026-11-01T00:00:00+08:00")
    return value


def period_start(instant: datetime, granularity: str) -> datetime:
    """Start (local time) of the hour, day or month holding ``instant``."""
    local = instant.astimezone(LOCAL_TZ)
    if granularity == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == "month":
        return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unknown granularity {granularity!r}")
