"""Read models over the rollups (plain SQL): ``/v1/usage``, and the reads that the reports share (department
names, usage per day, utilisation statistics, allocated capacity, a month's charges and bills). The write side
never reads from here."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Iterable

import orjson

from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.catalogue import meters
from services.common.db import get_engine, raw_connection
from services.common.periods import LOCAL_TZ, Month, is_local_midnight, local_midnight
from services.metering.domain.rating import RateCardPrices
from services.reference.rate_cards import load_rate_cards
from services.query.domain.charges import ChargeRow, charge_rows
from services.query.domain.figures import Allocation, UtilizationFigures, current_prices, time_weighted_allocations
from services.query.domain.department_totals import MonthTotals, month_totals
from services.query.domain.usage_pieces import BUCKET_KEY_FORMAT, OVER_LIMIT, encode_piece
from services.query.domain.waste import ResourceEvidence, Windows

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


def _rollup_for(query: UsageQuery) -> str:
    """The coarsest rollup that answers the query exactly (``usage_monthly`` also for windows that cut months:
    see ``month_split``)."""
    if "resource" in query.group_by or query.granularity == "hour" or not (
        is_local_midnight(query.start) and is_local_midnight(query.end)
    ):
        return "usage_hourly"
    if "system" in query.group_by:
        return "usage_daily"
    if query.granularity in ("month", "total"):
        return "usage_monthly"
    return "usage_department_daily"


def month_split(first: date, end: date) -> tuple[date, date]:
    """[first, end) of local days as: days before ``whole_from``, whole months [whole_from, whole_to), days from
    ``whole_to``. A window of whole months is all months; one inside a month has no whole month
    (``whole_from == whole_to``, every day on one side). Pure: the monthly rollup answers the middle, the daily
    one the edges, so a year's answer reads some dozen monthly rows per key instead of 365 daily ones."""
    whole_from = first if first.day == 1 else Month(first.year, first.month).next().first_day
    whole_to = end.replace(day=1)
    if whole_to <= whole_from:
        return first, first  # no whole month: [first, first) is empty, every day is after it
    return whole_from, whole_to


def _source(query: UsageQuery, table: str, args: list, filters: str) -> tuple[str, str | None]:
    """The rows the answer sums (a FROM item with columns ``t``, the keys and the sums) and the bucket
    expression over ``t``; appends the time bounds to ``args``."""
    sums = "quantity, amount, unpriced_quantity"
    keys = ", ".join(dict.fromkeys(["department_id", "meter", *(_COLUMN[g] for g in query.group_by)]))
    if table == "usage_hourly":
        args += [query.start, query.end]
        n = len(args)
        local = "(t AT TIME ZONE 'Asia/Shanghai')"
        bucket = {"hour": local, "day": f"date_trunc('day', {local})", "month": f"date_trunc('month', {local})"}
        return (f"(SELECT hour AS t, {keys}, {sums} FROM usage_hourly WHERE hour >= ${n - 1} AND hour < ${n}"
                f"{filters}) AS src", bucket.get(query.granularity))
    first, end = query.start.astimezone(LOCAL_TZ).date(), query.end.astimezone(LOCAL_TZ).date()
    bucket = {"day": "t::timestamp", "month": "date_trunc('month', t)::timestamp"}.get(query.granularity)
    if table != "usage_monthly":
        args += [first, end]
        n = len(args)
        return (f"(SELECT day AS t, {keys}, {sums} FROM {table} WHERE day >= ${n - 1} AND day < ${n}{filters})"
                " AS src", bucket)
    whole_from, whole_to = month_split(first, end)
    args += [first, whole_from, whole_to, end]
    n = len(args)
    # by department alone, the edge days need no meter: one row a department and day
    edges, edge_keys = (("usage_department_daily", keys) if "meter" in query.group_by or query.meter is not None
                        else ("usage_department_totals_daily", "department_id"))
    return (f"""(SELECT month AS t, {edge_keys}, {sums} FROM usage_monthly
                 WHERE month >= ${n - 2} AND month < ${n - 1}{filters}
                 UNION ALL
                 SELECT day AS t, {edge_keys}, {sums} FROM {edges}
                 WHERE (day >= ${n - 3} AND day < ${n - 2} OR day >= ${n - 1} AND day < ${n}){filters}) AS src""",
            bucket)


