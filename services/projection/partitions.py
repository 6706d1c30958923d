"""Monthly partitions of usage_hourly (migration 0016, docs/partitioning.md): their names and bounds (pure), and
their upkeep (SQL helpers on the caller's asyncpg connection).

A partition a billing month: ``usage_hourly_YYYY_MM`` holds the hours of that local (Asia/Shanghai) month, from
local midnight of the 1st to local midnight of the next 1st; ``usage_hourly_default`` holds any hour no month
partition covers yet, so an insert never fails for want of a partition. Creating a partition is the database
function ``govmeter_usage_hourly_month`` (the table's owner's, callable by the services' role), which moves the
month's rows out of the default partition in the same transaction."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from services.common.db import raw_connection
from services.common.periods import Month

log = logging.getLogger(__name__)

PARENT = "usage_hourly"
DEFAULT_PARTITION = f"{PARENT}_default"
ARCHIVE_SCHEMA = "archive"  # where a detached month's table goes: out of the way of the live schema
_PARTITION_NAME = re.compile(rf"^{PARENT}_(?:[0-9]{{4}}_(?:0[1-9]|1[0-2])|default)$")
# The worker and the billing API keep these months' partitions made, relative to the current month: last month
# (late usage), this month and the next two (so a month's first insert never waits for one).
UPKEEP_MONTHS = (-1, 2)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def partition_name(month: Month) -> str:
    return f"{PARENT}_{month.year:04d}_{month.month:02d}"


def is_partition_name(name: str) -> bool:
    """Whether a table name is one of usage_hourly's partitions (a month's or the default)."""
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
            if await conn.fetchval("SELECT govmeter_usage_hourly_month($1::date)", month.first_day):
                created.append(partition_name(month))
    return created


async def keep_partitions(engine, now: datetime) -> list[str]:
    """The services' upkeep: the partitions of last month to two months ahead exist (``UPKEEP_MONTHS``)."""
    async with raw_connection(engine) as conn:
        created = await ensure_month_partitions(conn, *upkeep_range(now))
    if created:
        log.info("usage_hourly partitions created: %s", ", ".join(created))
    return created


async def month_partitions(conn) -> list[tuple[str, int]]:
    """usage_hourly's attached partitions (the default last) and roughly how many rows each holds."""
    rows = await conn.fetch(
        """
        SELECT c.relname AS name, greatest(c.reltuples, 0)::bigint AS rows
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'public.usage_hourly'::regclass
        ORDER BY c.relname = $1, c.relname
        """,
        DEFAULT_PARTITION,
    )
    return [(r["name"], r["rows"]) for r in rows]


async def detach_month(conn, month: Month, tablespace: str | None = None) -> str:
    """Detach a closed month's partition: it becomes the standalone table ``archive.usage_hourly_YYYY_MM``
    (optionally moved to ``tablespace``, cheaper storage), which no query of the services reads any more. Needs
    the table's owner (the migration role). Returns the archived table's name."""
    if tablespace is not None and not _IDENTIFIER.match(tablespace):
        raise ValueError(f"tablespace: {tablespace!r} is not a plain identifier")
    name = partition_name(month)
    attached = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'public.usage_hourly'::regclass "
        "AND inhrelid = to_regclass($1))", f"public.{name}")
    if not attached:
        raise LookupError(f"usage_hourly has no partition for {month}")
    async with conn.transaction():
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ARCHIVE_SCHEMA}")
        await conn.execute(f"ALTER TABLE public.{PARENT} DETACH PARTITION public.{name}")
        await conn.execute(f"ALTER TABLE public.{name} SET SCHEMA {ARCHIVE_SCHEMA}")
        if tablespace:
            await conn.execute(f'ALTER TABLE {ARCHIVE_SCHEMA}.{name} SET TABLESPACE "{tablespace}"')
    return f"{ARCHIVE_SCHEMA}.{name}"
