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

An observation spanning several hours is split at hour boundaries by overlap. The rows are written (see
``services.metering.utilization_store``) in the same transaction as the event (``MeteringPipeline.apply``) and only
for events stored for the first time, so a redelivered observation is not counted twice. Owners are not stored
here: reports join ``resource_intervals``."""

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
