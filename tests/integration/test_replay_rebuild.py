"""Replay rebuilds the projections in bulk (usage rated from the typed columns, deltas folded set-based) and still
finds them identical to what the worker built one batch at a time: multi-hour events, ownership changes in the
middle of history, rate cards effective in the past, tiered meters, late usage after a close, duplicates,
utilisation; and whatever arrives after its cut is replayed before the comparison."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

import services.replay.run as replay_module
from services.projection.partitions import grant_archived_events
from services.replay.plan import Cut
from services.replay.run import replay
from services.common.db import asyncpg_dsn, get_engine
from tests.conftest import SUPERUSER_DATABASE_URL
from tests.integration.support import SOURCE, lifecycle_event, post_events, usage_event
from tests.integration.test_billing import close, department, get_bill, local, new_id, publish, rate_card, tiers

pytestmark = pytest.mark.usefixtures("worker")
YEAR = 2061


def utilization_event(resource: str, start: datetime, end: datetime, cpu: str, memory: str) -> dict:
    return {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": SOURCE, "type": "gov.cloud.utilization.v1",
        "subject": resource, "time": end.isoformat(),
        "data": {"cpu_percent": cpu, "memory_percent": memory, "start": start.isoformat(), "end": end.isoformat()},
    }


async def history(apps, worker) -> tuple[str, str]:
    """Two departments over three months, with every kind of change the worker re-rates for."""
    first, second = await department(apps), await department(apps, "市教育局")
    await rate_card(apps, local(YEAR, 1, 1), compute_vcpu="0.50",
                    network_egress=tiers(("100", "0.80"), (None, "0.40")))
    vm, ip, orphan = new_id("vm"), new_id("ip"), new_id("vm")
    repeated = usage_event(vm, "compute.vcpu", "3", local(YEAR, 1, 12, 9))
    await publish(apps, [
        lifecycle_event(vm, "activated", first, local(YEAR, 1, 1)),
        lifecycle_event(ip, "activated", first, local(YEAR, 1, 1), system="门户网站", kind="ip"),
        # 22:20 → 01:50 local: four hours, split exactly, across a local midnight
        usage_event(vm, "compute.vcpu", "7", local(YEAR, 1, 3, 22, 20), local(YEAR, 1, 4, 1, 50)),
        usage_event(vm, "compute.vcpu", "4", local(YEAR, 1, 20, 10)),
        usage_event(ip, "network.egress", "60", local(YEAR, 1, 5, 10)),
        usage_event(ip, "network.egress", "70", local(YEAR, 1, 25, 10)),
        usage_event(orphan, "compute.vcpu", "2", local(YEAR, 1, 6, 8)),  # never owned: unattributed
        repeated, repeated,  # an exact duplicate counts once
        utilization_event(vm, local(YEAR, 1, 3, 10, 30), local(YEAR, 1, 3, 12, 10), "42.5", "61"),
    ], worker)
    conflicting = dict(repeated, data=dict(repeated["data"], quantity="30"))  # same id, other payload: dead letter
    response = await post_events(apps["metering"], [conflicting])
    assert response.status_code == 202, response.text
    # the machine belonged to the second department from 15 January: stored usage is re-attributed
    await publish(apps, [lifecycle_event(vm, "changed", second, local(YEAR, 1, 15), system="办公自动化系统")], worker)
    await close(apps, f"{YEAR}-01", local(YEAR, 2, 1))

    # after the close: late January usage, and a card effective in the past re-pricing part of January
    await publish(apps, [usage_event(vm, "compute.vcpu", "5", local(YEAR, 1, 28, 14, 30), local(YEAR, 1, 28, 16)),
                         usage_event(ip, "network.egress", "90", local(YEAR, 2, 3, 10)),
                         usage_event(vm, "compute.vcpu", "6", local(YEAR, 2, 9, 23, 30), local(YEAR, 2, 10, 0, 30))],
                  worker)
    await rate_card(apps, local(YEAR, 1, 10), compute_vcpu="0.70",
                    network_egress=tiers(("50", "1.00"), (None, "0.30")))
    await close(apps, f"{YEAR}-02", local(YEAR, 3, 1))

    # an open month: the ip is terminated mid-month, its later usage is unattributed
    await publish(apps, [usage_event(ip, "network.egress", "40", local(YEAR, 3, 5, 10)),
                         lifecycle_event(ip, "terminated", None, local(YEAR, 3, 10), kind="ip"),
                         usage_event(ip, "network.egress", "15", local(YEAR, 3, 12, 10)),
                         usage_event(vm, "compute.vcpu", "1", local(YEAR, 3, 2, 12))], worker)
    return first, second


async def test_bulk_replay_is_identical_through_ownership_price_tier_and_late_changes(apps, worker, settings):
    first, second = await history(apps, worker)
    january = await get_bill(apps, f"GM-{YEAR}-01-{second}")
    assert january["status"] == "final"
    report = await replay(get_engine(), settings.database_url)
    assert report.ok, report.differences
    assert report.final_bills_checked >= 4 and report.drafts_checked >= 2
    assert set(report.tables_compared) == {"resource_intervals", "usage_hourly", "usage_daily",
                                           "usage_department_daily", "usage_monthly", "usage_department_totals_daily",
                                           "utilization_hourly"}
    assert report.tables_compared["utilization_hourly"] > 0 and report.tables_compared["usage_monthly"] > 0
    conn = await asyncpg.connect(asyncpg_dsn(SUPERUSER_DATABASE_URL))  # tampering bypasses the triggers
    try:
        assert report.events == await conn.fetchval("SELECT count(*) FROM events")
        # a coarse rollup that no longer follows from the events is found too
        await conn.execute("SET session_replication_role = replica")
        month = local(YEAR, 1, 1).date()
        await conn.execute("UPDATE usage_monthly SET amount = amount + 1 WHERE department_id = $1 AND month = $2",
                           second, month)
        try:
            broken = await replay(get_engine(), settings.database_url)
        finally:
            await conn.execute("UPDATE usage_monthly SET amount = amount - 1 WHERE department_id = $1 AND month = $2",
                               second, month)
    finally:
        await conn.close()
    assert any(d.startswith("usage_monthly: live row not rebuilt by replay") for d in broken.differences)
    assert any(d.startswith("usage_monthly: replay row not in the live table") for d in broken.differences)


async def test_a_month_of_events_detached_into_the_archive_is_still_replayed(apps, worker, settings):
    """A detached month of the event store (``archive.events_YYYY_MM``) is still the source of truth: replay reads
    it beside the attached partitions and finds every projection identical. Simulated by moving this history's
    usage and utilisation events into an archive table, as detaching the month they arrived in would."""
    owner = await asyncpg.connect(asyncpg_dsn(settings.migration_database_url))
    archived = "archive.events_2000_01"
    try:
        began = await owner.fetchval("SELECT clock_timestamp()")
        await history(apps, worker)
        await owner.execute("CREATE SCHEMA IF NOT EXISTS archive")
        # as a detached partition keeps them: its indexes (re-rating in replay reads usage by subject)
        await owner.execute(f"CREATE TABLE {archived} (LIKE public.events_metered INCLUDING INDEXES)")
        moved = await owner.execute(f"WITH moved AS (DELETE FROM events WHERE type <> 'gov.cloud.resource.v1' "
                                    f"AND received_at > $1 RETURNING *) INSERT INTO {archived} "
                                    f"SELECT * FROM moved", began)
        assert int(moved.split()[-1]) > 0
        await grant_archived_events(owner, archived)
        report = await replay(get_engine(), settings.database_url)
        assert report.ok, report.differences
        assert report.events == await owner.fetchval(
            f"SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM {archived})")
    finally:
        if await owner.fetchval("SELECT to_regclass($1) IS NOT NULL", archived):
            await owner.execute(f"INSERT INTO events SELECT * FROM {archived}")
            await owner.execute(f"DROP TABLE {archived}")
        await owner.close()


async def test_what_arrives_after_the_cut_is_replayed_before_comparing(apps, worker, settings, monkeypatch):
    await history_after_cut(apps, worker)

    async def early_cut(engine) -> Cut:  # as if everything after the last close had arrived during the replay
        return Cut(datetime(2000, 1, 1, tzinfo=UTC))

    monkeypatch.setattr(replay_module, "_take_cut", early_cut)
    report = await replay(get_engine(), settings.database_url)
    assert report.ok, report.differences
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        assert report.events == await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()


async def history_after_cut(apps, worker) -> None:
    dep = await department(apps)
    vm = new_id("vm")
    await publish(apps, [lifecycle_event(vm, "activated", dep, local(YEAR + 1, 1, 1)),
                         usage_event(vm, "compute.vcpu", "8", local(YEAR + 1, 1, 5, 7, 45), local(YEAR + 1, 1, 5, 9))],
                  worker)
