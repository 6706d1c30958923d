"""Read models over the rollups (plain SQL). The write side never reads from here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.catalogue import meters
from services.common.db import raw_connection
from services.common.periods import LOCAL_TZ

GROUPS = ("department", "meter", "resource", "system")
GRANULARITIES = ("hour", "day", "month", "total")
_COLUMN = {"department": "department_id", "meter": "meter", "resource": "resource_id", "system": "system"}


class TooManyRows(Exception):
    """The answer would have more rows than the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer has more than {limit:,} rows (GOVMETER_USAGE_MAX_ROWS); narrow the query: a "
                         "shorter from–to, a coarser granularity, fewer group_by keys, or a department or meter")
        self.limit = limit


@dataclass(frozen=True)
class UsageQuery:
    start: datetime
    end: datetime
    group_by: tuple[str, ...]
    granularity: str
    departments: tuple[str, ...] | None  # a scope's ids (services.common.scope); None: every department
    meter: str | None


def _is_local_midnight(t: datetime) -> bool:
    local = t.astimezone(LOCAL_TZ)
    return (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)


def _rollup_for(query: UsageQuery) -> str:
    """The coarsest rollup that answers the query exactly."""
    if "resource" in query.group_by or query.granularity == "hour" or not (
        _is_local_midnight(query.start) and _is_local_midnight(query.end)
    ):
        return "usage_hourly"
    if "system" in query.group_by:
        return "usage_daily"
    month_bounds = query.start.astimezone(LOCAL_TZ).day == 1 and query.end.astimezone(LOCAL_TZ).day == 1
    if month_bounds and query.granularity in ("month", "total"):
        return "usage_monthly"
    return "usage_department_daily"


async def usage_report_json(engine: AsyncEngine, query: UsageQuery, max_rows: int) -> bytes:
    """The whole ``/v1/usage`` answer as JSON bytes (shape: schemas.api.UsageReport).

    PostgreSQL sums, rounds and serialises the rows itself: a year of daily rows leaves the database as one JSON
    text instead of thousands of Python objects, which keeps finance queries inside their latency target.
    Rounding: numeric ``round(x, 2)`` rounds half away from zero, the same as ROUND_HALF_UP on the row's exact
    sum; quantities lose trailing zeros (``trim_scale``). More than ``max_rows`` rows: TooManyRows (the database
    stops grouping at ``max_rows`` + 1, so the refusal costs no more than the largest answer allowed)."""
    table = _rollup_for(query)
    if table == "usage_hourly":
        time_filter = "hour >= $1 AND hour < $2"
        start_arg, end_arg = query.start, query.end
        local = "(hour AT TIME ZONE 'Asia/Shanghai')"
        bucket = {"hour": local, "day": f"date_trunc('day', {local})", "month": f"date_trunc('month', {local})"}.get(
            query.granularity
        )
    else:
        column = "month" if table == "usage_monthly" else "day"
        time_filter = f"{column} >= $1::date AND {column} < $2::date"
        start_arg, end_arg = query.start.astimezone(LOCAL_TZ).date(), query.end.astimezone(LOCAL_TZ).date()
        bucket = {"day": "day::timestamp", "month": f"date_trunc('month', {column})::timestamp"}.get(
            query.granularity
        )
    catalogue = meters()
    args: list = [start_arg, end_arg, list(catalogue), [m.unit for m in catalogue.values()],
                  query.start.astimezone(LOCAL_TZ).isoformat()]
    filters = [time_filter]
    if query.departments is not None:  # a scope's ids (services.common.scope)
        args.append(list(query.departments))
        filters.append(f"department_id = ANY(${len(args)}::text[])")
    if query.meter is not None:
        args.append(query.meter)
        filters.append(f"meter = ${len(args)}")
    keys = [_COLUMN[g] for g in query.group_by]
    selected = ([f"{bucket} AS period"] if bucket else []) + keys
    group = ", ".join(str(i + 1) for i in range(len(selected)))
    # a total's period_start is the query's own start ($5); buckets are local times written with +08:00
    period = "coalesce(to_char(period, 'YYYY-MM-DD\"T\"HH24:MI:SS\"+08:00\"'), $5::text)" if bucket else "$5::text"
    fields = [f"'period_start', {period}"] + [f"'{_COLUMN[g]}', {_COLUMN[g]}" for g in query.group_by]
    if "meter" in query.group_by:
        fields.append("'unit', (SELECT unit FROM units WHERE units.meter = agg.meter)")
    fields += ["'quantity', trim_scale(q)::text", "'amount', round(a, 2)::text"]
    order = ", ".join(["period"] * bool(bucket) + keys) or "1"
    args.append(max_rows + 1)
    sql = f"""
        WITH units AS (SELECT * FROM unnest($3::text[], $4::text[]) AS u(meter, unit)),
        agg AS (
            SELECT {", ".join(selected + ["sum(quantity) AS q", "sum(amount) AS a", "sum(unpriced_quantity) AS u"])}
            FROM {table} WHERE {" AND ".join(filters)}
            {f"GROUP BY {group}" if group else ""}
            LIMIT ${len(args)}
        )
        SELECT count(*), coalesce(json_agg(
            CASE WHEN u <> 0 THEN json_build_object({", ".join(fields)}, 'unpriced_quantity', trim_scale(u)::text)
                 ELSE json_build_object({", ".join(fields)}) END
            ORDER BY {order}), '[]')::text
        FROM agg WHERE q IS NOT NULL
    """
    async with raw_connection(engine) as conn:
        count, rows_json = await conn.fetchrow(sql, *args)
    if count > max_rows:
        raise TooManyRows(max_rows)
    return b'{"currency":"CNY","rows":' + rows_json.encode() + b"}"