async def usage_report_json(engine: AsyncEngine, query: UsageQuery, max_rows: int) -> bytes:
    """The whole ``/v1/usage`` answer as JSON bytes (shape: schemas.api.UsageReport).

    PostgreSQL sums, rounds and serialises the rows itself: a year of daily rows leaves the database as one JSON
    text instead of thousands of Python objects, which keeps finance queries inside their latency target.
    Rounding: numeric ``round(x, 2)`` rounds half away from zero, the same as ROUND_HALF_UP on the row's exact
    sum; quantities lose trailing zeros (``trim_scale``). More than ``max_rows`` rows: TooManyRows (the database
    stops grouping at ``max_rows`` + 1, so the refusal costs no more than the largest answer allowed)."""
    sql, args = usage_report_sql(query, max_rows)
    async with raw_connection(engine) as conn:
        count, rows_json = await conn.fetchrow(sql, *args)
    if count > max_rows:
        raise TooManyRows(max_rows)
    return usage_report_body(rows_json.encode())


USAGE_REPORT_HEAD, USAGE_REPORT_TAIL = b'{"currency":"CNY","rows":', b"}"


def usage_report_body(rows_json: bytes) -> bytes:
    """The ``/v1/usage`` answer (schemas.api.UsageReport) around its rows' JSON array."""
    return USAGE_REPORT_HEAD + rows_json + USAGE_REPORT_TAIL


async def usage_piece(engine: AsyncEngine, month_query: UsageQuery, max_rows: int) -> bytes:
    """The piece (services.query.domain.usage_pieces) of a bucketed query over one whole month, or ``OVER_LIMIT``
    if the month alone has more than ``max_rows`` rows (cached like a piece, so that the month is not grouped again
    for every window of that shape before the window is answered by one statement)."""
    sql, args = usage_report_sql(month_query, max_rows, per_bucket=True)
    async with raw_connection(engine) as conn:
        buckets = await conn.fetch(sql, *args)
    if sum(count for _, count, _ in buckets) > max_rows:
        return OVER_LIMIT
    return encode_piece([tuple(bucket) for bucket in buckets])


async def department_month_totals(engine: AsyncEngine, month: Month, departments: Sequence[str] | None
                                  ) -> MonthTotals:
    """The piece (services.query.domain.department_totals) of usage by department of one local month and scope:
    the two rollups ``usage_report_sql`` sums for that month, ``usage_monthly`` and
    ``usage_department_totals_daily``."""
    scope = [] if departments is None else [list(departments)]
    async with raw_connection(engine) as conn:
        monthly = await conn.fetch(
            "SELECT department_id, quantity, amount, unpriced_quantity FROM usage_monthly WHERE month = $1"
            + (" AND department_id = ANY($2::text[])" if scope else ""), month.first_day, *scope)
        daily = await conn.fetch(
            "SELECT day, department_id, quantity, amount, unpriced_quantity FROM usage_department_totals_daily"
            " WHERE day >= $1 AND day < $2" + (" AND department_id = ANY($3::text[])" if scope else ""),
            month.first_day, month.next().first_day, *scope)
    return month_totals(month, (tuple(r) for r in monthly), (tuple(r) for r in daily))


