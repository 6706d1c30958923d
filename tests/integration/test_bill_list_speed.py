"""The bill list's cheap check (issue #14, docs/bill-list-speed.md): a closed month's usage fingerprint is
recomputed only where its usage version moved, and the figures are exactly those of recomputing every one.
Years 2098, 2076 and 2042 are this file's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from services.bill_reads import bills as bill_reads
from services.bill_reads.bills import period_bills, snapshot
from services.billing.domain.render import draft_bytes
from services.common.db import get_engine, raw_connection, raw_transaction
from services.metering.domain.rating import RollupDelta
from services.projection.rollups import COARSE_ROLLUPS, apply_rollup_deltas
from tests.integration.support import ADMIN, FINANCE, auth, lifecycle_event, usage_event
from tests.integration.test_billing import close, department_using_a_vm, local, publish, rate_card, tiers

pytestmark = pytest.mark.usefixtures("worker")


async def _versions(department: str) -> dict[str, int]:
    async with raw_connection(get_engine()) as conn:
        rows = await conn.fetch("SELECT period, version FROM usage_versions WHERE department_id = $1", department)
    return {r["period"]: r["version"] for r in rows}


async def _baselines(department: str, period: str) -> list[tuple[str, int]]:
    async with raw_connection(get_engine()) as conn:
        rows = await conn.fetch("SELECT digest, usage_version FROM usage_baselines WHERE department_id = $1"
                                " AND period = $2 ORDER BY id", department, period)
    return [(r["digest"], r["usage_version"]) for r in rows]


async def _drafts_both_ways(period: str, department: str, both: bool = True) -> dict:
    """The department's draft as the API computes it (by usage versions); asserted equal, byte for byte, to
    the draft with every closed month's fingerprint recomputed (unless not ``both``)."""
    now = datetime.now(UTC)
    async with snapshot(get_engine()) as conn:
        (fast,) = (await period_bills(conn, period, status="draft", as_of=now, departments=[department],
                                      versioned=True)).bills
        if both:
            (full,) = (await period_bills(conn, period, status="draft", as_of=now, departments=[department])).bills
            assert draft_bytes(fast) == draft_bytes(full)
    return {k: v for k, v in orjson.loads(draft_bytes(fast)).items() if k != "as_of"}  # the figures


async def test_late_usage_for_a_closed_month_moves_its_version_and_its_draft_adjustment_is_exact(apps, worker,
                                                                                                  monkeypatch):
    dep, vm = await department_using_a_vm(apps, worker, 2098, ("10", local(2098, 1, 5, 10)))
    await close(apps, "2098-01", local(2098, 2, 1))
    version = (await _versions(dep))["2098-01"]
    assert version >= 1 and [v for _, v in await _baselines(dep, "2098-01")] == [version]

    fingerprinted: list = []
    original = bill_reads._digests_of

    async def counting(conn, keys):
        fingerprinted.extend(keys)
        return await original(conn, keys)

    baselines_read: list = []
    original_baselines = bill_reads._latest_baselines

    async def reading_baselines(conn, *args):
        baselines_read.append(args)
        return await original_baselines(conn, *args)

    monkeypatch.setattr(bill_reads, "_digests_of", counting)
    monkeypatch.setattr(bill_reads, "_latest_baselines", reading_baselines)
    await _drafts_both_ways("2098-02", dep)
    assert fingerprinted == []  # unchanged version: the baseline's fingerprint, no usage read
    # the same versions, closes and cards again: the re-pricing decision is reused, no baseline is read
    baselines_read.clear()
    await _drafts_both_ways("2098-02", dep, both=False)
    assert baselines_read == []

    await publish(apps, [usage_event(vm, "compute.vcpu", "4", local(2098, 1, 20, 10))], worker)
    assert (await _versions(dep))["2098-01"] > version
    await _drafts_both_ways("2098-02", dep, both=False)
    assert (dep, "2098-01") in fingerprinted and len(baselines_read) == 1  # the version moved: decided anew
    await _drafts_both_ways("2098-02", dep)
    listed = await apps["billing"].get("/v1/bills", params={"department": dep}, headers=auth("department", dep))
    assert [(b["period"], b["status"], b["total"]) for b in listed.json() if b["period"] < "2098-03"] == [
        ("2098-01", "final", "10.00"), ("2098-02", "draft", "4.00")]

    # the close freezes the adjustment and records the usage it settled, at its new version
    await close(apps, "2098-02", local(2098, 3, 1))
    settled = await _baselines(dep, "2098-01")
    assert len(settled) == 2 and settled[-1][1] == (await _versions(dep))["2098-01"]
    fingerprinted.clear()
    await _drafts_both_ways("2098-03", dep)
    assert fingerprinted == []
    listed = await apps["billing"].get("/v1/bills", params={"department": dep}, headers=FINANCE)
    assert [(b["period"], b["total"]) for b in listed.json() if b["period"] < "2098-04"] == [
        ("2098-01", "10.00"), ("2098-02", "4.00"), ("2098-03", "0.00")]


async def test_a_closed_month_written_back_to_the_same_figures_is_fingerprinted_and_adjusts_nothing(apps, worker):
    dep, _ = await department_using_a_vm(apps, worker, 2042, ("6", local(2042, 1, 7, 9)))
    await close(apps, "2042-01", local(2042, 2, 1))
    before = await _drafts_both_ways("2042-02", dep)
    day = local(2042, 1, 7, 9).astimezone(UTC)
    key = (day, "vm-none", "compute.vcpu", dep, None, 0)
    async with raw_transaction(get_engine()) as conn:  # a write that nets to nothing still moves the version
        await apply_rollup_deltas(conn, {key: RollupDelta(Decimal("1"), Decimal("0"), Decimal("1"))})
        await apply_rollup_deltas(conn, {key: RollupDelta(Decimal("-1"), Decimal("0"), Decimal("-1"))})
    assert (await _versions(dep))["2042-01"] >= 3
    assert await _drafts_both_ways("2042-02", dep) == before
    await _remove_rollups("resource_id = 'vm-none'")  # not from an event: replay's tests must not meet it


