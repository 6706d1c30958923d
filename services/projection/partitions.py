"""Monthly partitions of usage_hourly (migration 0016) and of the event store (migration 0021), docs/partitioning.md:
their names and bounds (pure), and their upkeep (SQL helpers on the caller's asyncpg connection).

A partition a billing month: ``usage_hourly_YYYY_MM`` holds the hours of that local (Asia/Shanghai) month, from
local midnight of the 1st to local midnight of the next 1st; ``events_YYYY_MM`` the usage and utilisation events
received in it (lifecycle events stay in ``events_lifecycle``, never detached). ``…_default`` holds any row no
month partition covers yet, so an insert never fails for want of a partition. Creating a partition is a database
function (``govmeter_usage_hourly_month``, ``govmeter_events_month``: the table's owner's, callable by the
services' role), which moves the month's rows out of the default partition in the same transaction."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from services.common.db import raw_connection
from services.common.periods import Month

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonthlyTable:
    """A table partitioned by local month: its parent, the prefix of its partitions and the function making one."""

    parent: str
    prefix: str
    make: str  # the owner's function: make(month date) → whether it made the partition

    def partition(self, month: Month) -> str:
        return f"{self.prefix}_{month.year:04d}_{month.month:02d}"

    @property
    def default(self) -> str:
        return f"{self.prefix}_default"


USAGE_HOURLY = MonthlyTable("usage_hourly", "usage_hourly", "govmeter_usage_hourly_month")
EVENTS = MonthlyTable("events_metered", "events", "govmeter_events_month")  # by month of arrival
MONTHLY_TABLES = (USAGE_HOURLY, EVENTS)
ARCHIVE_SCHEMA = "archive"  # where a detached month's table goes: out of the way of the live schema
_MONTH = "[0-9]{4}_(?:0[1-9]|1[0-2])"
# every table that is a partition: a month's or a default, and the event store's two kinds of event
_PARTITION_NAME = re.compile(rf"^(?:(?:usage_hourly|events)_(?:{_MONTH}|default)|events_lifecycle|events_metered)$")
ARCHIVED_EVENTS = re.compile(rf"^events_{_MONTH}$")
# The worker and the billing API keep these months' partitions made, relative to the current month: last month
# (late usage), this month and the next two (so a month's first insert never waits for one).
UPKEEP_MONTHS = (-1, 2)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def partition_name(month: Month) -> str:
    return USAGE_HOURLY.partition(month)


def is_partition_name(name: str) -> bool:
    """Whether a table name is one of the partitions (a month's or a default, of usage_hourly or events)."""
    return bool(_PARTITION_NAME.match(name))


def partition_bounds(month: Month) -> tuple[datetime, datetime]:
    """[from, to) of a month's partition: local midnight of its 1st and of the next month's."""
    return month.start, month.end


def upkeep_range(now: datetime) -> tuple[Month, Month]:
    """The months whose partitions the services keep made at ``now``."""
    current = Month.of(now)
    return current.shifted(UPKEEP_MONTHS[0]), current.shifted(UPKEEP_MONTHS[1])


async def ensure_month_partitions(conn, first: Month, last: Month, lock_timeout: str = "5s") -> list[str]:
    """Create the missing month partitions from ``first`` to ``last``; returns the names of those created. Each
    month is its own short transaction (a savepoint if the caller holds one): attaching locks the default
    partition while it checks that no row of the month is left there, so a lock that cannot be had soon fails the
    upkeep (retried at its next round) rather than queue the worker's inserts behind it."""
    created = []
    for month in first.through(last):
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = '{lock_timeout}'")
            for table in MONTHLY_TABLES:
                if await conn.fetchval(f"SELECT {table.make}($1::date)", month.first_day):
                    created.append(table.partition(month))
    return created


async def keep_partitions(engine, now: datetime) -> list[str]:
    """The services' upkeep: the partitions of last month to two months ahead exist (``UPKEEP_MONTHS``)."""
    async with raw_connection(engine) as conn:
        created = await ensure_month_partitions(conn, *upkeep_range(now))
    if created:
        log.info("month partitions created: %s", ", ".join(created))
    return created


async def month_partitions(conn, table: MonthlyTable = USAGE_HOURLY) -> list[tuple[str, int]]:
    """A table's attached month partitions (the default last) and roughly how many rows each holds."""
    rows = await conn.fetch(
        """
        SELECT c.relname AS name, greatest(c.reltuples, 0)::bigint AS rows
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = to_regclass($2)
        ORDER BY c.relname = $1, c.relname
        """,
        table.default, f"public.{table.parent}",
    )
    return [(r["name"], r["rows"]) for r in rows]


async def detach_month(conn, month: Month, tablespace: str | None = None, table: MonthlyTable = USAGE_HOURLY) -> str:
    """Detach a closed month's partition: it becomes the standalone table ``archive.<partition>`` (optionally
    moved to ``tablespace``, cheaper storage). No query of the services reads it any more; replay still reads an
    archived month of the event store (``stored_event_tables``). Needs the table's owner (the migration role).
    Returns the archived table's name."""
    if tablespace is not None and not _IDENTIFIER.match(tablespace):
        raise ValueError(f"tablespace: {tablespace!r} is not a plain identifier")
    name = table.partition(month)
    attached = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = to_regclass($2) "
        "AND inhrelid = to_regclass($1))", f"public.{name}", f"public.{table.parent}")
    if not attached:
        raise LookupError(f"{table.parent} has no partition for {month}")
    async with conn.transaction():
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ARCHIVE_SCHEMA}")
        await conn.execute(f"ALTER TABLE public.{table.parent} DETACH PARTITION public.{name}")
        await conn.execute(f"ALTER TABLE public.{name} SET SCHEMA {ARCHIVE_SCHEMA}")
        if tablespace:
            await conn.execute(f'ALTER TABLE {ARCHIVE_SCHEMA}.{name} SET TABLESPACE "{tablespace}"')
        if table is EVENTS:
            await grant_archived_events(conn, f"{ARCHIVE_SCHEMA}.{name}")
    return f"{ARCHIVE_SCHEMA}.{name}"


async def grant_archived_events(conn, archived: str) -> None:
    """An archived month of the event store is still the source of truth: whoever may read the event store
    (replay, as the services' role) may read it. As the owner."""
    for reader in await conn.fetch(
            "SELECT a.grantee::regrole::text AS role FROM pg_class c, aclexplode(c.relacl) a "
            "WHERE c.oid = 'public.events'::regclass AND a.privilege_type = 'SELECT' "
            "AND a.grantee <> c.relowner AND a.grantee <> 0"):
        await conn.execute(f'GRANT USAGE ON SCHEMA {ARCHIVE_SCHEMA} TO "{reader["role"]}"')
        await conn.execute(f'GRANT SELECT ON {archived} TO "{reader["role"]}"')


async def stored_event_tables(conn) -> list[str]:
    """Where the event store's rows are: ``public.events`` and each month detached into the archive schema, whose
    events still count for replay (the source of truth is never dropped, only moved)."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY c.relname", ARCHIVE_SCHEMA)
    return ["public.events"] + [f"{ARCHIVE_SCHEMA}.{r['relname']}" for r in rows
                                if ARCHIVED_EVENTS.match(r["relname"])]
