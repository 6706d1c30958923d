"""usage_hourly partitioned by local month (migration 0014): rows land in their month's partition or the default,
a month's partition takes its rows out of the default, upserts add within a partition, detaching leaves the other
months, and the migration keeps the rows, the change notifications and the grants both ways."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
from alembic import command

from services.common.db import asyncpg_dsn, drop_database
from services.common.migrate import alembic_config, migrate
from services.common.periods import Month
from services.metering.domain.rating import RollupDelta
from services.projection.partitions import (
    EVENTS,
    detach_month,
    ensure_month_partitions,
    keep_partitions,
    month_partitions,
    partition_name,
)
from services.projection.rollups import COARSE_ROLLUPS, apply_rollup_deltas
from tests.integration.support import scratch_database_url

pytestmark = pytest.mark.usefixtures("database")
YEAR = 2096  # this branch's years: nothing else writes them


class Tagged:
    """An asyncpg connection with the tag of the test's rows (its resources and departments start with it)."""

    def __init__(self, connection, tag: str) -> None:
        self.connection, self.tag = connection, tag

    def __getattr__(self, name):
        return getattr(self.connection, name)


@pytest.fixture
async def conn(settings):
    """The services' role, as the worker connects; the test's rows are removed afterwards."""
    connection = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    tag = f"p14-{uuid.uuid4().hex[:8]}"
    try:
        yield Tagged(connection, tag)
    finally:
        await connection.execute("DELETE FROM usage_hourly WHERE resource_id LIKE $1", f"{tag}%")
        for table, column in ((r.table, "month" if "month" in r.columns else "day") for r in COARSE_ROLLUPS):
            await connection.execute(f"DELETE FROM {table} WHERE department_id LIKE $1 OR department_id IS NULL "
                                     f"AND {column} >= $2", f"{tag}%", Month(YEAR, 1).first_day)
        await connection.close()


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def upsert(conn, rows: list[tuple[datetime, str, str | None, str]]) -> None:
    """Hourly deltas through the worker's own rollup statement: (hour, resource suffix, department, quantity)."""
    deltas = {(hour, f"{conn.tag}-{rid}", "compute.vcpu", department and f"{conn.tag}-{department}", None, 1):
              RollupDelta(Decimal(q), Decimal(q) / 2, Decimal(0)) for hour, rid, department, q in rows}
    async with conn.transaction():
        await apply_rollup_deltas(conn, deltas)


async def placed(conn) -> dict[tuple[datetime, str], tuple[str, Decimal]]:
    rows = await conn.fetch("SELECT tableoid::regclass::text AS part, hour, resource_id, quantity FROM usage_hourly "
                            "WHERE resource_id LIKE $1", f"{conn.tag}%")
    return {(r["hour"], r["resource_id"].removeprefix(f"{conn.tag}-")): (r["part"], r["quantity"]) for r in rows}


async def test_rows_land_in_their_local_months_partition_and_months_without_one_in_the_default(conn):
    await ensure_month_partitions(conn, Month(YEAR, 3), Month(YEAR, 3))
    await upsert(conn, [(utc(YEAR, 2, 29, 16), "a", "d", "1"),  # 1 March 00:00 local: March
                        (utc(YEAR, 2, 29, 15), "a", "d", "2"),  # 29 February 23:00 local: no partition yet
                        (utc(YEAR, 3, 31, 15), "a", "d", "3"),  # 31 March 23:00 local: March
                        (utc(YEAR, 3, 31, 16), "a", None, "4")])  # 1 April local, unattributed
    assert {k: v[0] for k, v in (await placed(conn)).items()} == {
        (utc(YEAR, 2, 29, 16), "a"): f"usage_hourly_{YEAR}_03", (utc(YEAR, 2, 29, 15), "a"): "usage_hourly_default",
        (utc(YEAR, 3, 31, 15), "a"): f"usage_hourly_{YEAR}_03", (utc(YEAR, 3, 31, 16), "a"): "usage_hourly_default"}


