"""The response cache of /v1/usage and /v1/bills over real PostgreSQL notifications and the real worker: answers
change as soon as what they read changes (usage, adjustments, rate cards, closes), cached answers never cross
departments, and nothing is cached while the listener is down. Each test works in a year of its own."""

from __future__ import annotations

import asyncio

import pytest

from schemas.billing import BillSummary
from services.billing.api import bills_cache
from services.bill_reads.issued import bill_summaries
from services.common.config import get_settings
from services.common.db import asyncpg_dsn, get_engine, raw_connection
from services.common.response_cache import ResponseCache
from services.query.api import usage_cache
from tests.integration.support import ADMIN, FINANCE, auth, usage_event, wait_until
from tests.integration.test_billing import (
    close,
    department_using_a_vm,
    local,
    publish,
    rate_card,
    two_departments_with_usage,
)

pytestmark = pytest.mark.usefixtures("worker")


async def usage(apps, headers, **params):
    response = await apps["query"].get("/v1/usage", params=params, headers=headers)
    return response.status_code, response.json()


async def bills(apps, headers, **params):
    response = await apps["billing"].get("/v1/bills", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def uncached_bills(month, department):
    """What the bill list computes without the cache, serialised as FastAPI serialises a response_model."""
    summaries = await bill_summaries(get_engine(), month, None if department is None else [department],
                                     local(2099, 1, 1))
    return [BillSummary.model_validate(s).model_dump(mode="json") for s in summaries]


async def test_usage_is_served_from_the_cache_until_new_usage_lands_through_the_worker(apps, worker):
    dep, vm = await department_using_a_vm(apps, worker, 2080, ("2", local(2080, 1, 5, 10)))
    query = {"from": "2080-01-01", "to": "2081-01-01", "group_by": "department", "granularity": "month"}
    assert usage_cache.connected
    first = await usage(apps, FINANCE, **query)
    hits, misses = usage_cache.hits, usage_cache.misses
    assert await usage(apps, FINANCE, **query) == first  # from the cache: its month pieces, nothing computed
    assert usage_cache.hits > hits and usage_cache.misses == misses
    assert [(r["department_id"], r["amount"]) for r in first[1]["rows"]] == [(dep, "2.00")]

    await publish(apps, [usage_event(vm, "compute.vcpu", "3", local(2080, 2, 5, 10))], worker)
    status, after = await usage(apps, FINANCE, **query)
    assert [(r["period_start"][:7], r["amount"]) for r in after["rows"]] == [("2080-01", "2.00"), ("2080-02", "3.00")]


async def test_the_bill_list_follows_adjustments_rate_cards_and_the_close_at_once(apps, worker):
    dep, _ = await department_using_a_vm(apps, worker, 2081, ("10", local(2081, 1, 5, 10)),
                                         ("10", local(2081, 1, 20, 10)))
    token = auth("department", dep)

    async def listed():
        mine = await bills(apps, token)
        assert mine == await bills(apps, token)  # the second read is a hit ...
        assert mine == await uncached_bills(None, dep)  # ... and equal to what the list computes uncached
        # this test's year only: other tests' closes carry the VM's (active, unbilled) department into their years
        return [(b["period"], b["status"], b["total"]) for b in mine if b["period"].startswith("2081-")]

    assert await listed() == [("2081-01", "draft", "20.00")]
    posted = await apps["billing"].post("/v1/adjustments", headers=ADMIN, json={
        "department_id": dep, "amount": "-5.00", "reason": "服务中断补偿", "month": "2081-01"})
    assert posted.status_code == 201, posted.text
    assert await listed() == [("2081-01", "draft", "15.00")]
    await rate_card(apps, local(2081, 1, 15), compute_vcpu="2.00")  # re-rates the usage from the 15th
    assert await listed() == [("2081-01", "draft", "25.00")]
    await close(apps, "2081-01", local(2081, 2, 1))
    assert [b for b in await listed() if b[0] < "2082"] == [("2081-01", "final", "25.00"), ("2081-02", "draft", "0.00")]


async def test_remembered_usage_fingerprints_never_hide_late_usage_for_a_closed_month(apps, worker):
    dep, vm = await department_using_a_vm(apps, worker, 2084, ("10", local(2084, 1, 5, 10)))
    await close(apps, "2084-01", local(2084, 2, 1))
    token = auth("department", dep)

    async def listed():
        mine = await bills(apps, token)
        assert mine == await uncached_bills(None, dep)
        return [(b["period"], b["status"], b["total"]) for b in mine if "2084" <= b["period"] < "2085"]

    assert await listed() == [("2084-01", "final", "10.00"), ("2084-02", "draft", "0.00")]
    # an adjustment changes the list but not usage_daily: the closed month's usage version is unchanged
    posted = await apps["billing"].post("/v1/adjustments", headers=ADMIN, json={
        "department_id": dep, "amount": "1.00", "reason": "人工服务费", "month": "2084-02"})
    assert posted.status_code == 201, posted.text
    assert await listed() == [("2084-01", "final", "10.00"), ("2084-02", "draft", "1.00")]
    # late usage for the closed month changes usage_daily and its version: its fingerprint is taken anew
    await publish(apps, [usage_event(vm, "compute.vcpu", "5", local(2084, 1, 6, 10))], worker)
    assert await listed() == [("2084-01", "final", "10.00"), ("2084-02", "draft", "6.00")]


async def test_a_department_never_gets_another_departments_cached_answer(apps, worker):
    mine, theirs = await two_departments_with_usage(apps, worker, 2082)
    mine_token, theirs_token = auth("department", mine), auth("department", theirs)
    year = {"from": "2082-01-01", "to": "2083-01-01"}
    for _ in range(2):  # the first round fills the cache, the second is served from it
        # finance's answers (every department, and each one's) are cached first
        everyone = await usage(apps, FINANCE, **year, group_by="department")
        assert {r["department_id"] for r in everyone[1]["rows"]} >= {mine, theirs}
        for dep in (mine, theirs):
            assert (await usage(apps, FINANCE, **year, department=dep))[0] == 200
            assert (await bills(apps, FINANCE, department=dep))[0]["department_id"] == dep
        # the same query from each department's token answers with that department alone
        for dep, token, amount in ((mine, mine_token, "1.00"), (theirs, theirs_token, "7.00")):
            status, own = await usage(apps, token, **year, group_by="department")
            assert status == 200 and [(r["department_id"], r["amount"]) for r in own["rows"]] == [(dep, amount)]
            assert [b["department_id"] for b in await bills(apps, token, month="2082-01")] == [dep]
            assert {b["department_id"] for b in await bills(apps, token)} == {dep}
        # asking for the other one is refused even though finance's answer for it is in the cache
        assert (await usage(apps, mine_token, **year, department=theirs))[0] == 403
        response = await apps["billing"].get("/v1/bills", params={"department": theirs}, headers=mine_token)
        assert response.status_code == 403
    assert usage_cache.hits > 0 and bills_cache.hits > 0


async def test_nothing_is_cached_while_the_listener_is_down_and_it_reconnects(apps, worker):
    dep, vm = await department_using_a_vm(apps, worker, 2083, ("1", local(2083, 1, 2)))
    query = {"from": "2083-01-01", "to": "2084-01-01", "department": dep}
    await usage(apps, FINANCE, **query)
    usage_cache.retry_seconds = 5  # time enough to ask while it is down
    try:
        async with raw_connection(get_engine()) as conn:  # cut the listener off, as a database restart would
            pid = usage_cache._conn.get_server_pid()
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        await wait_until(lambda: _true(not usage_cache.connected), timeout=10)
        misses = usage_cache.misses
        hits = usage_cache.hits
        await usage(apps, FINANCE, **query)
        assert (usage_cache.hits, usage_cache.misses) == (hits, misses)  # neither served nor stored
    finally:
        usage_cache.retry_seconds = 1.0
    await wait_until(lambda: _true(usage_cache.connected), timeout=15)
    await publish(apps, [usage_event(vm, "compute.vcpu", "4", local(2083, 1, 3))], worker)
    _, answer = await usage(apps, FINANCE, **query)
    assert [r["amount"] for r in answer["rows"]] == ["5.00"]


async def test_the_listener_speaks_plain_text_to_a_database_on_loopback(apps):
    """Nearly every cached answer waits for a round trip on the listener: over TLS (asyncpg's default when the
    server offers it, as Debian's does) both ends paid for encryption on the same host."""
    assert usage_cache.connected and bills_cache.connected
    async with raw_connection(get_engine()) as conn:
        for cache in (usage_cache, bills_cache):
            pid = cache._conn.get_server_pid()
            assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = $1", pid) is False
        assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is False
    assert "sslmode=disable" in asyncpg_dsn(get_settings().database_url)
    assert "sslmode" not in asyncpg_dsn("postgresql+asyncpg://u:p@db.example:5432/govmeter")
    assert asyncpg_dsn("postgresql+asyncpg://u:p@127.0.0.1/govmeter?sslmode=require").endswith("sslmode=require")


async def _true(value):
    return value


async def test_identical_misses_compute_once_and_the_cache_stays_within_its_bounds(database):
    cache = ResponseCache(tables=("departments",), max_entries=3, max_bytes=1000)
    await cache.start(asyncpg_dsn(get_settings().database_url))
    try:
        assert cache.connected
        computed = 0

        async def slow() -> bytes:
            nonlocal computed
            computed += 1
            await asyncio.sleep(0.2)
            return b"answer"

        assert await asyncio.gather(*(cache.serve("same", slow) for _ in range(10))) == [b"answer"] * 10
        assert computed == 1
        for i in range(5):
            await cache.serve(("key", i), lambda: _bytes(b"x" * 100))
        assert len(cache._entries) == 3 and cache._bytes <= 1000
        await cache.serve("big", lambda: _bytes(b"y" * 400))  # more than a quarter of the bytes: not stored
        assert "big" not in cache._entries
        # a write to a watched table invalidates at once, even when the writer is another connection
        generation = cache.generation
        async with raw_connection(get_engine()) as conn:
            # an empty INSERT: statement triggers fire, and the services' role may insert (not update) here
            await conn.execute("INSERT INTO departments SELECT * FROM departments WHERE false")
        await cache.serve("after", lambda: _bytes(b"z"))
        assert cache.generation > generation and ("key", 4) not in cache._entries
        # ... and a write to a table it does not depend on leaves it alone
        generation = cache.generation
        async with raw_connection(get_engine()) as conn:
            await conn.execute("INSERT INTO bills (bill_id) SELECT bill_id FROM bills WHERE false")
        await cache.serve("after", lambda: _bytes(b"z"))
        assert cache.generation == generation and "after" in cache._entries
    finally:
        await cache.stop()


async def _bytes(body: bytes) -> bytes:
    return body