def usage_report_sql(query: UsageQuery, max_rows: int, per_bucket: bool = False) -> tuple[str, list]:
    """The statement (and its arguments) that answers ``query``: one row, (row count, rows as JSON text); or with
    ``per_bucket`` (a bucketed query), one row per bucket in time order: (bucket key, row count, rows' JSON)."""
    catalogue = meters()
    args: list = [list(catalogue), [m.unit for m in catalogue.values()], query.start.astimezone(LOCAL_TZ).isoformat()]
    filters = ""
    if query.departments is not None:  # a scope's ids (services.common.scope)
        args.append(list(query.departments))
        filters += f" AND department_id = ANY(${len(args)}::text[])"
    if query.meter is not None:
        args.append(query.meter)
        filters += f" AND meter = ${len(args)}"
    source, bucket = _source(query, _rollup_for(query), args, filters)
    keys = [_COLUMN[g] for g in query.group_by]
    selected = ([f"{bucket} AS period"] if bucket else []) + keys
    group = ", ".join(str(i + 1) for i in range(len(selected)))
    # a total's period_start is the query's own start ($3); buckets are local times written with +08:00
    period = "coalesce(to_char(period, 'YYYY-MM-DD\"T\"HH24:MI:SS\"+08:00\"'), $3::text)" if bucket else "$3::text"
    # Each row's JSON is concatenated as text: json_build_object cost half again as much on a year of days. Texts
    # that could hold a quote go through to_json; the numbers and the period are digits and signs.
    fields = [f"""'{{"period_start":"' || {period} || '"'"""]
    fields += [f"""',"{_COLUMN[g]}":' || coalesce(to_json(agg.{_COLUMN[g]})::text, 'null')""" for g in query.group_by]
    if "meter" in query.group_by:
        fields.append("""',"unit":' || coalesce(to_json(units.unit)::text, 'null')""")
    fields += ["""',"quantity":"' || trim_scale(q)::text || '","amount":"' || round(a, 2)::text || '"'""",
               """CASE WHEN u <> 0 THEN ',"unpriced_quantity":"' || trim_scale(u)::text || '"' ELSE '' END || '}'"""]
    # code-point order whatever the database's collation: the in-process answers (department_totals) sort alike
    order = ", ".join(["period"] * bool(bucket) + [f'agg.{k} COLLATE "C"' for k in keys]) or "1"
    rows = f"string_agg({' || '.join(fields)}, ',' ORDER BY {order})"
    # a piece: one row per bucket, keyed as usage_pieces.bucket_key (day and hour buckets are whole local hours)
    select = (f"SELECT to_char(period, '{BUCKET_KEY_FORMAT}'), count(*), {rows}" if per_bucket
              else f"SELECT count(*), coalesce('[' || {rows} || ']', '[]')")
    args.append(max_rows + 1)
    sql = f"""
        WITH units AS (SELECT * FROM unnest($1::text[], $2::text[]) AS u(meter, unit)),
        agg AS (
            SELECT {", ".join(selected + ["sum(quantity) AS q", "sum(amount) AS a", "sum(unpriced_quantity) AS u"])}
            FROM {source}
            {f"GROUP BY {group}" if group else ""}
            LIMIT ${len(args)}
        )
        {select}
        FROM agg {"LEFT JOIN units ON units.meter = agg.meter" if "meter" in query.group_by else ""}
        WHERE q IS NOT NULL
        {"GROUP BY period ORDER BY period" if per_bucket else ""}
    """
    return sql, args


# --- the reads the reports share -------------------------------------------------------------------------------


def day_bounds(first: date, end: date) -> tuple[datetime, datetime]:
    """UTC-comparable instants of [local midnight of ``first``, local midnight of ``end``)."""
    return local_midnight(first), local_midnight(end)


async def department_names(conn, ids: Iterable[str | None] | None = None) -> dict[str, str]:
    if ids is None:
        rows = await conn.fetch("SELECT id, name FROM departments")
    else:
        rows = await conn.fetch("SELECT id, name FROM departments WHERE id = ANY($1::text[])",
                                [i for i in set(ids) if i is not None])
    return {r["id"]: r["name"] for r in rows}


async def daily_usage(conn, first: date, end: date, departments: Sequence[str] | None = None,
                      attributed_only: bool = False) -> list:
    """usage_daily rows summed per (department, system, meter) over local days [first, end)."""
    args: list[Any] = [first, end]
    where = "day >= $1 AND day < $2"
    if departments is not None:  # a scope's ids (services.common.scope)
        args.append(departments)
        where += f" AND department_id = ANY(${len(args)}::text[])"
    elif attributed_only:
        where += " AND department_id IS NOT NULL"
    return await conn.fetch(
        f"""
        SELECT department_id, system, meter, sum(quantity) AS quantity, sum(amount) AS amount,
               sum(unpriced_quantity) AS unpriced
        FROM usage_daily WHERE {where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        """,
        *args,
    )


