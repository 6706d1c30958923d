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


@dataclass(frozen=True, slots=True)
class Pages:
    """Where some of a segment's events lie: the range of pages they span in one table of the event store (a
    month's partition, read through ``table`` and picked by its oid, or a month detached into the archive)."""

    table: str
    oid: int
    first_tid: str
    last_tid: str


@dataclass
class SegmentPlan:
    """What one segment holds: events by type and, for each table holding some, the range of pages they lie in."""

    events: dict[str, int] = field(default_factory=dict)
    pages: dict[int, Pages] = field(default_factory=dict)

    def add(self, event_type: str, count: int, table: str, oid: int, first_tid: str, last_tid: str) -> None:
        self.events[event_type] = self.events.get(event_type, 0) + count
        seen = self.pages.get(oid)
        if seen is not None:
            first_tid, last_tid = min(seen.first_tid, first_tid, key=_tid), max(seen.last_tid, last_tid, key=_tid)
        self.pages[oid] = Pages(table, oid, first_tid, last_tid)


def _tid(text: str) -> tuple[int, int]:
    block, offset = text.strip("()").split(",")
    return int(block), int(offset)


def _param(params: list, value) -> str:
    """Append ``value`` to the statement's parameters; its placeholder."""
    params.append(value)
    return f"${len(params)}"


def segment_of(boundaries: list[Boundary], column: str, params: list) -> str:
    """SQL expression: the index of the first boundary that saw a row stamped ``column`` (the segment it is
    replayed in), or len(boundaries) when none did yet."""
    whens = " ".join(f"WHEN {column} <= {_param(params, b.closed_at)}::timestamptz AND NOT {column} = "
                     f"ANY({_param(params, list(b.open_at_close))}::timestamptz[]) THEN {i}"
                     for i, b in enumerate(boundaries))
    return f"(CASE {whens} ELSE {len(boundaries)} END)" if boundaries else "0"


def segment_where(boundaries: list[Boundary], k: int, params: list) -> str:
    """SQL condition: a row received in segment ``k``. Beside ``segment_of``, bounds on ``received_at`` that the
    planner prunes the event store's month partitions by: a row of segment k was received after boundary k − 1
    or in a transaction open at it (stamped with its start), and by boundary k."""
    where = [f"{segment_of(boundaries, 'received_at', params)} = {k}"]
    if 0 < k <= len(boundaries):
        before = boundaries[k - 1]
        where.append(f"received_at >= {_param(params, min((before.closed_at, *before.open_at_close)))}::timestamptz")
    if k < len(boundaries):
        where.append(f"received_at <= {_param(params, boundaries[k].closed_at)}::timestamptz")
    return " AND ".join(where)


async def plan_segments(source, boundaries: list[Boundary], tables: list[str]) -> dict[int, SegmentPlan]:
    """One pass over the event store's ``tables`` (stored_event_tables): how many events of each type each
    segment holds, and where. A segment's events are then read from their tables' ranges of pages only
    (append-only tables partitioned by month: segments mostly follow each other)."""
    plans: dict[int, SegmentPlan] = defaultdict(SegmentPlan)
    for table in tables:
        params: list = []
        rows = await source.fetch(
            f"""
            SELECT segment, type, tableoid::oid AS oid, count(*) AS events, min(ctid)::text AS first_tid,
                   max(ctid)::text AS last_tid
            FROM (SELECT {segment_of(boundaries, 'received_at', params)} AS segment, type, tableoid, ctid
                  FROM {table}) e
            GROUP BY 1, 2, 3
            """,
            *params,
        )
        for r in rows:
            plans[r["segment"]].add(r["type"], r["events"], table, r["oid"], r["first_tid"], r["last_tid"])
    return plans


def page_ranges(plan: SegmentPlan, parts: int) -> list[list[tuple[str, str]]]:
    """Up to ``parts`` shares of the segment's pages: each a list of (table, SQL condition), one range of each
    table's pages [first, last] a share."""
    shares: list[list[tuple[str, str]]] = [[] for _ in range(parts)]
    for pages in plan.pages.values():
        first, last = _tid(pages.first_tid)[0], _tid(pages.last_tid)[0] + 1
        bounds = sorted({first + (last - first) * i // parts for i in range(parts)} | {last})
        for share, (low, high) in zip(shares, zip(bounds, bounds[1:])):
            share.append((pages.table, f"tableoid = {pages.oid} AND ctid >= '({low},0)'::tid "
                                       f"AND ctid < '({high},0)'::tid"))
    return [share for share in shares if share]
