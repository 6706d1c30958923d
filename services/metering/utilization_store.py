"""Utilisation rows in PostgreSQL: ``utilization_hourly``, added to in the transaction that stores the events
(the rows' meaning: ``services.metering.domain.utilization``)."""

from __future__ import annotations

from services.metering.domain.utilization import hourly_utilization, observation_of


def _histogram_text(histogram: list[int]) -> str:
    return "{" + ",".join(map(str, histogram)) + "}"


async def store_utilization(conn, events: list[dict]) -> int:
    """Add newly stored utilisation events to ``utilization_hourly``; runs in the caller's transaction."""
    rows = hourly_utilization(observation_of(e) for e in events)
    if not rows:
        return 0
    keys = sorted(rows)  # a fixed order of upserts keeps concurrent batches from deadlocking
    await conn.execute(
        """
        INSERT INTO utilization_hourly AS u (hour, resource_id, samples, observed_ms, cpu_sum, memory_sum,
                                             cpu_max, memory_max, cpu_hist, memory_hist)
        SELECT h, r, s, o, cs, ms, cm, mm, ch::int[], mh::int[]
        FROM unnest($1::timestamptz[], $2::text[], $3::int[], $4::bigint[], $5::numeric[], $6::numeric[],
                    $7::numeric[], $8::numeric[], $9::text[], $10::text[]) AS n(h, r, s, o, cs, ms, cm, mm, ch, mh)
        ON CONFLICT (hour, resource_id) DO UPDATE SET
            samples = u.samples + EXCLUDED.samples,
            observed_ms = u.observed_ms + EXCLUDED.observed_ms,
            cpu_sum = u.cpu_sum + EXCLUDED.cpu_sum,
            memory_sum = u.memory_sum + EXCLUDED.memory_sum,
            cpu_max = greatest(u.cpu_max, EXCLUDED.cpu_max),
            memory_max = greatest(u.memory_max, EXCLUDED.memory_max),
            cpu_hist = (SELECT array_agg(a + b ORDER BY i)
                        FROM unnest(u.cpu_hist, EXCLUDED.cpu_hist) WITH ORDINALITY AS t(a, b, i)),
            memory_hist = (SELECT array_agg(a + b ORDER BY i)
                           FROM unnest(u.memory_hist, EXCLUDED.memory_hist) WITH ORDINALITY AS t(a, b, i))
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [rows[k].samples for k in keys],
        [rows[k].observed_ms for k in keys],
        [rows[k].cpu_sum for k in keys],
        [rows[k].memory_sum for k in keys],
        [rows[k].cpu_max for k in keys],
        [rows[k].memory_max for k in keys],
        [_histogram_text(rows[k].cpu_hist) for k in keys],
        [_histogram_text(rows[k].memory_hist) for k in keys],
    )
    return len(keys)
