"""Data-complete watermarks (pure): which event sources are behind a period's end, so that it may not close yet.

A source is *active* while its last new event was stored less than ``active_days`` ago; a source silent for
longer is taken to be gone (decommissioned, renamed) and no longer holds anything. An active source is *behind*
a period while the newest usage interval end it has delivered (``complete_up_to``) is before the period's end
(local month end). A source that never sent usage (lifecycle or utilisation only) has nothing billed to wait for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from services.common.periods import month_bounds


@dataclass(frozen=True, slots=True)
class SourceMark:
    source: str
    complete_up_to: datetime | None
    last_seen_at: datetime
    events: int


def is_active(mark: SourceMark, now: datetime, active_days: int) -> bool:
    return mark.last_seen_at > now - timedelta(days=active_days)


def is_behind(mark: SourceMark, period: str, now: datetime, active_days: int) -> bool:
    return (mark.complete_up_to is not None and mark.complete_up_to < month_bounds(period)[1]
            and is_active(mark, now, active_days))


def sources_behind(marks: Iterable[SourceMark], period: str, now: datetime, active_days: int) -> list[SourceMark]:
    """The active sources whose data has not reached the end of ``period``, by source name."""
    return sorted((m for m in marks if is_behind(m, period, now, active_days)), key=lambda m: m.source)


def describe(marks: Iterable[SourceMark]) -> str:
    return "; ".join(f"{m.source} (complete up to {m.complete_up_to.isoformat()}, last seen "
                     f"{m.last_seen_at.isoformat()})" for m in marks)


def override_record(by: str, at: datetime, reason: str, behind: Iterable[SourceMark]) -> dict:
    """What a period keeps of a close that an admin forced past sources still behind its end."""
    return {"by": by, "at": at.isoformat(), "reason": reason,
            "sources_behind": [{"source": m.source, "complete_up_to": m.complete_up_to.isoformat(),
                                "last_seen_at": m.last_seen_at.isoformat(), "events": m.events} for m in behind]}
