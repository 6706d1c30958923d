"""Utilisation observations (``gov.cloud.utilization.v1``) kept compactly: one row per UTC hour and resource.

Utilisation is never billed. The provider reports, per resource and interval, the average CPU and memory use in
percent; reports need averages and 95th percentiles over weeks and months, so each hour keeps

* ``observed_ms``: how long the resource was observed in that hour (milliseconds),
* ``cpu_sum`` / ``memory_sum``: Σ percent × milliseconds, so an average over any hours is Σ sum / Σ observed_ms
  (time-weighted: a 10-minute observation weighs twice a 5-minute one),
* ``cpu_max`` / ``memory_max``,
* ``cpu_hist`` / ``memory_hist``: milliseconds spent in each 1-percentage-point bucket (100 buckets: [0, 1),
  [1, 2), …, [99, 100]). Histograms add up exactly across hours and resources, so a p95 over any set of rows is
  read from their sum (see ``percentile``) and is exact to within one percentage point.

An observation spanning several hours is split at hour boundaries by overlap. The rows are written in the same
transaction as the event (``MeteringPipeline.apply``) and only for events stored for the first time, so a
redelivered observation is not counted twice. Owners are not stored here: reports join ``resource_intervals``."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Iterable, Sequence

from services.common.periods import HOUR, floor_hour

BUCKETS = 100
_MS = timedelta(milliseconds=1)


def bucket_of(percent: Decimal) -> int:
    """The histogram bucket of a percentage: floor(percent), with 100 % in the last bucket."""
    return min(int(percent), BUCKETS - 1)


@dataclass
class HourUtilization:
    """What one resource's observations add to one hour."""

    samples: int = 0
    observed_ms: int = 0
    cpu_sum: Decimal = Decimal(0)
    memory_sum: Decimal = Decimal(0)
    cpu_max: Decimal = Decimal(0)
    memory_max: Decimal = Decimal(0)
    cpu_hist: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    memory_hist: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add(self, millis: int, cpu: Decimal, memory: Decimal) -> None:
        self.samples += 1
        self.observed_ms += millis
        self.cpu_sum += cpu * millis
        self.memory_sum += memory * millis
        self.cpu_max = max(self.cpu_max, cpu)
        self.memory_max = max(self.memory_max, memory)
        self.cpu_hist[bucket_of(cpu)] += millis
        self.memory_hist[bucket_of(memory)] += millis


@dataclass(frozen=True, slots=True)
class Observation:
    resource_id: str
    start: datetime
    end: datetime
    cpu_percent: Decimal
    memory_percent: Decimal


def hourly_utilization(observations: Iterable[Observation]) -> dict[tuple[datetime, str], HourUtilization]:
    """Split observations at UTC hour boundaries and fold them into per-(hour, resource) rows."""
    rows: dict[tuple[datetime, str], HourUtilization] = defaultdict(HourUtilization)
    for o in observations:
        hour = floor_hour(o.start)
        while hour < o.end:
            piece = min(o.end, hour + HOUR) - max(o.start, hour)
            millis = piece // _MS
            if millis > 0:
                rows[(hour, o.resource_id)].add(millis, o.cpu_percent, o.memory_percent)
            hour += HOUR
    return dict(rows)


def merge_histograms(histograms: Iterable[Sequence[int]]) -> list[int]:
    total = [0] * BUCKETS
    for histogram in histograms:
        for i, weight in enumerate(histogram):
            total[i] += weight
    return total


def percentile(histogram: Sequence[int], q: Decimal = Decimal("0.95"),
               maximum: Decimal | None = None) -> Decimal | None:
    """The q-quantile of a bucket histogram, interpolating linearly inside the bucket that holds it (values are
    assumed spread evenly across a bucket) and never above the observed ``maximum``. None when empty."""
    total = sum(histogram)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    value = Decimal(BUCKETS)
    for i, weight in enumerate(histogram):
        if weight and seen + weight >= rank:
            value = Decimal(i) + (rank - seen) / weight
            break
        seen += weight
    if maximum is not None:
        value = min(value, maximum)
    return value


def observation_of(event: dict) -> Observation:
    data = event["data"]
    return Observation(event["subject"], data["start"], data["end"], Decimal(data["cpu_percent"]),
                       Decimal(data["memory_percent"]))


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