async def test_two_writers_on_the_same_departments_and_months_never_deadlock_and_count_every_write(apps):
    departments = ("dep-2042-a", "dep-2042-b")
    hours = (datetime(2042, 3, 31, 10, tzinfo=UTC), datetime(2042, 4, 2, 1, tzinfo=UTC))  # March and April, local
    one = RollupDelta(Decimal("1"), Decimal("0.5"), Decimal("0"))

    def deltas(order):
        return {(hour, f"vm-{d}", "compute.vcpu", d, None, 0): one for d in order for hour in hours}

    async def writer(order, hold: float):
        async with raw_transaction(get_engine()) as conn:
            await apply_rollup_deltas(conn, deltas(order))
            await asyncio.sleep(hold)  # the other writer meets this one's row locks

    try:
        for _ in range(3):
            await asyncio.wait_for(asyncio.gather(writer(departments, 0.2), writer(departments[::-1], 0.2)), 30)
        for department in departments:
            assert await _versions(department) == {"2042-03": 6, "2042-04": 6}
        async with raw_connection(get_engine()) as conn:
            total = await conn.fetchval("SELECT sum(quantity) FROM usage_daily WHERE department_id = ANY($1::text[])",
                                        list(departments))
        assert total == 24  # 3 rounds × 2 writers × 2 hours × 2 departments
    finally:  # rows not from events: replay's tests must not meet them
        await _remove_rollups("department_id LIKE 'dep-2042-_'")


async def _remove_rollups(where: str) -> None:
    async with raw_transaction(get_engine()) as conn:
        for table in ("usage_hourly", *(rollup.table for rollup in COARSE_ROLLUPS)):
            if table != "usage_hourly" and "resource_id" in where:
                continue
            await conn.execute(f"DELETE FROM {table} WHERE {where}")


async def test_a_listed_draft_total_priced_from_daily_rows_is_the_drafts_own_total(apps, worker):
    # flat and tiered meters, a second card from mid-month (re-pricing both), a zero-quantity hour
    dep, vm = await department_using_a_vm(apps, worker, 2098, ("3.333", local(2098, 5, 2, 10)))
    ip = f"ip-{dep}"
    await rate_card(apps, local(2098, 5, 1), compute_vcpu="1.10", network_egress=tiers(("10", "1.00"), (None, "0.50")))
    await publish(apps, [
        lifecycle_event(ip, "activated", dep, local(2098, 5, 1), kind="ip"),
        usage_event(vm, "compute.vcpu", "0", local(2098, 5, 3, 10)),
        usage_event(vm, "compute.vcpu", "2.5", local(2098, 5, 20, 10)),
        usage_event(ip, "network.egress", "7", local(2098, 5, 4, 10)),
        usage_event(ip, "network.egress", "9", local(2098, 5, 21, 10)),
    ], worker)
    await rate_card(apps, local(2098, 5, 15), compute_vcpu="0.70", network_egress=tiers(("5", "2.00"), (None, "0.25")))
    listed = await apps["billing"].get("/v1/bills", params={"department": dep, "month": "2098-05"}, headers=FINANCE)
    (summary,) = listed.json()
    draft = await apps["billing"].get(f"/v1/bills/GM-2098-05-{dep}", headers=FINANCE)
    assert summary["total"] == draft.json()["total"] != "0.00"
    everyone = await apps["billing"].get("/v1/bills", params={"month": "2098-05"}, headers=FINANCE)
    assert {b["department_id"]: b["total"] for b in everyone.json()}[dep] == summary["total"]


async def test_open_months_with_usage_skip_the_closed_ones_wherever_they_lie(apps, worker):
    dep, _ = await department_using_a_vm(apps, worker, 2076, *(("1", local(2076, m, 2)) for m in (1, 2, 3, 4, 5)))
    for month in ("2076-01", "2076-02", "2076-04"):
        await close(apps, month, local(2076, 7, 1))
    before = await apps["billing"].get("/v1/bills", params={"department": dep}, headers=FINANCE)
    assert "2076-07" not in {b["period"] for b in before.json()}  # its open months remembered, without July
    adjusted = await apps["billing"].post("/v1/adjustments", headers=ADMIN, json={
        "department_id": dep, "amount": "3.00", "reason": "人工服务费", "month": "2076-07"})
    assert adjusted.status_code == 201, adjusted.text
    async with raw_connection(get_engine()) as conn:
        assert await bill_reads.open_periods_with_usage(conn, dep) == ["2076-03", "2076-05", "2076-07"]
        every = await bill_reads.open_periods_with_usage(conn)
    assert {"2076-03", "2076-05", "2076-07"} <= set(every) and not {"2076-01", "2076-02", "2076-04"} & set(every)
    response = await apps["billing"].get("/v1/bills", params={"department": dep}, headers=FINANCE)
    # (this year's: a month after another test's closed one lists a draft too, the VM being active then); July's
    # adjustment is a new row of an append-only table, so the remembered open months are not reused

    assert [(b["period"], b["status"]) for b in response.json() if b["period"].startswith("2076")] == [
        ("2076-01", "final"), ("2076-02", "final"), ("2076-03", "draft"), ("2076-04", "final"), ("2076-05", "draft"),
        ("2076-07", "draft")]
