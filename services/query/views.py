"""Read models over the rollups (plain SQL). The write side never reads from here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.catalogue import unit_of
from services.common.db import raw_connection
from services.common.money import yuan_text
from services.common.periods import LOCAL_TZ

GROUPS = ("department", "meter", "resource", "system")
GRANULARITIES = ("hour", "day", "month", "total")
_COLUMN = {"department": "department_id", "meter": "meter", "resource": "resource_id", "system": "system"}


@dataclass(frozen=True)
class UsageQuery:
    start: datetime
    end: datetime
    group_by: tuple[str, ...]
    granularity: str
    department: str | None  # filter; for a department token always its own
    meter: str | None


def quantity_text(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _is_local_midnight(t: datetime) -> bool:
    local = t.astimezone(LOCAL_TZ)
    return (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)


def _rollup_for(query: UsageQuery) -> str:
    """The coarsest rollup that answers the query exactly."""
    if "resource" in query.group_by or query.granularity == "hour" or not (
        _is_local_midnight(query.start) and _is_local_midnight(query.end)
    ):
        return "usage_hourly"
    month_bounds = query.start.astimezone(LOCAL_TZ).day == 1 and query.end.astimezone(LOCAL_TZ).day == 1
    if month_bounds and query.granularity in ("month", "total"):
        return "usage_monthly"
    if "system" in query.group_by:
        return "usage_daily"
    return "usage_department_daily"


async def usage_rows(engine: AsyncEngine, query: UsageQuery) -> list[dict]:
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
    args: list = [start_arg, end_arg]
    filters = [time_filter]
    if query.department is not None:
        args.append(query.department)
        filters.append(f"department_id = ${len(args)}")
    if query.meter is not None:
        args.append(query.meter)
        filters.append(f"meter = ${len(args)}")
    keys = [_COLUMN[g] for g in query.group_by]
    select = ([f"{bucket} AS period"] if bucket else []) + keys
    group = ", ".join(str(i + 1) for i in range(len(select)))
    sql = (
        f"SELECT {', '.join(select + ['sum(quantity) AS quantity', 'sum(amount) AS amount', 'sum(unpriced_quantity) AS unpriced'])} "
        f"FROM {table} WHERE {' AND '.join(filters)}"
        + (f" GROUP BY {group} ORDER BY {group}" if group else "")
    )
    async with raw_connection(engine) as conn:
        records = await conn.fetch(sql, *args)
    rows = []
    for r in records:
        if r["quantity"] is None:  # an aggregate over no rows
            continue
        period = r["period"].replace(tzinfo=LOCAL_TZ).isoformat() if bucket else query.start.astimezone(
            LOCAL_TZ).isoformat()
        row: dict = {"period_start": period}
        for group_name in query.group_by:
            row[f"{group_name}_id" if group_name in ("department", "resource") else group_name] = r[_COLUMN[group_name]]
        if "meter" in query.group_by:
            row["unit"] = unit_of(r["meter"])
        row["quantity"] = quantity_text(r["quantity"])
        row["amount"] = yuan_text(r["amount"])
        if r["unpriced"]:
            row["unpriced_quantity"] = quantity_text(r["unpriced"])
        rows.append(row)
    return rows