# Each utilisation hour belongs to the owner holding the resource in that hour (the earlier owner if it changed
# hands within the hour).
_OWNED_UTILIZATION = """
    SELECT DISTINCT ON (u.hour, u.resource_id) u.*, ri.department_id, ri.system
    FROM utilization_hourly u
    JOIN resource_intervals ri ON ri.resource_id = u.resource_id
         AND ri.valid_from < u.hour + interval '1 hour' AND (ri.valid_to IS NULL OR ri.valid_to > u.hour)
    WHERE u.hour >= $1 AND u.hour < $2
    ORDER BY u.hour, u.resource_id, ri.valid_from
"""


async def utilization_figures(conn, start: datetime, end: datetime, by: str,
                              departments: Sequence[str] | None = None) -> dict[tuple, UtilizationFigures]:
    """Utilisation over [start, end) per (department_id, system) (``by="system"``) or per
    (department_id, resource_id) (``by="resource"``)."""
    keys = "department_id, system" if by == "system" else "department_id, resource_id"
    args: list[Any] = [start, end]
    scope = ""
    if departments is not None:
        args.append(departments)
        scope = f"WHERE department_id = ANY(${len(args)}::text[])"
    totals = await conn.fetch(
        f"""
        WITH owned AS ({_OWNED_UTILIZATION})
        SELECT {keys}, sum(observed_ms) AS ms, sum(cpu_sum) AS cs, sum(memory_sum) AS mems,
               max(cpu_max) AS cm, max(memory_max) AS mm
        FROM owned {scope} GROUP BY {keys}
        """,
        *args,
    )
    histograms = await conn.fetch(
        f"""
        WITH owned AS ({_OWNED_UTILIZATION})
        SELECT {keys}, h.i, sum(h.c) AS c, sum(h.m) AS m
        FROM owned, unnest(owned.cpu_hist, owned.memory_hist) WITH ORDINALITY AS h(c, m, i) {scope}
        GROUP BY {keys}, h.i
        """,
        *args,
    )
    figures: dict[tuple, UtilizationFigures] = {}
    for r in totals:
        figures[(r[0], r[1])] = UtilizationFigures(int(r["ms"]), r["cs"], r["mems"], r["cm"], r["mm"])
    for r in histograms:
        target = figures[(r[0], r[1])]
        target.cpu_hist[r["i"] - 1] = int(r["c"])
        target.memory_hist[r["i"] - 1] = int(r["m"])
    return figures


async def allocations(conn, start: datetime, end: datetime,
                      departments: Sequence[str] | None = None) -> dict[tuple, Allocation]:
    """Per (department_id, system): resources held at any time in [start, end) and the time-weighted average
    allocated capacity (Σ spec value × hours held in the period ÷ hours in the period)."""
    args: list[Any] = [start, end]
    where = "valid_from < $2 AND (valid_to IS NULL OR valid_to > $1)"
    if departments is not None:
        args.append(departments)
        where += f" AND department_id = ANY(${len(args)}::text[])"
    rows = await conn.fetch(
        f"SELECT resource_id, valid_from, valid_to, department_id, system, spec FROM resource_intervals WHERE {where}",
        *args,
    )
    return time_weighted_allocations(rows, start, end)


