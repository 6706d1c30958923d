"""The usage rollups: hourly deltas added to usage_hourly and, summed by PostgreSQL, to every coarser rollup."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.periods import LocalCalendar
from services.metering.domain.rating import RollupDelta, RollupKey
from services.projection.staging import hourly_delta_rows, stage


@dataclass(frozen=True)
class CoarseRollup:
    """A rollup coarser than usage_hourly, derived from hourly deltas; finance queries read these."""

    table: str
    columns: tuple[str, ...]  # its key


COARSE_ROLLUPS = (
    # per local day with information system: reports per department and system
    CoarseRollup("usage_daily", ("day", "department_id", "system", "meter")),
    # per local day without system: a department's daily spend by meter is a plain index range
    CoarseRollup("usage_department_daily", ("day", "department_id", "meter")),
    # per local month: a year of spend across all departments is a few thousand rows
    CoarseRollup("usage_monthly", ("month", "department_id", "meter")),
    # per local day and department, all meters: the edge days of a window by department (one row, not twelve)
    CoarseRollup("usage_department_totals_daily", ("day", "department_id")),
)

# Coarse key columns from a row of local days (``days`` below): days and months are Asia/Shanghai's.
LOCAL_MONTH_OF_DAY = "date_trunc('month', day)::date"  # a local day's month, as its first day
_DERIVED = {"day": "day", "month": LOCAL_MONTH_OF_DAY, "department_id": "department_id", "system": "system",
            "meter": "meter"}
_LOCAL_DAY = "(hour AT TIME ZONE 'Asia/Shanghai')::date"
HOURLY_KEY = ("resource_id", "hour", "meter", "department_id", "system", "rate_card_id")  # its unique index's order
SUMS = ("quantity", "amount", "unpriced_quantity")
_HOURLY_KEY = ", ".join(HOURLY_KEY)
_HOURLY_DELTAS = """d AS (
    DELETE FROM hourly_deltas RETURNING hour, resource_id, meter, department_id, system, rate_card_id,
        quantity::numeric AS quantity, amount::numeric AS amount, unpriced_quantity::numeric AS unpriced_quantity,
        day)"""
_REMOVED = """r AS (SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::numeric[],
                                      $6::numeric[], $7::numeric[])
                   AS r(hour, meter, department_id, system, quantity, amount, unpriced_quantity))"""


def _added(table: str) -> str:
    return ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in SUMS)


# Every (department, local month) whose usage_daily rows this statement writes gets its version bumped, last and
# in key order like the rollups: an unchanged version proves unchanged daily rows (bill_reads.usage_versions).
_VERSIONS = """v AS (
    INSERT INTO usage_versions (department_id, period, version)
    SELECT DISTINCT department_id, to_char(day, 'YYYY-MM'), 1 FROM days WHERE department_id IS NOT NULL
    ORDER BY 1, 2
    ON CONFLICT (department_id, period) DO UPDATE SET version = usage_versions.version + 1)"""


def _rollup_statement(with_removed: bool) -> str:
    """One statement: the hourly deltas into usage_hourly, and summed by PostgreSQL into every coarse rollup.
    The batch is summed per local day once (``days``); each coarse rollup sums those few rows further. Each
    upsert runs in its key order, the same in every transaction, so concurrent batches cannot deadlock."""
    ctes = [_HOURLY_DELTAS, f"""h AS (
        INSERT INTO usage_hourly (hour, resource_id, meter, department_id, system, rate_card_id, {", ".join(SUMS)})
        SELECT hour, resource_id, meter, department_id, system, rate_card_id, {", ".join(SUMS)}
        FROM d ORDER BY {_HOURLY_KEY}
        ON CONFLICT ({_HOURLY_KEY}) DO UPDATE SET {_added("usage_hourly")})"""]
    source = "d"
    if with_removed:  # rows a rebuild took out of usage_hourly leave the coarse rollups too
        ctes += [_REMOVED, f"""c AS (
            SELECT day, meter, department_id, system, quantity, amount, unpriced_quantity FROM d
            UNION ALL SELECT {_LOCAL_DAY}, meter, department_id, system, -quantity, -amount, -unpriced_quantity
            FROM r)"""]
        source = "c"
    ctes.append(f"""days AS (
        SELECT day, department_id, system, meter, {", ".join(f"sum({c}) AS {c}" for c in SUMS)}
        FROM {source} GROUP BY 1, 2, 3, 4)""")
    for i, rollup in enumerate(COARSE_ROLLUPS):
        names = ", ".join(rollup.columns)
        positions = ", ".join(str(k + 1) for k in range(len(rollup.columns)))
        ctes.append(f"""c{i} AS (
            INSERT INTO {rollup.table} ({names}, {", ".join(SUMS)})
            SELECT {", ".join(_DERIVED[c] for c in rollup.columns)}, {", ".join(f"sum({c})" for c in SUMS)}
            FROM days GROUP BY {positions} ORDER BY {positions}
            ON CONFLICT ({names}) DO UPDATE SET {_added(rollup.table)})""")
    ctes.append(_VERSIONS)
    return "WITH " + ",\n".join(ctes) + "\nSELECT 1"


_ROLLUP_SQL = {False: _rollup_statement(False), True: _rollup_statement(True)}


def _delete_empty_statement(rollup: CoarseRollup) -> str:
    names = ", ".join(rollup.columns)
    match = " AND ".join(f"t.{c} IS NOT DISTINCT FROM k.{c}" for c in rollup.columns)
    return f"""
        DELETE FROM {rollup.table} t
        USING (SELECT DISTINCT {", ".join(f"{_DERIVED[c]} AS {c}" for c in rollup.columns)}
               FROM (SELECT {_LOCAL_DAY} AS day, meter, department_id, system
                     FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[])
                          AS r(hour, meter, department_id, system)) AS days) AS k({names})
        WHERE {match} AND t.quantity = 0 AND t.amount = 0 AND t.unpriced_quantity = 0"""


async def apply_rollup_deltas(conn, deltas: dict[RollupKey, RollupDelta], removed: list | None = None) -> None:
    """Add hourly deltas to usage_hourly and to every coarser rollup. ``removed``: usage_hourly rows a rebuild
    has just deleted, taken back out of the coarser rollups (whose rows that become empty are deleted)."""
    if not deltas and not removed:
        return
    await stage(conn, "hourly_deltas", hourly_delta_rows(deltas, LocalCalendar()))
    if not removed:
        await conn.execute(_ROLLUP_SQL[False])
        return
    taken = [[r[c] for r in removed] for c in ("hour", "meter", "department_id", "system", *SUMS)]
    await conn.execute(_ROLLUP_SQL[True], *taken)
    for rollup in COARSE_ROLLUPS:  # a rebuild may have emptied a row: remove it rather than show zeros
        await conn.execute(_delete_empty_statement(rollup), *taken[:4])
