"""Per-source watermarks, kept by the worker in the same transaction as the events they describe.

A source's watermark is the newest usage interval end stored for it ("complete up to"): billing closes a period
only once every active source has passed the period's end (services/billing/watermarks.py). Lifecycle and
utilisation events say the source is alive (``last_seen_at``, ``events``) but not how far its billed data
reached. One upsert per batch, only ever forward (GREATEST), counting only events new to the store, so a batch
redelivered, retried or bisected by services/metering/isolation.py leaves the same row as one clean delivery."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from schemas.events import USAGE_TYPE
from services.metering.event_store import IncomingEvent


def source_marks(new_events: Iterable[IncomingEvent]) -> dict[str, tuple[datetime | None, int]]:
    """Per source: the newest usage interval end among ``new_events`` (None without usage) and how many."""
    marks: dict[str, list] = {}
    for item in new_events:
        mark = marks.get(item.key[0])
        if mark is None:
            mark = marks[item.key[0]] = [None, 0]
        mark[1] += 1
        event = item.event
        if event["type"] == USAGE_TYPE:
            end = event["data"]["end"]
            if mark[0] is None or end > mark[0]:
                mark[0] = end
    return {source: (mark[0], mark[1]) for source, mark in marks.items()}


async def advance_watermarks(conn, new_events: Iterable[IncomingEvent]) -> None:
    """One statement for the batch. Sources in one order, so concurrent batches cannot deadlock on the rows; the
    caller runs it last in its transaction, so a row stays locked only until that commit."""
    marks = source_marks(new_events)
    if not marks:
        return
    sources = sorted(marks)
    await conn.execute(
        """
        INSERT INTO source_watermarks AS w (source, complete_up_to, last_seen_at, events)
        SELECT s, c, now(), n FROM unnest($1::text[], $2::timestamptz[], $3::bigint[]) AS x(s, c, n)
        ON CONFLICT (source) DO UPDATE SET
            complete_up_to = GREATEST(w.complete_up_to, EXCLUDED.complete_up_to),
            last_seen_at = GREATEST(w.last_seen_at, EXCLUDED.last_seen_at),
            events = w.events + EXCLUDED.events
        """,
        sources, [marks[s][0] for s in sources], [marks[s][1] for s in sources],
    )
