"""What replay does, in what order: the report, the boundaries of the segments (the closes, then cuts taken like a
close) and, from one pass over the event store, what each segment holds and where."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from services.bill_reads.bills import ClosedPeriod


@dataclass
class ReplayReport:
    schema: str
    events: int = 0
    rate_cards: int = 0
    seconds: float = 0.0
    final_bills_checked: int = 0
    drafts_checked: int = 0
    tables_compared: dict[str, int] = field(default_factory=dict)  # table → live rows compared
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass(frozen=True, slots=True)
class Cut:
    """A segment boundary taken like a close (ClosedPeriod has the same two fields): everything stamped by
    ``closed_at`` had committed, except what the transactions open then (stamped with their start) write."""

    closed_at: datetime
    open_at_close: tuple[datetime, ...] = ()


Boundary = ClosedPeriod | Cut


@dataclass
class SegmentPlan:
    """What one segment holds: events by type and the range of the event store's pages they lie in."""

    events: dict[str, int] = field(default_factory=dict)
    first_tid: str | None = None
    last_tid: str | None = None

    def add(self, event_type: str, count: int, first_tid: str, last_tid: str) -> None:
        self.events[event_type] = count
        self.first_tid = first_tid if self.first_tid is None else min(self.first_tid, first_tid, key=_tid)
        self.last_tid = last_tid if self.last_tid is None else max(self.last_tid, last_tid, key=_tid)


def _tid(text: str) -> tuple[int, int]:
    block, offset = text.strip("()").split(",")
    return int(block), int(offset)


def segment_of(boundaries: list[Boundary], column: str, params: list) -> str:
    """SQL expression: the index of the first boundary that saw a row stamped ``column`` (the segment it is
    replayed in), or len(boundaries) when none did yet."""
    def param(value) -> str:
        params.append(value)
        return f"${len(params)}"

    whens = " ".join(f"WHEN {column} <= {param(b.closed_at)}::timestamptz AND NOT {column} = "
                     f"ANY({param(list(b.open_at_close))}::timestamptz[]) THEN {i}" for i, b in enumerate(boundaries))
    return f"(CASE {whens} ELSE {len(boundaries)} END)" if boundaries else "0"


async def plan_segments(source, boundaries: list[Boundary]) -> dict[int, SegmentPlan]:
    """One pass over the event store: how many events of each type each segment holds, and where. A segment's
    events are then read from its range of pages only (append-only table: segments mostly follow each other)."""
    params: list = []
    rows = await source.fetch(
        f"""
        SELECT segment, type, count(*) AS events, min(ctid)::text AS first_tid, max(ctid)::text AS last_tid
        FROM (SELECT {segment_of(boundaries, 'received_at', params)} AS segment, type, ctid FROM public.events) e
        GROUP BY 1, 2
        """,
        *params,
    )
    plans: dict[int, SegmentPlan] = defaultdict(SegmentPlan)
    for r in rows:
        plans[r["segment"]].add(r["type"], r["events"], r["first_tid"], r["last_tid"])
    return plans


def page_ranges(plan: SegmentPlan, parts: int) -> list[str]:
    """SQL conditions splitting the segment's pages [first, last] into up to ``parts`` ranges."""
    first, last = _tid(plan.first_tid)[0], _tid(plan.last_tid)[0] + 1
    bounds = sorted({first + (last - first) * i // parts for i in range(parts)} | {last})
    return [f"ctid >= '({low},0)'::tid AND ctid < '({high},0)'::tid" for low, high in zip(bounds, bounds[1:])]