async def month_charges(conn, month: str, departments: Sequence[str] | None = None,
                        cards: list[RateCardPrices] | None = None,
                        only_meters: list[str] | None = None) -> list[ChargeRow]:
    """A month's charges as the bill computes them (see ``domain.charges``)."""
    start, end = Month.parse(month).bounds
    cards = cards if cards is not None else await load_rate_cards(conn)
    by_id = {c.id: c for c in cards}
    args: list = [start, end]
    scope = ""
    if departments is not None:  # a scope's ids (services.common.scope)
        args.append(departments)
        scope = f" AND department_id = ANY(${len(args)}::text[])"
    if only_meters is not None:
        args.append(only_meters)
        scope += f" AND meter = ANY(${len(args)}::text[])"
    rows = await conn.fetch(
        f"""
        SELECT department_id, system, resource_id, meter, rate_card_id,
               (hour AT TIME ZONE 'Asia/Shanghai')::date AS day, min(hour) AS first_hour,
               sum(quantity) AS quantity, sum(amount) AS amount
        FROM usage_hourly
        WHERE hour >= $1 AND hour < $2 AND department_id IS NOT NULL{scope}
        GROUP BY department_id, system, resource_id, meter, rate_card_id, day
        ORDER BY department_id, meter, day, first_hour, resource_id, system, rate_card_id
        """,
        *args,
    )
    return await asyncio.to_thread(charge_rows, rows, by_id)  # a month can be many rows: off the event loop



async def resource_kinds(conn, resource_ids: Iterable[str]) -> dict[str, str]:
    """Each resource's kind as its newest lifecycle interval states it."""
    return {r["resource_id"]: r["kind"] for r in await conn.fetch(
        """
        SELECT DISTINCT ON (resource_id) resource_id, kind FROM resource_intervals
        WHERE resource_id = ANY($1::text[]) ORDER BY resource_id, valid_from DESC
        """,
        list(resource_ids),
    )}


async def bill_documents(engine, month: str, departments: Sequence[str] | None) -> dict[str, dict] | None:
    """The month's bills as issued (final) or as they stand (draft), by department, from the billing side;
    None where the billing side is not installed."""
    try:
        from services.billing.domain.render import bill_document
        from services.bill_reads.issued import FinalBill, bill_summaries, read_bill
    except ImportError:
        return None
    now = datetime.now(UTC)
    documents = {}
    for summary in await bill_summaries(engine, month, departments, now):
        found = await read_bill(engine, summary["bill_id"], now)
        if found is not None:
            documents[summary["department_id"]] = (orjson.loads(found.document) if isinstance(found, FinalBill)
                                                   else bill_document(found))
    return documents


@dataclass(frozen=True)
class WasteReads:
    prices: dict[str, Decimal]  # in force at the windows' end
    evidence: dict[str, ResourceEvidence]  # per resource held at the end (of ``departments`` if given)
    names: dict[str, str]  # department names


async def waste_reads(windows: Windows, departments: Sequence[str] | None) -> WasteReads:
    """The evidence of the waste rules: ownership, usage and utilisation of the resources held at the end."""
    end = windows.end
    async with raw_connection(get_engine()) as conn:
        cards = await load_rate_cards(conn)
        interval_rows = await conn.fetch(
            """
            SELECT resource_id, valid_from, valid_to, department_id, system, kind, spec FROM resource_intervals
            WHERE valid_from < $2 AND (valid_to IS NULL OR valid_to > $1)
              AND resource_id IN (SELECT resource_id FROM resource_intervals
                                  WHERE valid_from < $2 AND (valid_to IS NULL OR valid_to >= $2)
                                    AND ($3::text[] IS NULL OR department_id = ANY($3::text[])))
            """,
            windows.earliest, end, departments,
        )
        ids = sorted({r["resource_id"] for r in interval_rows})
        usage = await conn.fetch(
            """
            SELECT resource_id, meter, sum(quantity) AS quantity, sum(amount) AS amount
            FROM usage_hourly WHERE resource_id = ANY($1::text[]) AND hour >= $2 AND hour < $3
            GROUP BY 1, 2
            """,
            ids, windows.usage_start, end,
        ) if ids else []
        week = {k[1]: v for k, v in
                (await utilization_figures(conn, windows.idle, end, "resource", departments)).items()}
        fortnight = {k[1]: v for k, v in
                     (await utilization_figures(conn, windows.oversized, end, "resource", departments)).items()}
        names = await department_names(conn, {r["department_id"] for r in interval_rows})
    intervals: dict[str, list] = defaultdict(list)
    for r in interval_rows:
        intervals[r["resource_id"]].append(r)
    quantities: dict[str, dict[str, Decimal]] = defaultdict(dict)
    billed: dict[str, Decimal] = defaultdict(Decimal)
    for r in usage:
        per_meter = quantities[r["resource_id"]]
        per_meter[r["meter"]] = per_meter.get(r["meter"], Decimal(0)) + r["quantity"]
        billed[r["resource_id"]] += r["amount"]
    evidence = {i: ResourceEvidence(intervals[i], quantities.get(i, {}), billed.get(i, Decimal(0)), week.get(i),
                                    fortnight.get(i)) for i in ids}
    return WasteReads(current_prices(cards, end), evidence, names)