async def test_creating_a_months_partition_moves_its_rows_out_of_the_default_with_sums_unchanged(conn):
    hours = [utc(YEAR, 5, 1, h) for h in range(0, 24, 3)] + [utc(YEAR, 4, 30, 16)]  # all in local May
    await upsert(conn, [(h, f"r{i % 3}", "d", f"{i}.5") for i, h in enumerate(hours)]
                 + [(utc(YEAR, 4, 30, 15), "r0", "d", "7")])  # local April stays where it is
    before = await placed(conn)
    assert {part for part, _ in before.values()} == {"usage_hourly_default"}
    assert await ensure_month_partitions(conn, Month(YEAR, 5), Month(YEAR, 5)) == [f"usage_hourly_{YEAR}_05",
                                                                                   f"events_{YEAR}_05"]
    after = await placed(conn)
    assert {k: q for k, (_, q) in after.items()} == {k: q for k, (_, q) in before.items()}
    assert after.pop((utc(YEAR, 4, 30, 15), "r0"))[0] == "usage_hourly_default"
    assert {part for part, _ in after.values()} == {f"usage_hourly_{YEAR}_05"}
    assert await ensure_month_partitions(conn, Month(YEAR, 5), Month(YEAR, 5)) == []  # made once


async def test_an_upsert_adds_to_its_row_in_whichever_partition_and_a_null_owner_is_one_key(conn):
    await ensure_month_partitions(conn, Month(YEAR, 6), Month(YEAR, 6))
    batch = [(utc(YEAR, 6, 10, 1), "a", None, "1.25"), (utc(YEAR, 9, 10, 1), "a", None, "2")]  # June and default
    await upsert(conn, batch)
    await upsert(conn, batch)
    assert await placed(conn) == {(utc(YEAR, 6, 10, 1), "a"): (f"usage_hourly_{YEAR}_06", Decimal("2.50")),
                                  (utc(YEAR, 9, 10, 1), "a"): ("usage_hourly_default", Decimal("4"))}
    monthly = await conn.fetch("SELECT month, quantity FROM usage_monthly WHERE department_id IS NULL AND "
                               "month IN ($1, $2)", Month(YEAR, 6).first_day, Month(YEAR, 9).first_day)
    assert len(monthly) == 2  # the coarse rollups are summed by the same statement, partitions or not


async def test_detaching_a_month_archives_its_rows_and_leaves_the_other_months(conn, settings):
    await ensure_month_partitions(conn, Month(YEAR + 1, 1), Month(YEAR + 1, 2))
    await upsert(conn, [(utc(YEAR + 1, 1, 5), "a", "d", "1"), (utc(YEAR + 1, 2, 5), "a", "d", "2")])
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # the services' role cannot detach
        await detach_month(conn, Month(YEAR + 1, 1))
    owner = await asyncpg.connect(asyncpg_dsn(settings.migration_database_url))
    try:
        archived = await detach_month(owner, Month(YEAR + 1, 1))
        assert archived == f"archive.usage_hourly_{YEAR + 1}_01"
        assert await owner.fetchval(f"SELECT sum(quantity) FROM {archived} WHERE resource_id LIKE $1",
                                    f"{conn.tag}%") == 1
        await owner.execute(f"DROP TABLE {archived}")
    finally:
        await owner.close()
    assert await placed(conn) == {(utc(YEAR + 1, 2, 5), "a"): (f"usage_hourly_{YEAR + 1}_02", Decimal(2))}
    assert f"usage_hourly_{YEAR + 1}_01" not in dict(await month_partitions(conn))


async def test_the_services_upkeep_makes_last_month_to_two_months_ahead(conn, settings):
    from services.common.db import get_engine

    engine = get_engine()
    try:
        await keep_partitions(engine, utc(YEAR + 1, 6, 30, 16))  # 1 July local
        assert await keep_partitions(engine, utc(YEAR + 1, 7, 2)) == []  # made once
    finally:
        await engine.dispose()
    names = dict(await month_partitions(conn))
    assert {f"usage_hourly_{YEAR + 1}_{m:02d}" for m in (6, 7, 8, 9)} <= set(names)
    assert f"usage_hourly_{YEAR + 1}_10" not in names
    arrivals = dict(await month_partitions(conn, EVENTS))  # and the event store's months of arrival
    assert {f"events_{YEAR + 1}_{m:02d}" for m in (6, 7, 8, 9)} <= set(arrivals)
    assert f"events_{YEAR + 1}_10" not in arrivals


