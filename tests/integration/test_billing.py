"""Billing end to end over real Apache Kafka and PostgreSQL: usage → worker → rollups → bills, closes, late
changes, adjustments, budgets, isolation. Each test works in a year of its own (rate cards are global)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from services.billing.api import app as billing_app
from services.billing.api import billing_clock
from services.billing.closing import close_due_periods
from services.common.locks import AUTO_CLOSE_LOCK
from services.billing.background import run_billing_loop
from services.billing.domain.periods import closes_at
from services.common.db import get_engine, raw_connection
from services.common.periods import LOCAL_TZ
from services.demo.rate_cards import propose_and_approve
from tests.integration.support import ADMIN, FINANCE, PROVIDER, auth, lifecycle_event, post_events, usage_event, \
    wait_stored, wait_until

pytestmark = pytest.mark.usefixtures("worker")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def local(year, month, day, hour=0, minute=0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LOCAL_TZ)


async def department(apps, name="市财政局") -> str:
    department_id = new_id("dep")
    response = await apps["billing"].post("/v1/departments", json={"id": department_id, "name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return department_id


async def rate_card(apps, effective_from: datetime, **prices) -> dict:
    body = {"version": new_id("rc"), "effective_from": effective_from.isoformat(),
            "prices": {meter.replace("_", "."): price for meter, price in prices.items()}}
    response = await propose_and_approve(apps["billing"], body)
    assert response.status_code == 201, response.text
    return response.json()


async def department_using_a_vm(apps, worker, year: int, *used: tuple[str, datetime]) -> tuple[str, str]:
    """A department with a VM active from 1 January of ``year``, compute.vcpu at ¥1.00 a unit from then, and the
    VM's compute.vcpu usage, ``(quantity, start)`` each for an hour, stored. Returns (department, VM)."""
    dep = await department(apps)
    await rate_card(apps, local(year, 1, 1), compute_vcpu="1.00")
    vm = new_id("vm")
    await publish(apps, [lifecycle_event(vm, "activated", dep, local(year, 1, 1)),
                         *(usage_event(vm, "compute.vcpu", quantity, start) for quantity, start in used)], worker)
    return dep, vm


async def two_departments_with_usage(apps, worker, year: int) -> tuple[str, str]:
    """Two departments, each with a VM active from 1 January of ``year`` and compute.vcpu used on 2 January at
    ¥1.00 a unit: 1 unit for the first, 7 for the second. For the isolation tests."""
    mine, theirs = await department(apps), await department(apps, "市公安局")
    await rate_card(apps, local(year, 1, 1), compute_vcpu="1.00")
    vm_mine, vm_theirs = new_id("vm"), new_id("vm")
    await publish(apps, [lifecycle_event(vm_mine, "activated", mine, local(year, 1, 1)),
                         lifecycle_event(vm_theirs, "activated", theirs, local(year, 1, 1)),
                         usage_event(vm_mine, "compute.vcpu", "1", local(year, 1, 2)),
                         usage_event(vm_theirs, "compute.vcpu", "7", local(year, 1, 2))], worker)
    return mine, theirs


def tiers(*pairs) -> dict:
    return {"tiers": [{"up_to": up_to, "unit_price": price} for up_to, price in pairs]}


async def publish(apps, events, worker) -> None:
    response = await post_events(apps["metering"], events)
    assert response.status_code == 202, response.text
    await wait_stored(events, worker)


@contextmanager
def clock(instant: datetime):
    """Stand the billing API at ``instant`` (for closing periods in the future, where the tests live)."""
    billing_app.dependency_overrides[billing_clock] = lambda: instant
    try:
        yield
    finally:
        billing_app.dependency_overrides.pop(billing_clock, None)


