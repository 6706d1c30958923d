"""The ledger detects tampering (edited, deleted, reordered entries; changed final bills), and replay rebuilds
every projection and every bill from the event store with identical figures."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import asynccontextmanager

import asyncpg
import pytest

from services.replay.run import replay
from services.common.db import asyncpg_dsn, get_engine
from tests.conftest import SUPERUSER_DATABASE_URL
from tests.integration.conftest import REPO
from tests.integration.support import ADMIN, lifecycle_event, usage_event
from tests.integration.test_billing import close, department, get_bill, local, new_id, publish, rate_card

pytestmark = pytest.mark.usefixtures("worker")


@asynccontextmanager
async def superuser(settings):
    """A plain connection that bypasses the append-only triggers, as someone tampering with the database
    directly would (session_replication_role = replica)."""
    conn = await asyncpg.connect(asyncpg_dsn(SUPERUSER_DATABASE_URL))
    try:
        await conn.execute("SET session_replication_role = replica")
        yield conn
    finally:
        await conn.close()


async def verify(apps) -> dict:
    response = await apps["billing"].get("/v1/ledger/verify", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=REPO, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=120)


async def billed_year(apps, worker, year: int) -> str:
    """A department with a closed month, a manual adjustment and late usage: entries of every kind."""
    dep = await department(apps)
    await rate_card(apps, local(year, 1, 1), compute_vcpu="1.00")
    vm = new_id("vm")
    await publish(apps, [lifecycle_event(vm, "activated", dep, local(year, 1, 1)),
                         usage_event(vm, "compute.vcpu", "8", local(year, 1, 5))], worker)
    response = await apps["billing"].post("/v1/adjustments", headers=ADMIN, json={
        "department_id": dep, "amount": "-3.00", "reason": "credit", "month": f"{year}-01"})
    assert response.status_code == 201
    await close(apps, f"{year}-01", local(year, 2, 1))
    await publish(apps, [usage_event(vm, "compute.vcpu", "2", local(year, 1, 6)),
                         usage_event(vm, "compute.vcpu", "1", local(year, 2, 6))], worker)
    await close(apps, f"{year}-02", local(year, 3, 1))
    await publish(apps, [usage_event(vm, "compute.vcpu", "4", local(year, 2, 7)),
                         usage_event(vm, "compute.vcpu", "5", local(year, 3, 7))], worker)
    return dep


async def test_the_ledger_names_edited_deleted_and_reordered_entries_and_changed_bills(apps, worker, settings):
    dep = await billed_year(apps, worker, 2058)
    clean = await verify(apps)
    assert clean["ok"] and clean["problems"] == [] and clean["entries"] >= 5
    async with superuser(settings) as conn:
        entries = await conn.fetch("SELECT * FROM ledger_entries WHERE department_id = $1 ORDER BY seq", dep)
        assert [e["kind"] for e in entries] == ["adjustment", "bill_line", "bill", "bill_line", "late_adjustment",
                                                "bill"]
        line = entries[1]["seq"]
        # the database itself refuses changes to the ledger and to final bills
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = origin")
            with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
                await conn.execute("UPDATE ledger_entries SET amount = 0 WHERE seq = $1", line)
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
            await asyncpg_connection_without_bypass(settings, "DELETE FROM bills WHERE department_id = $1", dep)

        await conn.execute("UPDATE ledger_entries SET amount = amount + 1 WHERE seq = $1", line)
        try:
            edited = await verify(apps)
            assert not edited["ok"]
            assert {"seq": line, "problem": f"entry {line} does not match its hash: edited"} in edited["problems"]
            result = cli("ledger", "verify")
            assert result.returncode == 1 and f"entry {line} does not match its hash: edited" in result.stderr
        finally:
            await conn.execute("UPDATE ledger_entries SET amount = amount - 1 WHERE seq = $1", line)
        assert (await verify(apps))["ok"]

        removed = dict(entries[1])
        await conn.execute("DELETE FROM ledger_entries WHERE seq = $1", line)
        try:
            problems = [p["problem"] for p in (await verify(apps))["problems"]]
            assert f"entry {line} missing before entry {line + 1}: deleted" in problems
        finally:
            await conn.execute(f"INSERT INTO ledger_entries ({', '.join(removed)}) VALUES "
                               f"({', '.join(f'${i + 1}' for i in range(len(removed)))})", *removed.values())

        last = entries[-1]["seq"]  # the newest entry: nothing follows it, but its bill vouches for it
        tail = await conn.fetch("SELECT * FROM ledger_entries WHERE seq >= $1 ORDER BY seq", last)
        await conn.execute("DELETE FROM ledger_entries WHERE seq >= $1", last)
        try:
            problems = [p["problem"] for p in (await verify(apps))["problems"]]
            assert any(p.startswith(f"entry {last} (final bill GM-2058-02-{dep}) is missing") for p in problems)
        finally:
            for row in tail:
                await conn.execute(f"INSERT INTO ledger_entries ({', '.join(row.keys())}) VALUES "
                                   f"({', '.join(f'${i + 1}' for i in range(len(row)))})", *row.values())

        a, b = entries[3]["seq"], entries[4]["seq"]
        await swap(conn, a, b)
        try:
            problems = {(p["seq"], p["problem"]) for p in (await verify(apps))["problems"]}
            assert (a, f"entry {a} was entry {b}: reordered") in problems
            assert (b, f"entry {b} was entry {a}: reordered") in problems
        finally:
            await swap(conn, a, b)
        assert (await verify(apps))["ok"]

        bill_id = f"GM-2058-01-{dep}"
        original = await conn.fetchval("SELECT document FROM bills WHERE bill_id = $1", bill_id)
        await conn.execute("UPDATE bills SET document = $2 WHERE bill_id = $1", bill_id,
                           original.replace(b'"total":"5.00"', b'"total":"4.00"'))
        try:
            problems = [p["problem"] for p in (await verify(apps))["problems"]]
            assert any(p.startswith(f"final bill {bill_id} no longer matches the content hash") for p in problems)
        finally:
            await conn.execute("UPDATE bills SET document = $2 WHERE bill_id = $1", bill_id, original)
    assert (await verify(apps))["ok"]
    result = cli("ledger", "verify")
    assert result.returncode == 0 and result.stdout.startswith("ledger intact:")


async def asyncpg_connection_without_bypass(settings, query: str, *args):
    # a superuser without the bypass: the trigger holds even where the grants do not apply
    conn = await asyncpg.connect(asyncpg_dsn(SUPERUSER_DATABASE_URL))
    try:
        await conn.execute(query, *args)
    finally:
        await conn.close()


async def swap(conn, a: int, b: int) -> None:
    async with conn.transaction():
        await conn.execute("UPDATE ledger_entries SET seq = -1 WHERE seq = $1", a)
        await conn.execute("UPDATE ledger_entries SET seq = $1 WHERE seq = $2", a, b)
        await conn.execute("UPDATE ledger_entries SET seq = $1 WHERE seq = -1", b)


async def test_replay_rebuilds_every_projection_and_bill_with_identical_figures(apps, worker, settings):
    dep = await billed_year(apps, worker, 2059)
    march = await get_bill(apps, f"GM-2059-03-{dep}")
    assert (march["usage_total"], march["adjustments_total"]) == ("5.00", "4.00")  # February's late usage
    report = await replay(get_engine(), settings.database_url)
    assert report.ok, report.differences
    assert report.events > 0 and report.final_bills_checked >= 2 and report.drafts_checked >= 1
    assert set(report.tables_compared) >= {"resource_intervals", "usage_hourly", "usage_daily"}
    assert report.tables_compared["usage_hourly"] > 0

    # a projection that no longer follows from the events is found
    async with superuser(settings) as conn:
        await conn.execute("UPDATE usage_hourly SET quantity = quantity + 1 WHERE department_id = $1 AND hour = $2",
                           dep, local(2059, 3, 7))
        try:
            broken = await replay(get_engine(), settings.database_url)
        finally:
            await conn.execute("UPDATE usage_hourly SET quantity = quantity - 1 WHERE department_id = $1 AND "
                               "hour = $2", dep, local(2059, 3, 7))
    assert any(d.startswith("usage_hourly: live row not rebuilt by replay") for d in broken.differences)
    assert any(d.startswith(f"draft bill GM-2059-03-{dep}") for d in broken.differences)

    result = cli("replay")
    assert result.returncode == 0, result.stderr
    assert "events/s" in result.stdout and "identical: every projection and every bill" in result.stdout