async def test_the_workers_upkeep_at_start_succeeds_as_the_services_role(conn, worker):
    for _ in range(600):  # its upkeep runs as it starts consuming
        if "[^Worker]: Ready" in worker.log_path.read_text(errors="replace"):
            break
        await asyncio.sleep(0.1)
    assert "partition upkeep failed" not in worker.log_path.read_text(errors="replace")
    assert partition_name(Month.of(datetime.now(UTC)).shifted(2)) in dict(await month_partitions(conn))


def test_the_cli_refuses_to_detach_a_month_that_is_not_closed(capsys):
    from services.cli import main

    assert main(["partitions", "--detach", f"{YEAR + 1}-11"]) == 1
    assert "not closed" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--from"):
        main(["partitions", "--from", "2096-13"])


def test_the_migration_partitions_the_rows_and_keeps_notifications_and_grants_both_ways():
    url = scratch_database_url("partitions")
    try:
        migrate(url)
        command.downgrade(alembic_config(url), "0015_usage_department_totals")
        asyncio.run(_fill_unpartitioned(url))
        command.upgrade(alembic_config(url), "head")
        asyncio.run(_check_partitioned(url))
        command.downgrade(alembic_config(url), "0015_usage_department_totals")
        asyncio.run(_check_unpartitioned(url))
    finally:
        asyncio.run(drop_database(url))


ROWS = [(utc(2025, 2, 28, 16), "2025_03"), (utc(2025, 2, 28, 15), "2025_02"), (utc(2071, 7, 1), "2071_07")]


async def _fill_unpartitioned(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.executemany("INSERT INTO usage_hourly VALUES ($1, 'vm', 'compute.vcpu', NULL, NULL, 1, 2, 1, 0)",
                               [(hour,) for hour, _ in ROWS])
        await conn.execute("GRANT SELECT, INSERT ON usage_hourly TO pg_monitor")
    finally:
        await conn.close()


async def _check_partitioned(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        parts = {r["hour"]: r["part"] for r in await conn.fetch(
            "SELECT hour, tableoid::regclass::text AS part FROM usage_hourly")}
        assert parts == {hour: f"usage_hourly_{month}" for hour, month in ROWS}
        assert await conn.fetchval("SELECT relkind::text FROM pg_class WHERE oid = 'usage_hourly'::regclass") == "p"
        assert await conn.fetchval("SELECT has_table_privilege('pg_monitor', 'usage_hourly', 'INSERT')")
        heard = asyncio.Queue()
        await conn.add_listener("govmeter_changes", lambda *args: heard.put_nowait(args[3]))
        await conn.execute("INSERT INTO usage_hourly VALUES ($1, 'vm', 'compute.vcpu', NULL, NULL, 1, 1, 1, 0) "
                           "ON CONFLICT (resource_id, hour, meter, department_id, system, rate_card_id) "
                           "DO UPDATE SET quantity = usage_hourly.quantity + 1", ROWS[0][0])
        assert await asyncio.wait_for(heard.get(), 5) == "usage_hourly"  # the parent's statement trigger fired
        assert await conn.fetchval("SELECT quantity FROM usage_hourly WHERE hour = $1", ROWS[0][0]) == 3
    finally:
        await conn.close()


async def _check_unpartitioned(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        assert await conn.fetchval("SELECT relkind::text FROM pg_class WHERE oid = 'usage_hourly'::regclass") == "r"
        assert await conn.fetchval("SELECT count(*) FROM usage_hourly") == len(ROWS)
        assert {r[0] for r in await conn.fetch("SELECT tgname FROM pg_trigger WHERE tgrelid = 'usage_hourly'::regclass "
                                               "AND NOT tgisinternal")} == {"usage_hourly_changed",
                                                                            "usage_hourly_truncated"}
        assert await conn.fetchval("SELECT has_table_privilege('pg_monitor', 'usage_hourly', 'INSERT')")
    finally:
        await conn.close()


