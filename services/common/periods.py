"""Time periods as people in the city mean them: days and months in Asia/Shanghai (UTC+8, no DST).

Stored instants are UTC; only here (and in ``Month``, schemas/periods.py, which the contracts use) do local days and
months appear."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta

# Month and its parser live with the contracts (schemas/periods.py); re-exported so every service imports the
# calendar from one place.
from schemas.periods import LOCAL_TZ, MONTH_PATTERN, Month, canonical_month, local_midnight

__all__ = ["HOUR", "LOCAL_TZ", "MONTH_PATTERN", "LocalCalendar", "Month", "canonical_month", "floor_hour",
           "is_local_midnight", "local_day_of", "local_midnight", "month_bounds", "month_of", "months_spanning",
           "months_touching", "next_month", "parse_bound", "parse_month", "period_start", "previous_month"]
HOUR = timedelta(hours=1)


def floor_hour(instant: datetime) -> datetime:
    """Start of the UTC hour holding ``instant``; Shanghai's offset is whole hours, so it is a local hour too."""
    instant = instant.astimezone(UTC)
    return instant.replace(minute=0, second=0, microsecond=0)


def is_local_midnight(instant: datetime) -> bool:
    local = instant.astimezone(LOCAL_TZ)
    return (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)


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
    return str(Month.of(instant))


def months_spanning(start: datetime, end: datetime, most: int) -> list[Month] | None:
    """The billing periods that [start, end) overlaps, in order; None when there are more than ``most``."""
    first, last = Month.of(start), Month.of(end - timedelta(microseconds=1))  # end is exclusive
    return None if first.shifted(most) <= last else first.through(last)


def months_touching(start: datetime, end: datetime, most: int = 240) -> frozenset[str] | None:
    """The billing periods that [start, end) overlaps; None when there are more than ``most`` (say: any)."""
    months = months_spanning(start, end, most)
    return None if months is None else frozenset(str(month) for month in months)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a ``YYYY-MM`` billing period as aware local datetimes."""
    return Month.parse(month).bounds


def parse_month(month: str) -> tuple[int, int]:
    """(year, month) of a canonical ``YYYY-MM``; anything else is a ValueError (see ``Month.parse``)."""
    parsed = Month.parse(month)
    return parsed.year, parsed.month


# Remembered: a bill list walks every closed month (some 70 at five years) in both directions on every request,
# and parsing a month is most of the walk. Months are few (12 a year), so the memo stays small.
@functools.lru_cache(maxsize=4096)
def next_month(month: str) -> str:
    return str(Month.parse(month).next())


@functools.lru_cache(maxsize=4096)
def previous_month(month: str) -> str:
    return str(Month.parse(month).previous())


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
