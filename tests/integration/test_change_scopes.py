"""Scoped invalidation over real PostgreSQL notifications and the real worker: usage arriving for one month or
one department drops only the cached answers that read that month and department (migration 0014)."""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
import pytest

from services.billing.api import bills_cache
from services.common.config import get_settings
from services.common.db import asyncpg_dsn, get_engine, raw_connection
from services.query.api import usage_cache
from tests.integration.support import FINANCE, auth, lifecycle_event, usage_event
from tests.integration.test_billing import close, local, new_id, publish, two_departments_with_usage
from tests.integration.test_response_cache import bills, usage

pytestmark = pytest.mark.usefixtures("worker")

YEAR = 2056
CLOSED_YEAR = 2085  # closes its first months


async def hit(cache, ask) -> tuple:
    """The answer, and whether the cache served it (whole, or every part of it: nothing computed)."""
    hits, misses = cache.hits, cache.misses
    answer = await ask()
    return answer, cache.hits > hits and cache.misses == misses


async def test_usage_for_another_month_or_department_keeps_the_cached_answers(apps, worker):
    mine, theirs = await two_departments_with_usage(apps, worker, YEAR)  # 1 and 7 units on 2 January

    # a VM each for the usage below, activated before anything is cached (a new owner changes every bill list)
    vms = {department_id: new_id("vm") for department_id in (mine, theirs)}
    await publish(apps, [lifecycle_event(vm, "activated", d, local(YEAR, 1, 1)) for d, vm in vms.items()], worker)

    async def more_usage(department_id: str, quantity: str) -> None:  # used in March
        await publish(apps, [usage_event(vms[department_id], "compute.vcpu", quantity, local(YEAR, 3, 9))], worker)

    january = {"from": f"{YEAR}-01-01", "to": f"{YEAR}-02-01", "group_by": "department"}
    year = {"from": f"{YEAR}-01-01", "to": f"{YEAR + 1}-01-01", "group_by": "department"}
    mine_token = auth("department", mine)
    asks = {
        "finance, January": lambda: usage(apps, FINANCE, **january),
        "finance, the year": lambda: usage(apps, FINANCE, **year),
        "mine, the year": lambda: usage(apps, mine_token, **year),
        "my bill list": lambda: bills(apps, mine_token),
    }
    caches = {"my bill list": bills_cache}
    before = {name: await ask() for name, ask in asks.items()}  # cached now

    # their usage in March: drops the answers that read March and their department, and nothing else
    await more_usage(theirs, "4")
    kept = {name: await hit(caches.get(name, usage_cache), ask) for name, ask in asks.items()}
    assert kept["finance, January"] == (before["finance, January"], True)
    assert kept["mine, the year"] == (before["mine, the year"], True)
    assert kept["my bill list"] == (before["my bill list"], True)
    answer, served = kept["finance, the year"]
    assert not served and {(r["department_id"], r["amount"]) for r in answer[1]["rows"]} >= {
        (mine, "1.00"), (theirs, "11.00")}

    # my usage in March: my year and my bill list are recomputed; finance's January is still kept
    await more_usage(mine, "5")
    assert (await hit(usage_cache, asks["finance, January"]))[1]
    answer, served = await hit(usage_cache, asks["mine, the year"])
    assert not served and [(r["department_id"], r["amount"]) for r in answer[1]["rows"]] == [(mine, "6.00")]
    listed, served = await hit(bills_cache, asks["my bill list"])
    assert not served and any(b["period"] == f"{YEAR}-03" and b["total"] == "5.00" for b in listed)


async def test_a_closed_months_bill_list_is_kept_while_usage_lands_and_dropped_by_the_next_close(apps, worker):
    mine, _ = await two_departments_with_usage(apps, worker, CLOSED_YEAR)
    vm = new_id("vm")
    await publish(apps, [lifecycle_event(vm, "activated", mine, local(CLOSED_YEAR, 1, 1))], worker)
    await close(apps, f"{CLOSED_YEAR}-01", local(CLOSED_YEAR, 2, 10))
    token = auth("department", mine)
    january = lambda: bills(apps, token, month=f"{CLOSED_YEAR}-01")  # noqa: E731
    march = lambda: bills(apps, token, month=f"{CLOSED_YEAR}-03")  # noqa: E731
    finals, _ = await hit(bills_cache, january)
    assert [(b["status"], b["total"]) for b in finals] == [("final", "1.00")]
    await march()

    # my usage in March: the open month's list is computed again; January's final bills are still served
    await publish(apps, [usage_event(vm, "compute.vcpu", "5", local(CLOSED_YEAR, 3, 9))], worker)
    assert await hit(bills_cache, january) == (finals, True)
    listed, served = await hit(bills_cache, march)
    assert not served and [(b["status"], b["total"]) for b in listed] == [("draft", "5.00")]

    # the next close drops it (it lists no February bill of mine, but a close may write any bill)
    await close(apps, f"{CLOSED_YEAR}-02", local(CLOSED_YEAR, 3, 10))
    assert await hit(bills_cache, january) == (finals, False)


async def test_a_change_too_large_to_list_widens_to_its_months_then_to_every_month(database):
    """700 departments in one month do not fit a notification: the month is named with every department;
    900 months do not fit either: any month. (Rows far beyond every other test's years, removed at once.)"""
    listener = await asyncpg.connect(asyncpg_dsn(get_settings().database_url))
    payloads: asyncio.Queue = asyncio.Queue()
    await listener.add_listener("govmeter_changes", lambda *args: payloads.put_nowait(args[-1]))
    try:
        async with raw_connection(get_engine()) as conn:
            for rows, expected in ((["2301-01-01"] * 700, {"2301-01": "*"}), ([None] * 900, "*")):
                months = [m or f"{2400 + k // 12}-{k % 12 + 1:02d}-01" for k, m in enumerate(rows)]
                ids = [f"dep-scope-{k}" for k in range(len(rows))]
                await conn.execute(
                    "INSERT INTO usage_monthly (month, department_id, meter, quantity, amount, unpriced_quantity) "
                    "SELECT m::date, d, 'compute.vcpu', 1, 1, 0 FROM unnest($1::text[], $2::text[]) AS r(m, d)",
                    months, ids)
                found = await _scoped(payloads)
                await conn.execute("DELETE FROM usage_monthly WHERE department_id LIKE 'dep-scope-%'")
                assert found == {"t": "usage_monthly", "m": expected}
                await _scoped(payloads)  # the deletion's
    finally:
        await listener.close()


async def _scoped(payloads: asyncio.Queue) -> dict:
    while True:
        payload = await asyncio.wait_for(payloads.get(), timeout=10)
        if payload.startswith("{"):
            return orjson.loads(payload)
