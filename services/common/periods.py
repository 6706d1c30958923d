"""Time periods as people in the city mean them: days and months in Asia/Shanghai (UTC+8, no DST).

Stored instants are UTC; only here do local days and months appear."""

from __future__ import annotations

import re
from dataclasses import dataclass
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


@dataclass(frozen=True, order=True)
class Month:
    """A billing period: a calendar month in Asia/Shanghai. The one place where months are counted; its text is
    the canonical ``YYYY-MM`` (ASCII digits) under which periods are stored and compared."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not (0 <= self.year <= 9999 and 1 <= self.month <= 12):
            raise ValueError(f"{self.year}-{self.month} is not a month")

    @classmethod
    def parse(cls, text: str) -> Month:
        """The month of a canonical ``YYYY-MM`` (ASCII digits, nothing around it); anything else is a ValueError.
        Every month that reaches the store or a comparison with stored periods goes through here."""
        match = _MONTH.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"{text!r} is not a month in the form YYYY-MM")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, instant: datetime) -> Month:
        """The month (local time) that holds ``instant``."""
        local = instant.astimezone(LOCAL_TZ)
        return cls(local.year, local.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def shifted(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    def next(self) -> Month:
        return self.shifted(1)

    def previous(self) -> Month:
        return self.shifted(-1)

    def trailing(self, n: int) -> list[Month]:
        """The ``n`` months that end with this one, oldest first."""
        return [self.shifted(-back) for back in range(n - 1, -1, -1)]

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def start(self) -> datetime:
        """Local midnight of the 1st (aware)."""
        return local_midnight(self.first_day)

    @property
    def end(self) -> datetime:
        """Exclusive: the start of the next month."""
        return self.next().start

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return self.start, self.end


def month_of(instant: datetime) -> str:
    """The billing period (``YYYY-MM``, local time) that holds ``instant``."""
    return str(Month.of(instant))


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a ``YYYY-MM`` billing period as aware local datetimes."""
    return Month.parse(month).bounds


def parse_month(month: str) -> tuple[int, int]:
    """(year, month) of a canonical ``YYYY-MM``; anything else is a ValueError (see ``Month.parse``)."""
    parsed = Month.parse(month)
    return parsed.year, parsed.month


def canonical_month(month: str) -> str:
    """``month`` itself if it is a canonical ``YYYY-MM`` (a validator: raises ValueError otherwise)."""
    Month.parse(month)
    return month


def next_month(month: str) -> str:
    return str(Month.parse(month).next())


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
