"""The billing period as the contracts carry it: a calendar month in Asia/Shanghai (UTC+8, no DST), pure.

Here, below the services, so that the contracts check months with the one month parser; services.common.periods
builds the rest of the local calendar on it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
# A billing period as stored and compared: ASCII digits only. ``\d`` and ``int()`` also take full-width and other
# Unicode digits ("２０２６-10"), a second spelling of a month that equality checks on stored periods would miss.
MONTH_PATTERN = r"^([0-9]{4})-(0[1-9]|1[0-2])$"
_MONTH = re.compile(MONTH_PATTERN)


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=LOCAL_TZ)


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

    def through(self, last: Month) -> list[Month]:
        """Every month from this one to ``last``, both included (none when ``last`` is before it)."""
        count = (last.year - self.year) * 12 + last.month - self.month + 1
        return [self.shifted(k) for k in range(max(0, count))]

    def trailing(self, n: int) -> list[Month]:
        """The ``n`` months that end with this one, oldest first."""
        return [self.shifted(-back) for back in range(n - 1, -1, -1)]

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def days(self) -> int:
        return (self.next().first_day - self.first_day).days

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


def canonical_month(month: str) -> str:
    """``month`` itself if it is a canonical ``YYYY-MM`` (a validator: raises ValueError otherwise)."""
    Month.parse(month)
    return month