async def get_bill(apps, bill_id: str, headers=FINANCE) -> dict:
    response = await apps["billing"].get(f"/v1/bills/{bill_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def close(apps, month: str, at: datetime) -> dict:
    with clock(at):
        response = await apps["billing"].post(f"/v1/periods/{month}/close", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def by_meter(bill: dict) -> dict:
    return {line["meter"]: line for line in bill["lines"]}


async def test_usage_at_2330_on_the_last_local_day_is_on_that_months_bill(apps, worker):
    dep = await department(apps)
    await rate_card(apps, local(2050, 1, 1), compute_vcpu="1.00")
    vm = new_id("vm")
    await publish(apps, [
        lifecycle_event(vm, "activated", dep, local(2050, 1, 1)),
        usage_event(vm, "compute.vcpu", "1", local(2050, 1, 31, 23, 30), local(2050, 2, 1)),  # 15:30 UTC
        usage_event(vm, "compute.vcpu", "2", local(2050, 2, 1, 0, 30), local(2050, 2, 1, 1)),
        usage_event(vm, "compute.vcpu", "4", local(2050, 1, 31, 23), local(2050, 2, 1, 1)),  # straddles: 2 + 2
    ], worker)
    january = await get_bill(apps, f"GM-2050-01-{dep}", auth("department", dep))
    february = await get_bill(apps, f"GM-2050-02-{dep}")
    assert (january["status"], january["period_start"], january["total"]) == ("draft", "2050-01-01T00:00:00+08:00",
                                                                              "3.00")
    assert by_meter(january)["compute.vcpu"]["quantity"] == "3"
    assert by_meter(february)["compute.vcpu"]["quantity"] == "4" and february["total"] == "4.00"
    assert january["content_hash"] is None and january["department_name"] == "市财政局"
    csv = await apps["billing"].get(f"/v1/bills/GM-2050-01-{dep}.csv", headers=FINANCE)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.content.startswith("\ufeff账单编号".encode()) and "云主机vCPU" in csv.content.decode()


async def test_graduated_prices_follow_the_months_quantity_across_a_mid_month_price_change(apps, worker):
    dep = await department(apps)
    await rate_card(apps, local(2051, 3, 1), compute_vcpu="0.10",
                    network_egress=tiers(("100", "0.80"), ("250", "0.65"), (None, "0.50")))
    ip = new_id("ip")
    await publish(apps, [
        lifecycle_event(ip, "activated", dep, local(2051, 3, 1), system="门户网站", kind="ip"),
        usage_event(ip, "network.egress", "60", local(2051, 3, 5, 10)),
        usage_event(ip, "compute.vcpu", "10", local(2051, 3, 5, 10)),
        lifecycle_event(ip, "changed", dep, local(2051, 3, 8), system="政务服务平台", kind="ip"),
        usage_event(ip, "network.egress", "90", local(2051, 3, 10, 10)),
        usage_event(ip, "network.egress", "100", local(2051, 3, 20, 10)),
        usage_event(ip, "compute.vcpu", "5", local(2051, 3, 20, 10)),
    ], worker)
    # the new card comes after the usage it prices: stored usage is re-rated from its instant
    card = await rate_card(apps, local(2051, 3, 16), compute_vcpu="0.20",
                           network_egress=tiers(("200", "0.70"), (None, "0.30")))
    bill = await get_bill(apps, f"GM-2051-03-{dep}")
    egress, vcpu = by_meter(bill)["network.egress"], by_meter(bill)["compute.vcpu"]
    # before the 16th: 100 × 0.80 + 50 × 0.65; after, from position 150 on the new tiers: 50 × 0.70 + 50 × 0.30
    assert (egress["quantity"], egress["amount"]) == ("250", "162.50")
    assert [(p["rate_card"], [t["quantity"] for t in p["tiers"]]) for p in egress["prices"]] == [
        (egress["prices"][0]["rate_card"], ["100", "50", "0"]), (card["version"], ["50", "50"])]
    # 门户网站: 60 × 0.80 = 48; 政务服务平台: 40 × 0.80 + 50 × 0.65 + 50.00 = 114.50
    assert [(s["system"], s["amount"]) for s in egress["systems"]] == [("政务服务平台", "114.50"), ("门户网站", "48.00")]
    assert (vcpu["amount"], [p["unit_price"] for p in vcpu["prices"]]) == ("2.00", ["0.10", "0.20"])
    assert bill["total"] == "164.50"


async def test_a_closed_bill_never_changes_and_late_usage_is_adjusted_once_on_the_next_bill(apps, worker):
    dep, idle = await department(apps), await department(apps, "市档案馆")
    await rate_card(apps, local(2052, 1, 1), compute_vcpu="1.00")
    vm, spare = new_id("vm"), new_id("vm")
    await publish(apps, [
        lifecycle_event(vm, "activated", dep, local(2052, 1, 1)),
        lifecycle_event(spare, "activated", idle, local(2052, 1, 3)),  # active, never used
        usage_event(vm, "compute.vcpu", "5", local(2052, 1, 10)),
    ], worker)

    with clock(local(2052, 1, 31, 23, 59)):
        early = await apps["billing"].post("/v1/periods/2052-01/close", headers=ADMIN)
    assert early.status_code == 409 and early.json()["detail"].startswith("period: 2052-01 has not ended")
    closed = await close(apps, "2052-01", local(2052, 2, 1))
    issued = {b["department_id"]: (b["total"], b["content_hash"]) for b in closed["bills"]}
    assert issued[dep][0] == "5.00" and issued[idle][0] == "0.00"  # zero usage, active resource: a bill
    assert await close(apps, "2052-01", local(2052, 2, 2)) == closed  # closing again: same outcome

    final = await apps["billing"].get(f"/v1/bills/GM-2052-01-{dep}", headers=FINANCE)
    final_csv = await apps["billing"].get(f"/v1/bills/GM-2052-01-{dep}.csv", headers=FINANCE)
    document = final.json()
    assert (document["status"], document["total"], document["content_hash"]) == ("final", "5.00", issued[dep][1])
    assert final.headers["etag"] == f'"{issued[dep][1]}"'

    # usage for January arrives after the close, with February's
    await publish(apps, [usage_event(vm, "compute.vcpu", "2", local(2052, 1, 20)),
                         usage_event(vm, "compute.vcpu", "3", local(2052, 2, 5))], worker)
    again = await apps["billing"].get(f"/v1/bills/GM-2052-01-{dep}", headers=FINANCE)
    again_csv = await apps["billing"].get(f"/v1/bills/GM-2052-01-{dep}.csv", headers=FINANCE)
    assert again.content == final.content and again_csv.content == final_csv.content
    february = await get_bill(apps, f"GM-2052-02-{dep}")
    (late,) = february["adjustments"]
    assert (late["kind"], late["original_period"], late["meter"], late["quantity"], late["amount"]) == (
        "late", "2052-01", "compute.vcpu", "2", "2.00")
    assert "2052-01" in late["reason"]
    assert (february["usage_total"], february["adjustments_total"], february["total"]) == ("3.00", "2.00", "5.00")

    await close(apps, "2052-02", local(2052, 3, 1))
    assert (await get_bill(apps, f"GM-2052-02-{dep}"))["total"] == "5.00"
    march = await get_bill(apps, f"GM-2052-03-{dep}")
    assert march["adjustments"] == [] and march["total"] == "0.00"  # frozen on February's: not billed twice
    await publish(apps, [usage_event(vm, "compute.vcpu", "1", local(2052, 1, 25))], worker)
    march = await get_bill(apps, f"GM-2052-03-{dep}")
    assert [(a["original_period"], a["amount"]) for a in march["adjustments"]] == [("2052-01", "1.00")]
    listed = await apps["billing"].get("/v1/bills", params={"department": dep}, headers=FINANCE)
    # the VM stays active, so a later month that another test closes adds a draft: only this test's months count
    assert [(b["period"], b["status"], b["total"]) for b in listed.json() if b["period"] <= "2052-03"] == [
        ("2052-01", "final", "5.00"), ("2052-02", "final", "5.00"), ("2052-03", "draft", "1.00")]
    periods = {p["period"]: p for p in (await apps["billing"].get("/v1/periods", headers=FINANCE)).json()}
    assert periods["2052-01"]["status"] == "closed" and periods["2052-03"]["status"] == "open"
    assert periods["2052-03"]["closes_at"] == "2052-04-04T00:00:00+08:00"


async def test_a_bill_line_of_exactly_half_a_fen_rounds_up_on_the_draft_and_the_final_bill(apps, worker):
    # 0.125 + 2.2 vCPU-hours at ¥1.00 = 2.325 exactly: half-up gives 2.33 (half-even would give 2.32)
    dep, _ = await department_using_a_vm(apps, worker, 2064, ("0.125", local(2064, 1, 5)), ("2.2", local(2064, 1, 6)))
    draft = await get_bill(apps, f"GM-2064-01-{dep}")
    assert ([(line["amount"], line["systems"][0]["amount"]) for line in draft["lines"]], draft["total"]) == (
        [("2.33", "2.33")], "2.33")
    await close(apps, "2064-01", local(2064, 2, 1))
    assert (await get_bill(apps, f"GM-2064-01-{dep}"))["total"] == "2.33"


async def test_late_ownership_and_price_changes_to_a_closed_month_are_adjusted_for_each_department(apps, worker):
    first, second = await department(apps), await department(apps, "市教育局")
    await rate_card(apps, local(2053, 1, 1), compute_vcpu="1.00",
                    network_egress=tiers(("100", "1.00"), (None, "0.50")))
    vm = new_id("vm")
    await publish(apps, [
        lifecycle_event(vm, "activated", first, local(2053, 1, 1)),
        usage_event(vm, "compute.vcpu", "10", local(2053, 1, 15)),
        usage_event(vm, "network.egress", "150", local(2053, 1, 15)),
    ], worker)
    closed = await close(apps, "2053-01", local(2053, 2, 1))
    issued = {b["department_id"]: b["total"] for b in closed["bills"]}
    assert issued[first] == "135.00" and second not in issued  # 10 + 100 × 1.00 + 50 × 0.50

    # a late lifecycle event: the resource belonged to the second department from 10 January
    await publish(apps, [lifecycle_event(vm, "changed", second, local(2053, 1, 10), system="办公自动化系统")], worker)
    gone, came = await get_bill(apps, f"GM-2053-02-{first}"), await get_bill(apps, f"GM-2053-02-{second}")
    assert sorted((a["meter"], a["quantity"], a["amount"]) for a in gone["adjustments"]) == [
        ("compute.vcpu", "-10", "-10.00"), ("network.egress", "-150", "-125.00")]
    assert sorted((a["meter"], a["amount"]) for a in came["adjustments"]) == [
        ("compute.vcpu", "10.00"), ("network.egress", "125.00")]
    # a new card for part of January re-prices the tiers (the rollups' quantities do not change)
    card = await rate_card(apps, local(2053, 1, 5), compute_vcpu="1.00",
                           network_egress=tiers(("100", "0.50"), (None, "0.25")))
    came = await get_bill(apps, f"GM-2053-02-{second}")
    egress = [a for a in came["adjustments"] if a["meter"] == "network.egress"]
    assert [a["amount"] for a in egress] == ["62.50"]
    assert all(a["original_period"] == "2053-01" for a in came["adjustments"])
    assert card["version"] not in egress[0]["reason"]  # the quantity moved too: reason is the ownership change


async def test_a_new_card_alone_repricing_a_closed_month_is_adjusted_naming_it(apps, worker):
    dep = await department(apps)
    await rate_card(apps, local(2054, 1, 1), network_egress=tiers(("100", "1.00"), (None, "0.50")))
    ip = new_id("ip")
    await publish(apps, [lifecycle_event(ip, "activated", dep, local(2054, 1, 1), kind="ip"),
                         usage_event(ip, "network.egress", "150", local(2054, 1, 10))], worker)
    await close(apps, "2054-01", local(2054, 2, 1))
    card = await rate_card(apps, local(2054, 1, 5), network_egress=tiers(("100", "0.50"), (None, "0.25")))
    february = await get_bill(apps, f"GM-2054-02-{dep}")
    (late,) = february["adjustments"]
    assert (late["quantity"], late["amount"]) == ("0", "-62.50") and card["version"] in late["reason"]


async def test_manual_adjustments_are_audited_on_the_open_bill_and_refused_on_a_closed_period(apps, worker):
    dep, _ = await department_using_a_vm(apps, worker, 2055, ("50", local(2055, 1, 3)))
    body = {"department_id": dep, "amount": "-20.00", "reason": "服务中断补偿", "reference": "INC-2055-1",
            "month": "2055-01"}
    posted = await apps["billing"].post("/v1/adjustments", json=body, headers=ADMIN)
    assert posted.status_code == 201, posted.text
    assert (posted.json()["amount"], posted.json()["created_by"], posted.json()["period"]) == ("-20.00", "admin",
                                                                                              "2055-01")
    charge = await apps["billing"].post("/v1/adjustments", headers=ADMIN, json={
        "department_id": dep, "amount": "5.5", "reason": "人工服务费", "month": "2055-01"})
    assert charge.status_code == 201
    bill = await get_bill(apps, f"GM-2055-01-{dep}", auth("department", dep))
    manual = [(a["kind"], a["amount"], a["reason"], a["reference"], a["created_by"]) for a in bill["adjustments"]]
    assert manual == [("manual", "-20.00", "服务中断补偿", "INC-2055-1", "admin"), ("manual", "5.50", "人工服务费", None,
                                                                                  "admin")]
    assert (bill["usage_total"], bill["adjustments_total"], bill["total"]) == ("50.00", "-14.50", "35.50")
    audit = await apps["billing"].get("/v1/adjustments", params={"department": dep}, headers=FINANCE)
    assert [(a["reason"], a["created_by"]) for a in audit.json()] == [("服务中断补偿", "admin"), ("人工服务费", "admin")]
    assert all(a["created_at"] and a["ledger_seq"] for a in audit.json())

    for bad, field in [({**body, "amount": "1.234"}, "amount"), ({**body, "amount": "0"}, "amount"),
                       ({**body, "reason": ""}, "reason"), ({**body, "month": "2055-13"}, "month")]:
        response = await apps["billing"].post("/v1/adjustments", json=bad, headers=ADMIN)
        assert response.status_code == 422 and field in str(response.json()["detail"][0]["loc"]), response.text
    unknown = await apps["billing"].post("/v1/adjustments", json={**body, "department_id": "nobody"}, headers=ADMIN)
    assert unknown.status_code == 422 and unknown.json()["detail"].startswith("department_id:")
    assert (await apps["billing"].post("/v1/adjustments", json=body, headers=FINANCE)).status_code == 403

    await close(apps, "2055-01", local(2055, 2, 1))
    refused = await apps["billing"].post("/v1/adjustments", json=body, headers=ADMIN)
    assert refused.status_code == 409 and refused.json()["detail"].startswith("month: period 2055-01 is closed")
    assert (await get_bill(apps, f"GM-2055-01-{dep}"))["total"] == "35.50"


async def alerts_on_topic(settings, department_id: str, expected: int) -> list[dict]:
    consumer = AIOKafkaConsumer(settings.alerts_topic, bootstrap_servers=settings.kafka_bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: list[dict] = []
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for messages in batch.values():
                found += [m for m in (orjson.loads(x.value) for x in messages) if m["department_id"] == department_id]
            if len(found) >= expected and not batch:
                break
    finally:
        await consumer.stop()
    return found


async def test_budget_alerts_at_50_80_100_percent_and_on_a_projected_overrun_are_raised_once(apps, worker, settings):
    dep, other = await department(apps), await department(apps, "市民政局")
    await rate_card(apps, local(2056, 1, 1), compute_vcpu="1.00")
    vm = new_id("vm")
    hourly = [usage_event(vm, "compute.vcpu", "1.25", local(2056, 1, 1) + timedelta(hours=h)) for h in range(48)]
    await publish(apps, [lifecycle_event(vm, "activated", dep, local(2056, 1, 1)), *hourly], worker)

    async def kinds() -> list[str]:
        found = await apps["billing"].get("/v1/alerts", params={"year": 2056}, headers=auth("department", dep))
        return sorted(a["kind"] for a in found.json())

    put = await apps["billing"].put(f"/v1/budgets/{dep}/2056", json={"amount": "100.00"}, headers=FINANCE)
    assert put.status_code == 200, put.text
    assert put.json()["spend"] == "60.00"
    # 60.00 over January's first 48 hours: 60 × 744 / 48 = 930.00 a month, × 12 months = 11160.00
    assert sorted((a["kind"], a["projected"]) for a in put.json()["alerts"]) == [
        ("projected_overrun", "11160.00"), ("spend_50", None)]
    await publish(apps, [usage_event(vm, "compute.vcpu", "25", local(2056, 1, 3))], worker)
    await apps["billing"].put(f"/v1/budgets/{dep}/2056", json={"amount": "100.00"}, headers=FINANCE)
    assert await kinds() == ["projected_overrun", "spend_50", "spend_80"]
    await publish(apps, [usage_event(vm, "compute.vcpu", "20", local(2056, 1, 4))], worker)
    third = await apps["billing"].put(f"/v1/budgets/{dep}/2056", json={"amount": "100.00"}, headers=ADMIN)
    assert third.json()["spend"] == "105.00"
    assert (await apps["billing"].put(f"/v1/budgets/{dep}/2056", json={"amount": "100.00"},
                                      headers=FINANCE)).json()["alerts"] == []

    mine = await apps["billing"].get("/v1/alerts", headers=auth("department", dep))
    assert sorted(a["kind"] for a in mine.json()) == ["projected_overrun", "spend_100", "spend_50", "spend_80"]
    assert all(a["published_at"] for a in mine.json())
    assert (await apps["billing"].get("/v1/alerts", params={"department": dep},
                                      headers=auth("department", other))).status_code == 403
    on_topic = await alerts_on_topic(settings, dep, 4)
    assert sorted(a["kind"] for a in on_topic) == ["projected_overrun", "spend_100", "spend_50", "spend_80"]
    budgets = await apps["billing"].get("/v1/budgets", params={"year": 2056}, headers=auth("department", dep))
    assert [(b["department_id"], b["amount"], b["spend"]) for b in budgets.json()] == [(dep, "100.00", "105.00")]
    for bad in ({"amount": "-5"}, {"amount": "1.001"}, {}):
        assert (await apps["billing"].put(f"/v1/budgets/{dep}/2056", json=bad, headers=FINANCE)).status_code == 422
    unknown = await apps["billing"].put("/v1/budgets/nobody/2056", json={"amount": "1"}, headers=FINANCE)
    assert unknown.status_code == 422 and unknown.json()["detail"].startswith("department_id:")
    assert (await apps["billing"].put(f"/v1/budgets/{dep}/2056", json={"amount": "1"},
                                      headers=auth("department", dep))).status_code == 403


async def test_budget_alerts_across_several_months_count_final_bills_and_drafts_and_project_each_month(apps,
                                                                                                     worker):
    """A year in four months (2077): January and February closed (final bills), March open with a late January
    adjustment, then April. Figures worked by hand; ¥1.00 a vCPU unit, budget ¥1,000."""
    dep = await department(apps)
    await rate_card(apps, local(2077, 1, 1), compute_vcpu="1.00")
    vm = new_id("vm")

    def hours(month: int, count: int, quantity: str) -> list[dict]:
        return [usage_event(vm, "compute.vcpu", quantity, local(2077, month, 1) + timedelta(hours=h))
                for h in range(count)]

    async def put_budget() -> list[tuple]:
        response = await apps["billing"].put(f"/v1/budgets/{dep}/2077", json={"amount": "1000.00"}, headers=FINANCE)
        assert response.status_code == 200, response.text
        return response.json()["spend"], sorted((a["kind"], a["period"], a["projected"]) for a in
                                                response.json()["alerts"])

    await publish(apps, [lifecycle_event(vm, "activated", dep, local(2077, 1, 1)), *hours(1, 24, "1")], worker)
    # January: 24.00 over 24 of 744 hours → 744.00 a month; × 12 months = 8928.00
    assert await put_budget() == ("24.00", [("projected_overrun", "2077-01", "8928.00")])
    await close(apps, "2077-01", local(2077, 2, 1))
    await publish(apps, hours(2, 48, "5"), worker)
    # February: 240.00 over 48 of 672 hours → 3360.00 a month; 24.00 (January, final) + 3360.00 × 11 = 36984.00
    assert await put_budget() == ("264.00", [("projected_overrun", "2077-02", "36984.00")])
    await close(apps, "2077-02", local(2077, 3, 1))
    await publish(apps, [*hours(3, 24, "12.5"), usage_event(vm, "compute.vcpu", "10", local(2077, 1, 20))], worker)
    # March: 300.00 over 24 of 744 hours → 9300.00 a month, and January's late 10.00 on March's bill:
    # spend 24 + 240 + 310 = 574.00 (50 % reached); projected 264.00 + 10.00 + 9300.00 × 10 = 93274.00
    assert await put_budget() == ("574.00", [("projected_overrun", "2077-03", "93274.00"), ("spend_50", None, None)])
    assert await put_budget() == ("574.00", [])  # stored once: nothing new
    await publish(apps, hours(4, 24, "10"), worker)
    # April: 240.00 over 24 of 720 hours → 7200.00 a month; spend 814.00 (80 %); 574.00 + 7200.00 × 9 = 65374.00
    assert await put_budget() == ("814.00", [("projected_overrun", "2077-04", "65374.00"), ("spend_80", None, None)])
    alerts = await apps["billing"].get("/v1/alerts", params={"year": 2077}, headers=auth("department", dep))
    assert sorted((a["kind"], a["period"]) for a in alerts.json()) == [
        ("projected_overrun", "2077-01"), ("projected_overrun", "2077-02"), ("projected_overrun", "2077-03"),
        ("projected_overrun", "2077-04"), ("spend_50", None), ("spend_80", None)]


async def test_a_department_reads_only_its_own_bills_on_every_endpoint(apps, worker):
    mine, theirs = await two_departments_with_usage(apps, worker, 2057)
    token, billing = auth("department", mine), apps["billing"]

    async def check_isolation(status: str):
        listed = await billing.get("/v1/bills", params={"month": "2057-01"}, headers=token)
        assert [(b["department_id"], b["status"]) for b in listed.json()] == [(mine, status)]
        everyone = await billing.get("/v1/bills", params={"month": "2057-01"}, headers=FINANCE)
        assert {mine, theirs} <= {b["department_id"] for b in everyone.json()}
        assert (await billing.get(f"/v1/bills/GM-2057-01-{mine}", headers=token)).status_code == 200
        forbidden = [
            billing.get("/v1/bills", params={"month": "2057-01", "department": theirs}, headers=token),
            billing.get(f"/v1/bills/GM-2057-01-{theirs}", headers=token),
            billing.get(f"/v1/bills/GM-2057-01-{theirs}.csv", headers=token),
            billing.get("/v1/adjustments", params={"department": theirs}, headers=token),
            billing.get("/v1/budgets", params={"department": theirs}, headers=token),
            billing.get("/v1/alerts", params={"department": theirs}, headers=token),
            billing.post("/v1/periods/2057-01/close", headers=token),
            billing.post("/v1/adjustments", json={"department_id": mine, "amount": "-1", "reason": "x"}, headers=token),
            billing.get("/v1/ledger/verify", headers=token),
            billing.get(f"/v1/bills/GM-2057-01-{mine}", headers=PROVIDER),
        ]
        for response in await asyncio.gather(*forbidden):
            assert response.status_code == 403, response.text
        assert (await billing.get(f"/v1/bills/GM-2057-01-{mine}")).status_code == 401

    await check_isolation("draft")
    await close(apps, "2057-01", local(2057, 2, 1))
    await check_isolation("final")


async def auto_close(settings, now: datetime, only: set[str]):
    """One auto-close round at ``now``, retried while another closer (the API's own background round) holds the
    closers' lock: waits on that condition with a generous deadline, not on a count of short sleeps."""
    async def round_done():
        outcome = await close_due_periods(get_engine(), now, settings.close_grace_days, only=only)
        return None if outcome is None else (outcome,)

    (outcome,) = await wait_until(round_done, timeout=120)
    return outcome


async def test_a_department_sees_only_its_own_figures_of_the_closed_periods(apps, worker):
    mine, theirs = await two_departments_with_usage(apps, worker, 2063)
    await close(apps, "2063-01", local(2063, 2, 1))

    async def january(headers) -> dict:
        response = await apps["billing"].get("/v1/periods", headers=headers)
        assert response.status_code == 200, response.text
        return {p["period"]: p for p in response.json()}["2063-01"]

    city = await january(FINANCE)
    assert city["bills"] >= 2 and city["total"] == "8.00"
    for dep, total in ((mine, "1.00"), (theirs, "7.00")):
        own = await january(auth("department", dep))
        assert (own["status"], own["bills"], own["total"]) == ("closed", 1, total)
    without_a_bill = await january(auth("department", await department(apps, "市档案馆")))
    assert (without_a_bill["bills"], without_a_bill["total"]) == (0, "0.00")


async def test_a_month_in_other_digits_is_refused_and_cannot_open_a_phantom_period(apps, worker):
    dep, _ = await department_using_a_vm(apps, worker, 2065, ("2", local(2065, 1, 5)))
    await close(apps, "2065-01", local(2065, 2, 1))
    body = {"department_id": dep, "amount": "-5.00", "reason": "补偿"}
    closed = await apps["billing"].post("/v1/adjustments", json={**body, "month": "2065-01"}, headers=ADMIN)
    assert closed.status_code == 409, closed.text
    # full-width, Arabic-Indic and other Unicode digits, a trailing newline, a sign, an underscore: not YYYY-MM
    for spelling in ("２０６５-01", "2065-０1", "٢٠٦٥-01", "2065-01\n", "+206-01", "2_06-01", " 2065-01"):
        posted = await apps["billing"].post("/v1/adjustments", json={**body, "month": spelling}, headers=ADMIN)
        assert posted.status_code == 422 and "month" in str(posted.json()["detail"][0]["loc"]), (spelling, posted.text)
        for response in (
            await apps["billing"].get("/v1/bills", params={"month": spelling}, headers=FINANCE),
            await apps["billing"].get("/v1/adjustments", params={"month": spelling}, headers=FINANCE),
            await apps["billing"].post(f"/v1/periods/{quote(spelling)}/close", headers=ADMIN),
        ):
            assert response.status_code in (404, 422), (spelling, response.text)
            assert response.status_code == 404 or response.json()["detail"].startswith("month:"), response.text
    assert (await apps["billing"].get("/v1/bills/GM-２０６５-01-" + dep, headers=FINANCE)).status_code == 404
    periods = [p["period"] for p in (await apps["billing"].get("/v1/periods", headers=FINANCE)).json()]
    assert [p for p in periods if not p.isascii() or p.endswith("65-01")] == ["2065-01"]
    assert [a["period"] for a in (await apps["billing"].get(
        "/v1/adjustments", params={"department": dep}, headers=FINANCE)).json()] == []
    assert (await get_bill(apps, f"GM-2065-01-{dep}"))["total"] == "2.00"


async def test_one_round_closes_a_backlog_of_due_months_even_those_without_usage(apps, worker, settings):
    dep, _ = await department_using_a_vm(apps, worker, 2062, ("3", local(2062, 1, 9)))
    backlog = {"2062-01", "2062-02", "2062-03", "2062-04"}  # only January has usage; the VM stays active
    outcome = await auto_close(settings, local(2062, 5, 10), backlog)
    assert [(c.period, c.total) for c in outcome] == [
        ("2062-01", 3), ("2062-02", 0), ("2062-03", 0), ("2062-04", 0)]


async def test_periods_close_automatically_after_the_grace_once_across_instances(apps, worker, settings, caplog):
    dep, _ = await department_using_a_vm(apps, worker, 2060, ("3", local(2060, 1, 9)), ("4", local(2060, 2, 9)))
    engine = get_engine()
    due = closes_at("2060-01", settings.close_grace_days)
    assert due == local(2060, 2, 4)  # default grace: 3 local days after the month ends
    assert await auto_close(settings, due - timedelta(seconds=1), {"2060-01"}) == []
    async with raw_connection(engine) as conn:  # another instance is closing: this one leaves it
        await conn.execute("SELECT pg_advisory_lock($1)", AUTO_CLOSE_LOCK)
        try:
            assert await close_due_periods(engine, due, settings.close_grace_days, only={"2060-01"}) is None
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", AUTO_CLOSE_LOCK)
    (closed,) = await auto_close(settings, due, {"2060-01"})
    assert (closed.period, closed.closed_by, closed.total, closed.closed_now) == ("2060-01", "auto-close", 3, True)

    # two billing instances' background loops at once, both past February's grace: exactly one of them closes it,
    # and neither round fails (the loop logs a failed round and carries on, so the log is where a failure shows)
    caplog.set_level(logging.INFO, logger="services.billing")
    instances = ("billing-a", "billing-b")
    loops = [asyncio.create_task(run_billing_loop(engine, settings, None, clock=lambda: local(2060, 3, 5),
                                                  interval=0.05, only={"2060-02"}, instance=name))
             for name in instances]
    try:
        async def february_closed():
            return (await get_bill(apps, f"GM-2060-02-{dep}"))["status"] == "final"

        await wait_until(february_closed, timeout=120)
        await asyncio.sleep(0.5)  # ten more rounds of each loop past the close: a second close would show now
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failures == [], [r.getMessage() for r in failures]
    closes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("period 2060-02 closed automatically")]
    assert len(closes) == 1, closes
    async with raw_connection(engine) as conn:
        row = await conn.fetchrow("SELECT closed_by, closed_by_instance, total FROM billing_periods WHERE period = $1",
                                  "2060-02")
    assert row["closed_by"] == "auto-close" and row["closed_by_instance"] in instances and row["total"] == 4
    assert closes[0].startswith(f"period 2060-02 closed automatically by {row['closed_by_instance']}: ")
    periods = {p["period"]: p for p in (await apps["billing"].get("/v1/periods", headers=FINANCE)).json()}
    assert (periods["2060-02"]["status"], periods["2060-02"]["closed_by"], periods["2060-02"]["total"]) == (
        "closed", "auto-close", "4.00")


async def test_bad_billing_requests_get_a_clear_error_naming_the_field(apps):
    billing = apps["billing"]
    cases = [
        (billing.get("/v1/bills", params={"month": "2050-13"}, headers=FINANCE), 422, "month:"),
        (billing.get("/v1/bills/INVOICE-7", headers=FINANCE), 404, "bill_id:"),
        (billing.get("/v1/bills/GM-2050-01-nobody-at-all", headers=FINANCE), 404, "bill_id:"),
        (billing.post("/v1/periods/2050-1/close", headers=ADMIN), 422, "month:"),
        (billing.get("/v1/adjustments", params={"month": "May"}, headers=FINANCE), 422, "month:"),
    ]
    for request, status, prefix in cases:
        response = await request
        assert response.status_code == status, response.text
        assert response.json()["detail"].startswith(prefix), response.text
    with clock(datetime(2026, 11, 1, tzinfo=UTC)):
        future = await billing.post("/v1/periods/2099-01/close", headers=ADMIN)
    assert future.status_code == 409 and "has not ended" in future.json()["detail"]
