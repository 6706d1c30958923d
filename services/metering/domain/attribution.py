"""Who owned a resource when: effective-dated ownership built from lifecycle events (Art. 8)."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from services.common.periods import floor_hour


@dataclass(frozen=True, slots=True)
class LifecycleChange:
    """One resource lifecycle event as attribution needs it; ``order`` breaks ties between equal instants."""

    action: str  # activated | changed | terminated
    effective_at: datetime
    department_id: str | None
    system: str
    kind: str
    spec: dict[str, Any] = field(default_factory=dict)
    order: tuple = ()


@dataclass(frozen=True, slots=True)
class Ownership:
    resource_id: str
    valid_from: datetime
    valid_to: datetime | None  # None: still owned
    department_id: str
    system: str
    kind: str
    spec: dict[str, Any]

    def covers(self, instant: datetime) -> bool:
        return self.valid_from <= instant and (self.valid_to is None or instant < self.valid_to)


def ownership_intervals(resource_id: str, changes: Iterable[LifecycleChange]) -> list[Ownership]:
    """Replay a resource's lifecycle in effective order into non-overlapping ownership intervals.

    activated/changed start a new owner (department, system, spec) from their instant; terminated ends ownership.
    Between a termination and a later activation the resource has no owner: usage there stays unattributed."""
    intervals: list[Ownership] = []
    current: LifecycleChange | None = None
    for change in sorted(changes, key=lambda c: (c.effective_at, c.order)):
        if current is not None and change.effective_at > current.effective_at:
            intervals.append(_interval(resource_id, current, change.effective_at))
        current = None if change.action == "terminated" else change
    if current is not None:
        intervals.append(_interval(resource_id, current, None))
    return intervals


def _interval(resource_id: str, change: LifecycleChange, until: datetime | None) -> Ownership:
    assert change.department_id is not None
    return Ownership(
        resource_id, change.effective_at, until, change.department_id, change.system, change.kind, change.spec
    )


def owner_at(intervals: list[Ownership], instant: datetime) -> Ownership | None:
    """The ownership in force at ``instant`` (intervals sorted by valid_from), or None if unowned."""
    if len(intervals) <= 1:  # most resources keep one owner (or have none): no search
        return intervals[0] if intervals and intervals[0].covers(instant) else None
    index = bisect_right(intervals, instant, key=lambda o: o.valid_from) - 1
    if index >= 0 and intervals[index].covers(instant):
        return intervals[index]
    return None


def lifecycle_from_hours(changes: Iterable[tuple[str, datetime]]) -> dict[str, datetime]:
    """Per resource, the UTC hour of its earliest effective instant among new lifecycle events: its usage is
    re-attributed from that hour on, even usage that arrived before the lifecycle event."""
    from_hours: dict[str, datetime] = {}
    for subject, effective_at in changes:
        hour = floor_hour(effective_at)
        current = from_hours.get(subject)
        from_hours[subject] = hour if current is None else min(current, hour)
    return from_hours
