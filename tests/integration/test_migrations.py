import asyncio

import asyncpg
from alembic import command

from services.common.db import asyncpg_dsn, drop_database, ensure_database
from services.common.migrate import alembic_config, migrate
from tests.integration.support import scratch_database_url


def test_migrations_create_exactly_the_schema_of_the_models():
    url = scratch_database_url()
    try:
        migrate(url)
        command.check(alembic_config(url))  # raises if the models and the migrated schema differ
        command.downgrade(alembic_config(url), "base")
        command.upgrade(alembic_config(url), "head")
    finally:
        asyncio.run(drop_database(url))


def test_migration_0017_versions_each_closed_month_as_unchanged_only_where_its_fingerprint_still_matches():
    url = scratch_database_url()
    try:
        asyncio.run(ensure_database(url))
        command.upgrade(alembic_config(url), "0016_partition_usage_hourly")
        asyncio.run(_store_usage_and_baselines(url))
        command.upgrade(alembic_config(url), "0017_bill_list_speed")
        assert asyncio.run(_versions(url)) == {
            ("same", "2098-01"): 0,  # usage as settled
            ("late", "2098-01"): 1,  # usage came after its baseline
            ("gone", "2098-01"): 1,  # settled with usage, none now
            ("new", "2098-01"): 1,  # usage, never settled
            ("idle", "2098-01"): 0,  # settled without usage, none now
        }
    finally:
        asyncio.run(drop_database(url))


async def _store_usage_and_baselines(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for department, quantity in (("same", "2"), ("late", "3"), ("new", "1")):
            await conn.execute("INSERT INTO usage_daily (day, department_id, system, meter, quantity, amount,"
                               " unpriced_quantity) VALUES ('2098-01-05', $1, NULL, 'compute.vcpu', $2, $2, 0)",
                               department, quantity)
        digests = {r["department_id"]: r["digest"] for r in await conn.fetch(
            "SELECT department_id, encode(sha256(convert_to(string_agg(concat_ws('|', day, system, meter,"
            " trim_scale(quantity), trim_scale(amount), trim_scale(unpriced_quantity)), ';'"
            " ORDER BY day, system, meter), 'UTF8')), 'hex') AS digest FROM usage_daily GROUP BY 1")}
        for department, digest in (("same", digests["same"]), ("late", "an-older-digest"),
                                   ("gone", digests["same"]), ("idle", "none")):
            await conn.execute("INSERT INTO usage_baselines (department_id, period, digest, close_seq)"
                               " VALUES ($1, '2098-01', $2, 1)", department, digest)
    finally:
        await conn.close()


async def _versions(url: str) -> dict:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return {(r["department_id"], r["period"]): r["version"]
                for r in await conn.fetch("SELECT department_id, period, version FROM usage_versions")}
    finally:
        await conn.close()