@dataclass(frozen=True)
class PlatformReads:
    usage: list  # usage_daily per (department_id, meter) in the month
    usage_before: list  # the same for the month before
    counts: Any  # departments, resources and unattributed resources with usage in the month
    dead_letters: list  # per reason


async def month_usage(conn, month: Month) -> list:
    start, end = month.bounds
    return await conn.fetch(
        """
        SELECT department_id, meter, sum(quantity) AS quantity, sum(amount) AS amount
        FROM usage_daily WHERE day >= $1 AND day < $2 GROUP BY 1, 2
        """,
        start.date(), end.date(),
    )


async def platform_reads(conn, month: Month) -> PlatformReads:
    """What the platform report of ``month`` counts. A dead letter counts in the month of its event's ``time``
    when the event can be read, otherwise in the month it was received."""
    start, end = month.bounds
    now_rows, before_rows = await month_usage(conn, month), await month_usage(conn, month.previous())
    counts = await conn.fetchrow(
        """
        SELECT count(DISTINCT department_id) AS departments, count(DISTINCT resource_id) AS resources,
               count(DISTINCT resource_id) FILTER (WHERE department_id IS NULL) AS unattributed
        FROM usage_hourly WHERE hour >= $1 AND hour < $2
        """,
        start, end,
    )
    letters = await conn.fetch(
        """
        SELECT reason, count(*) AS n FROM dead_letters
        WHERE coalesce(govmeter_event_time(payload), created_at) >= $1
          AND coalesce(govmeter_event_time(payload), created_at) < $2
        GROUP BY reason ORDER BY reason
        """,
        start, end,
    )
    return PlatformReads(now_rows, before_rows, counts, letters)


# A stored spend warning with its department's name (the columns ``domain.warnings.warning_out`` reads).
WARNING_SELECT = """
    SELECT w.id, w.day, w.department_id, w.meter, w.spend, w.median, w.mad, w.mad_used, w.robust_z, w.threshold,
           w.baseline, w.created_at, coalesce(d.name, w.department_id) AS department_name
    FROM spend_warnings w LEFT JOIN departments d ON d.id = w.department_id
"""


async def late_applications(conn, start: datetime, end: datetime, now: datetime | None = None) -> dict[str, int]:
    """Resource applications (Art. 8–10) for the platform report, an input to Art. 20's assessment: approval and fulfilment clocks that ran out in [start, end) before their step was done, or that are still
    running past it at ``now`` (a rejected or withdrawn application stops its clock)."""
    row = await conn.fetchrow(
        """
        WITH clocks AS (
            SELECT approval_due_at, fulfilment_due_at,
                   coalesce(decided_at, CASE WHEN state IN ('submitted', 'accepted') THEN $3::timestamptz END)
                       AS approval_stop,
                   coalesce(fulfilled_at, CASE WHEN state = 'approved' THEN $3::timestamptz END) AS fulfilment_stop
            FROM applications
            WHERE approval_due_at >= $1 AND approval_due_at < $2 OR fulfilment_due_at >= $1 AND fulfilment_due_at < $2
        )
        SELECT count(*) FILTER (WHERE approval_due_at >= $1 AND approval_due_at < $2
                                  AND approval_due_at < approval_stop) AS approvals,
               count(*) FILTER (WHERE fulfilment_due_at >= $1 AND fulfilment_due_at < $2
                                  AND fulfilment_due_at < fulfilment_stop) AS fulfilments
        FROM clocks
        """,
        start, end, now or datetime.now(UTC),
    )
    return {"late_approvals": row["approvals"], "late_fulfilments": row["fulfilments"]}
