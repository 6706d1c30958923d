"""The pure parts of the bulk rebuild: staged rows carry exactly what the worker's coarse rollups group by."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.replay.plan import Cut, segment_of
from services.metering.domain.rating import MeteredUsage, RollupDelta, rate_usage
from services.common.periods import LocalCalendar, local_day_of
from services.metering.domain.attribution import lifecycle_from_hours
from services.projection.rollups import COARSE_ROLLUPS
from services.projection.staging import HOURLY_DELTA_COLUMNS, hourly_delta_rows

STAGED = [c.split()[0] for c in HOURLY_DELTA_COLUMNS.split(", ")]  # column names, in order


def coarse_key(rollup, hour, department, system, meter) -> tuple:
    """A coarse rollup's key for an hourly row, as the worker's rollup statement groups it."""
    day = local_day_of(hour)
    values = {"day": day, "month": day.replace(day=1), "department_id": department, "system": system, "meter": meter}
    return tuple(values[c] for c in rollup.columns)


def test_the_local_day_and_month_of_an_hour_are_the_coarse_rollups_own():
    calendar = LocalCalendar()
    # 15:00 UTC on the last day of January is 23:00 local; 16:00 UTC is already 1 February
    for hour in (datetime(2061, 1, 31, 15, tzinfo=UTC), datetime(2061, 1, 31, 16, tzinfo=UTC),
                 datetime(2061, 12, 31, 16, tzinfo=UTC)):
        day, month = calendar(hour)
        for rollup in COARSE_ROLLUPS:
            key = dict(zip(rollup.columns, coarse_key(rollup, hour, "d", "s", "m")))
            assert key.get("day", day) == day and key.get("month", month) == month
    assert calendar(datetime(2061, 1, 31, 16, tzinfo=UTC)) == (datetime(2061, 2, 1).date(), datetime(2061, 2, 1).date())


def test_staged_rows_sum_to_the_worker_s_coarse_deltas_and_keep_decimals_exact():
    start = datetime(2061, 1, 31, 14, 20, tzinfo=UTC)  # three hours across a local midnight
    usages = [MeteredUsage("vm-1", "compute.vcpu", Decimal("7"), start, start + timedelta(hours=2, minutes=30)),
              MeteredUsage("vm-2", "compute.vcpu", Decimal("0.000000001"), start, start + timedelta(minutes=5))]
    deltas = rate_usage(usages, {}, [])
    rows = [dict(zip(STAGED, r, strict=True)) for r in hourly_delta_rows(deltas, LocalCalendar())]
    assert len(rows) == len(deltas)
    assert sum(Decimal(r["unpriced_quantity"]) for r in rows) == Decimal("7.000000001")
    for rollup in COARSE_ROLLUPS:
        worker: dict[tuple, Decimal] = defaultdict(Decimal)  # as rollups.apply_rollup_deltas groups them
        for (hour, _resource, meter, department, system, _card), delta in deltas.items():
            worker[coarse_key(rollup, hour, department, system, meter)] += delta.quantity
        staged: dict[tuple, Decimal] = defaultdict(Decimal)
        for r in rows:  # the month is derived from the staged local day, as both the worker and a rebuild do
            values = {**r, "month": r["day"].replace(day=1)}
            staged[tuple(values[c] for c in rollup.columns)] += Decimal(r["quantity"])
        assert staged == worker


def test_staged_rows_write_decimals_as_their_exact_text():
    hour = datetime(2061, 3, 1, 2, tzinfo=UTC)
    deltas = {(hour, "vm", "compute.vcpu", None, None, 0): RollupDelta(Decimal("0E-9"), Decimal("1.50"),
                                                                        Decimal("12345678901234567890.123456789"))}
    (row,) = hourly_delta_rows(deltas, LocalCalendar())
    assert row[-3:] == ("0E-9", "1.50", "12345678901234567890.123456789")
    assert [Decimal(v) for v in row[-3:]] == [Decimal(0), Decimal("1.5"), Decimal("12345678901234567890.123456789")]


def test_lifecycle_changes_re_rate_each_resource_from_its_earliest_hour():
    changes = [("vm-1", datetime(2061, 1, 15, 10, 30, tzinfo=UTC)), ("vm-2", datetime(2061, 2, 1, tzinfo=UTC)),
               ("vm-1", datetime(2061, 1, 9, 23, 59, tzinfo=UTC))]
    assert lifecycle_from_hours(changes) == {"vm-1": datetime(2061, 1, 9, 23, tzinfo=UTC),
                                             "vm-2": datetime(2061, 2, 1, tzinfo=UTC)}


def test_a_row_belongs_to_the_first_boundary_that_saw_it():
    at = datetime(2061, 2, 1, tzinfo=UTC)
    params: list = []
    expression = segment_of([Cut(at, (at,)), Cut(at + timedelta(days=1))], "received_at", params)
    assert expression == ("(CASE WHEN received_at <= $1::timestamptz AND NOT received_at = ANY($2::timestamptz[]) "
                          "THEN 0 WHEN received_at <= $3::timestamptz AND NOT received_at = ANY($4::timestamptz[]) "
                          "THEN 1 ELSE 2 END)")
    assert params == [at, [at], at + timedelta(days=1), []]
    assert segment_of([], "created_at", []) == "0"
