"""Reports end to end over real Apache Kafka and PostgreSQL: a known two months of usage and a month of
utilisation go through the pipeline, and every report's figures are checked exactly.

Era: 2071 (rate cards are global and effective-dated; other tests live in other years). Local dates."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.common.periods import LOCAL_TZ
from services.demo.rate_cards import propose_and_approve
from tests.integration.conftest import REPO
from tests.integration.support import ADMIN, FINANCE, PROVIDER, SOURCE, auth, dead_letters, lifecycle_event, \
    post_events, usage_event, wait_stored, wait_until

pytestmark = pytest.mark.usefixtures("worker")
D = Decimal
PRICES = {"compute.vcpu": "0.10", "compute.memory": "0.02", "storage.block": "0.001",
          "network.public_ip": "0.03", "network.egress": "0.50"}
FEB, MAR = date(2071, 2, 1), date(2071, 3, 1)
DAYS = [FEB + timedelta(days=i) for i in range(59)]  # 2071-02-01 … 2071-03-31
SPIKE, NORMAL = date(2071, 3, 20), date(2071, 3, 19)
RUN = uuid.uuid4().hex[:6]
A, B = f"rep-a-{RUN}", f"rep-b-{RUN}"
VM_A1, VM_A2, VOL_A, IP_A, VM_B1, ORPHAN = (f"{p}-{RUN}" for p in ("vma1", "vma2", "vola", "ipa", "vmb1", "orphan"))
GOV, OA, BIZ = "政务服务平台", "办公自动化系统", "业务管理系统"


def local(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=LOCAL_TZ)


def fen(value: Decimal) -> str:
    return f"{value.quantize(D('0.01'), rounding=ROUND_HALF_UP)}"


def pct(value: Decimal, step: str = "0.1") -> str:
    return f"{value.quantize(D(step), rounding=ROUND_HALF_UP)}"


def utilization_event(resource: str, cpu, memory, start: datetime, end: datetime) -> dict:
    return {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": SOURCE, "type": "gov.cloud.utilization.v1",
        "subject": resource, "time": end.isoformat(),
        "data": {"cpu_percent": str(cpu), "memory_percent": str(memory), "start": start.isoformat(),
                 "end": end.isoformat()},
    }


def vm_b1_vcpu(day: date) -> Decimal:
    """Department B's vCPU-hours per day: 96, 97, 98, … and a spike of 288 on 2071-03-20."""
    return D(288) if day == SPIKE else D(96 + DAYS.index(day) % 3)


def egress(day: date) -> Decimal:
    return D("1.333") if day == date(2071, 3, 10) else D(2)


def daily_usage(day: date) -> dict[tuple[str, str], Decimal]:
    return {
        (VM_A1, "compute.vcpu"): D(8 * 24), (VM_A1, "compute.memory"): D(32 * 24),
        (VM_A2, "compute.vcpu"): D(4 * 24), (VM_A2, "compute.memory"): D(16 * 24),
        (VOL_A, "storage.block"): D(500 * 24),
        (IP_A, "network.public_ip"): D(24), (IP_A, "network.egress"): egress(day),
        (VM_B1, "compute.vcpu"): vm_b1_vcpu(day), (VM_B1, "compute.memory"): D(8 * 24),
    }


def cost(resources: set[str], days: list[date], meter: str | None = None) -> Decimal:
    return sum((q * D(PRICES[m]) for day in days for (r, m), q in daily_usage(day).items()
                if r in resources and (meter is None or m == meter)), D(0))


def quantity(resources: set[str], days: list[date], meter: str) -> Decimal:
    return sum((q for day in days for (r, m), q in daily_usage(day).items() if r in resources and m == meter), D(0))


FEB_DAYS, MAR_DAYS = DAYS[:28], DAYS[28:]
GOV_A, OA_A, BIZ_B = {VM_A1, VM_A2, IP_A}, {VOL_A}, {VM_B1}


@pytest.fixture(scope="module")
async def seeded(apps, worker):
    for department, name in ((A, "市财政局"), (B, "市公安局")):
        response = await apps["billing"].post("/v1/departments", json={"id": department, "name": name}, headers=ADMIN)
        assert response.status_code == 201, response.text
    card = {"version": f"rep-{RUN}", "effective_from": local(date(2071, 1, 1)).isoformat(), "currency": "CNY",
            "prices": PRICES}
    assert (await propose_and_approve(apps["billing"], card)).status_code == 201
    since = local(date(2071, 1, 1))
    events = [
        lifecycle_event(VM_A1, "activated", A, since, system=GOV, spec={"vcpu": 8, "memory_gib": 32}),
        lifecycle_event(VM_A2, "activated", A, since, system=GOV, spec={"vcpu": 4, "memory_gib": 16}),
        lifecycle_event(VOL_A, "activated", A, since, system=OA, kind="volume", spec={"size_gib": 500}),
        lifecycle_event(IP_A, "activated", A, since, system=GOV, kind="ip", spec={"attached_to": VM_A1}),
        lifecycle_event(VM_B1, "activated", B, since, system=BIZ, spec={"vcpu": 4, "memory_gib": 8}),
    ]
    for day in DAYS:
        for (resource, meter), q in daily_usage(day).items():
            events.append(usage_event(resource, meter, q, local(day), local(day + timedelta(days=1))))
    for day in MAR_DAYS:
        events += [
            utilization_event(VM_A1, 6, 25, local(day), local(day, 12)),
            utilization_event(VM_A1, 14, 25, local(day, 12), local(day + timedelta(days=1))),
            utilization_event(VM_A2, 1, 10, local(day), local(day + timedelta(days=1))),
            utilization_event(VM_B1, 70, 60, local(day), local(day + timedelta(days=1))),
        ]
    orphan = usage_event(ORPHAN, "compute.vcpu", 10, local(date(2071, 3, 5), 9))
    events.append(orphan)
    response = await post_events(apps["metering"], events)
    assert response.status_code == 202 and response.json()["accepted"] == len(events), response.text
    await wait_stored(events, worker)
    # two dead letters dated March 2071: a conflicting duplicate and an invalid event produced straight to Kafka
    conflict = dict(orphan, data=dict(orphan["data"], quantity="11"))
    invalid = usage_event(ORPHAN, "compute.cpu", 1, local(date(2071, 3, 6)))
    marker = usage_event(ORPHAN, "compute.vcpu", 0, local(date(2071, 3, 7)))
    from services.common.config import get_settings

    producer = AIOKafkaProducer(bootstrap_servers=get_settings().kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(get_settings().events_topic, orjson.dumps([conflict, invalid, marker]))
    finally:
        await producer.stop()
    await wait_stored([marker], worker)
    await wait_until(lambda: dead_letters(event_id=invalid["id"]), worker=worker)
    return {"orphan": orphan}


async def test_monthly_utilization_report_has_exact_figures_per_department_and_system(apps, seeded):
    response = await apps["query"].get("/v1/reports/utilization", params={"period": "month", "start": "2071-03-01"},
                                       headers=FINANCE)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["start"], report["end"], report["previous_start"]) == ("2071-03-01", "2071-04-01", "2071-02-01")
    rows = {(r["department_id"], r["system"]): r for r in report["rows"] if r["department_id"] in (A, B)}
    assert set(rows) == {(A, GOV), (A, OA), (B, BIZ)}

    gov = rows[(A, GOV)]
    assert gov["department_name"] == "市财政局" and gov["resources"] == 3
    assert gov["allocated"] == {"vcpu": "12", "memory_gib": "48"}
    now, before = cost(GOV_A, MAR_DAYS), cost(GOV_A, FEB_DAYS)
    assert (gov["cost"], gov["previous_cost"]) == (fen(now), fen(before)) == ("1660.03", "1499.68")
    assert gov["cost_change_percent"] == pct((now - before) * 100 / before) == "10.7"
    meters = {m["meter"]: m for m in gov["meters"]}
    assert meters["compute.vcpu"] == {
        "meter": "compute.vcpu", "name": "云主机vCPU", "unit": "vCPU-hour", "quantity": "8928", "amount": "892.80",
        "previous_quantity": "8064", "quantity_change_percent": "10.7"}
    assert (meters["network.egress"]["quantity"], meters["network.egress"]["amount"]) == ("61.333", "30.67")
    # vmA1: 6 % and 14 % half a day each, vmA2: 1 %, equal time → average 5.5; p95 in the 14 % bucket, capped at
    # the observed maximum 14
    assert (gov["cpu_average"], gov["cpu_p95"], gov["memory_average"], gov["memory_p95"]) == (
        "5.50", "14.0", "17.50", "25.0")
    assert gov["previous_cpu_average"] is None  # no utilisation observed in February

    oa = rows[(A, OA)]
    assert (oa["allocated"], oa["cost"], oa["previous_cost"], oa["cost_change_percent"]) == (
        {"storage_gib": "500"}, "372.00", "336.00", "10.7")
    assert oa["cpu_average"] is None

    biz = rows[(B, BIZ)]
    b_now, b_before = cost(BIZ_B, MAR_DAYS), cost(BIZ_B, FEB_DAYS)
    assert (biz["cost"], biz["previous_cost"], biz["cost_change_percent"]) == (
        fen(b_now), fen(b_before), pct((b_now - b_before) * 100 / b_before)) == ("438.74", "379.02", "15.8")
    assert (biz["cpu_average"], biz["cpu_p95"], biz["memory_average"], biz["memory_p95"]) == (
        "70.00", "70.0", "60.00", "60.0")

    csv_response = await apps["query"].get("/v1/reports/utilization", headers=FINANCE, params={
        "period": "month", "start": "2071-03-01", "format": "csv", "lang": "en"})
    assert csv_response.status_code == 200 and csv_response.headers["content-type"].startswith("text/csv")
    import csv

    lines = list(csv.DictReader(io.StringIO(csv_response.text.lstrip("\ufeff"))))
    vcpu_b = [line for line in lines if line["Department ID"] == B and line["Meter"] == "compute.vcpu"]
    assert [(line["Quantity"], line["Amount (CNY)"], line["Total cost (CNY)"], line["CPU p95 (%)"])
            for line in vcpu_b] == [("3197", "319.70", "438.74", "70.0")]


async def test_a_department_reads_only_its_own_rows_in_every_report(apps, seeded):
    query = apps["query"]
    token = auth("department", B)
    week = await query.get("/v1/reports/utilization", params={"period": "week", "start": "2071-03-16"}, headers=token)
    assert week.status_code == 200, week.text
    (row,) = week.json()["rows"]
    assert (row["department_id"], row["system"]) == (B, BIZ)
    week_days = [date(2071, 3, 16) + timedelta(days=i) for i in range(7)]
    assert {m["meter"]: m["quantity"] for m in row["meters"]}["compute.vcpu"] == str(
        quantity(BIZ_B, week_days, "compute.vcpu"))
    assert (await query.get("/v1/reports/utilization", headers=token, params={
        "period": "week", "start": "2071-03-16", "department": A})).status_code == 403
    waste = await query.get("/v1/reports/waste", params={"as_of": "2071-04-01"}, headers=token)
    assert waste.status_code == 200 and waste.json()["findings"] == []
    warnings = await query.get("/v1/warnings", params={"department": A}, headers=token)
    assert warnings.status_code == 403
    focus = await query.get("/v1/exports/focus", params={"month": "2071-03"}, headers=token)
    assert focus.status_code == 200
    import csv

    accounts = {line["SubAccountId"] for line in csv.DictReader(io.StringIO(focus.text))}
    assert accounts == {B}
    for path, params in (("/v1/reports/platform", {"month": "2071-03"}), ("/v1/reports/budget-basis", {"year": 2072})):
        assert (await query.get(path, params=params, headers=token)).status_code == 403
    assert (await query.get("/v1/reports/budget-basis", params={"year": 2072}, headers=PROVIDER)).status_code == 403


async def test_platform_report_shows_families_growth_top_departments_unattributed_and_dead_letters(apps, seeded):
    response = await apps["query"].get("/v1/reports/platform", params={"month": "2071-03", "lang": "en"},
                                       headers=PROVIDER)
    assert response.status_code == 200, response.text
    report = response.json()
    families = {f["family"]: f for f in report["families"]}
    everyone = GOV_A | OA_A | BIZ_B
    compute_now = cost(everyone, MAR_DAYS, "compute.vcpu") + cost(everyone, MAR_DAYS, "compute.memory") + D("1.00")
    compute_before = cost(everyone, FEB_DAYS, "compute.vcpu") + cost(everyone, FEB_DAYS, "compute.memory")
    assert (families["compute"]["name"], families["compute"]["amount"], families["compute"]["previous_amount"]) == (
        "Compute", fen(compute_now), fen(compute_before))
    assert families["compute"]["growth_percent"] == pct((compute_now - compute_before) * 100 / compute_before)
    vcpu = {m["meter"]: m for m in families["compute"]["meters"]}["compute.vcpu"]
    assert (vcpu["quantity"], vcpu["previous_quantity"]) == ("12135", "10779")
    assert (families["storage"]["amount"], families["storage"]["growth_percent"]) == ("372.00", "10.7")
    assert families["network"]["amount"] == "52.99"
    total = cost(everyone, MAR_DAYS) + D(1)
    assert report["total"]["amount"] == fen(total) == "2471.77"
    assert report["total"]["departments"] == 2 and report["total"]["resources"] == 6
    top = [(d["rank"], d["department_id"], d["amount"], d["share_percent"]) for d in report["top_departments"]]
    assert top == [(1, A, "2032.03", pct(cost(GOV_A | OA_A, MAR_DAYS) * 100 / total)),
                   (2, B, "438.74", pct(cost(BIZ_B, MAR_DAYS) * 100 / total))]
    assert report["unattributed"] == {
        "amount": "1.00", "share_percent": "0.0", "resources": 1,
        "meters": [{"meter": "compute.vcpu", "name": "VM vCPU", "unit": "vCPU-hour", "quantity": "10",
                    "amount": "1.00"}]}
    assert report["dead_letters"] == {"total": 2, "by_reason": {"conflicting duplicate": 1, "invalid event": 1}}
    assert (await apps["query"].get("/v1/reports/platform", params={"month": "2071-3"},
                                    headers=FINANCE)).status_code == 422


def evaluate(day: date) -> dict:
    done = subprocess.run([sys.executable, "-m", "services.cli", "warnings", "evaluate", "--day", str(day)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


async def test_a_spike_is_warned_once_with_its_figures_and_a_normal_day_is_not(apps, seeded, settings):
    assert evaluate(NORMAL)["new_warnings"] == []
    first = evaluate(SPIKE)
    assert len(first["new_warnings"]) == 1 and first["published"] >= 1
    assert evaluate(SPIKE)["new_warnings"] == []  # stored once per department, meter and day

    response = await apps["query"].get("/v1/warnings", params={"from": "2071-03-01", "to": "2071-04-01"},
                                       headers=FINANCE)
    assert response.status_code == 200, response.text
    (warning,) = [w for w in response.json()["warnings"] if w["department_id"] in (A, B)]
    baseline = [D("0.10") * vm_b1_vcpu(SPIKE - timedelta(days=n)) for n in range(14, 0, -1)]
    median, mad = D("9.70"), D("0.10")
    z = (D("0.6745") * (D("28.80") - median) / (D("0.05") * median)).quantize(D("0.0001"))
    assert (warning["day"], warning["department_id"], warning["meter"], warning["spend"], warning["median"]) == (
        "2071-03-20", B, "compute.vcpu", "28.80", "9.70")
    assert D(warning["mad"]) == mad and D(warning["mad_used"]) == D("0.05") * median
    assert D(warning["robust_z"]) == z and warning["threshold"] == "3.5"
    assert [D(v) for v in warning["baseline"]["spend"]] == baseline
    assert warning["baseline"]["from"] == "2071-03-06" and "市公安局" in warning["message"]
    mine = await apps["query"].get("/v1/warnings", params={"from": "2071-03-01"}, headers=auth("department", A))
    assert mine.status_code == 200 and mine.json()["warnings"] == []

    consumer = AIOKafkaConsumer(settings.warnings_topic, bootstrap_servers=settings.kafka_bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen: list[dict] = []

        async def published():
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                seen.extend(orjson.loads(m.value) for m in messages)
            return [w for w in seen if w["id"] == warning["id"]]

        (message,) = await wait_until(published, timeout=30)
        assert (message["department_id"], message["meter"], message["spend"]) == (B, "compute.vcpu", "28.80")
    finally:
        await consumer.stop()


async def test_waste_finds_the_idle_vm_the_oversized_vm_and_the_unattached_volume_with_savings(apps, seeded):
    response = await apps["query"].get("/v1/reports/waste", params={"as_of": "2071-04-01", "department": A},
                                       headers=FINANCE)
    assert response.status_code == 200, response.text
    report = response.json()
    findings = {f["kind"]: f for f in report["findings"]}
    assert set(findings) == {"idle", "oversized", "unattached_volume"}  # the attached IP is not waste

    idle = findings["idle"]
    # 7 days: 672 vCPU-h and 2688 GiB-h → a 720-hour month: 2880 × 0.10 + 11520 × 0.02
    assert (idle["resource_id"], idle["monthly_saving"], idle["kind_name"]) == (VM_A2, "518.40", "闲置资源")
    assert (idle["evidence"]["cpu_max"], idle["evidence"]["egress"], idle["evidence"]["window"]) == (
        "1.00", "0", {"from": "2071-03-25", "to": "2071-04-01"})

    oversized = findings["oversized"]
    assert oversized["resource_id"] == VM_A1 and oversized["evidence"]["cpu_p95"] == "14.0"
    assert oversized["suggestion"] == {"vcpu": 2, "memory_gib": 16}  # 8 × 14/60 → 2; 32 × 25/80 → 16
    assert oversized["monthly_saving"] == fen(6 * D("0.10") * 720 + 16 * D("0.02") * 720) == "662.40"

    volume = findings["unattached_volume"]
    assert (volume["resource_id"], volume["monthly_saving"]) == (VOL_A, "360.00")  # 500 GiB × 720 h × 0.001
    assert report["total_monthly_saving"] == "1540.80"
    assert (await apps["query"].get("/v1/reports/waste", params={"as_of": "2071-04-01", "department": B},
                                    headers=FINANCE)).json()["findings"] == []


async def test_budget_basis_from_the_trailing_twelve_months_in_json_csv_and_xlsx(apps, seeded):
    params = {"year": 2072, "through": "2071-03"}
    response = await apps["query"].get("/v1/reports/budget-basis", params=params, headers=FINANCE)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["months"][0] == "2070-04" and report["months"][-1] == "2071-03"
    departments = {d["department_id"]: d for d in report["departments"]}
    b = departments[B]
    feb, mar = cost(BIZ_B, FEB_DAYS), cost(BIZ_B, MAR_DAYS)
    assert [m["amount"] for m in b["months"][-3:]] == ["0.00", fen(feb), fen(mar)] == ["0.00", "379.02", "438.74"]
    assert b["by_family"]["compute"] == "817.76" and b["actual_12_months"] == "817.76"
    slope = (D("4.5") * feb + D("5.5") * mar) / 143  # Σ(t − 6.5)(mₜ − m̄) / Σ(t − 6.5)², only t = 11, 12 spend
    assert b["trend_per_month"] == fen(slope)
    assert (b["bounded"], b["annual_waste"], b["proposed_basis"]) == ("1063.09", "0.00", "1063.09")  # 1.3 × actual
    a = departments[A]
    assert a["annual_waste"] == fen(12 * D("1540.80")) and a["waste_findings"] == 3
    assert a["proposed_basis"] == "0.00"  # the waste found outweighs the bounded projection

    xlsx = await apps["query"].get("/v1/reports/budget-basis", params={**params, "format": "xlsx"}, headers=ADMIN)
    assert xlsx.status_code == 200
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames == ["预算依据", "月度明细", "计算方法"]
    sheet = book["预算依据"]
    header = [c.value for c in sheet[1]]
    assert header[:2] == ["部门编码", "部门名称"] and header[-1] == "建议预算基数(元)"
    by_id = {row[0]: row for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert D(str(by_id[B][-1])) == D("1063.09")
    csv_text = (await apps["query"].get("/v1/reports/budget-basis", params={**params, "format": "csv", "lang": "en"},
                                        headers=FINANCE)).text
    assert "Proposed basis (CNY)" in csv_text.splitlines()[0] and f"{B},市公安局" in csv_text


async def test_waste_finds_nothing_where_each_rule_must_not_fire(apps, worker):
    """One department whose every resource misses exactly one condition of a waste rule (era 2079), and one
    control that meets them all (an unattached, billed volume), so that "nothing" is not an empty report."""
    dep, run = f"waste-none-{RUN}", uuid.uuid4().hex[:6]
    assert (await apps["billing"].post("/v1/departments", json={"id": dep, "name": "市统计局"},
                                       headers=ADMIN)).status_code == 201
    card = {"version": f"waste-none-{run}", "effective_from": local(date(2079, 1, 1)).isoformat(), "prices": PRICES}
    assert (await propose_and_approve(apps["billing"], card)).status_code == 201
    as_of, since = date(2079, 3, 1), local(date(2079, 1, 1))
    fortnight = [as_of - timedelta(days=d) for d in range(14, 0, -1)]
    busy, egress, thin, unbilled, resized, vol_on, ip_on, vol_new, vol_free, control = (
        f"{name}-{run}" for name in ("busy", "egress", "thin", "unbilled", "resized", "volon", "ipon", "volnew",
                                     "volfree", "control"))
    events = [
        lifecycle_event(busy, "activated", dep, since, spec={"vcpu": 8, "memory_gib": 32}),  # p95 25 %: not oversized
        lifecycle_event(egress, "activated", dep, since, spec={"vcpu": 1, "memory_gib": 2}),  # quiet, but sends data
        lifecycle_event(thin, "activated", dep, since, spec={"vcpu": 8, "memory_gib": 32}),  # 1 %, seen 5 days of 7
        lifecycle_event(unbilled, "activated", dep, since, spec={"vcpu": 1, "memory_gib": 2}),  # idle, never billed
        lifecycle_event(resized, "activated", dep, since, spec={"vcpu": 8, "memory_gib": 32}),
        lifecycle_event(resized, "changed", dep, local(date(2079, 2, 20)), spec={"vcpu": 4, "memory_gib": 16}),
        lifecycle_event(vol_on, "activated", dep, since, kind="volume", spec={"size_gib": 100, "attached_to": busy}),
        lifecycle_event(ip_on, "activated", dep, since, kind="ip", spec={"attached_to": busy}),
        lifecycle_event(vol_new, "activated", dep, local(date(2079, 2, 26)), kind="volume", spec={"size_gib": 100}),
        lifecycle_event(vol_free, "activated", dep, since, kind="volume", spec={"size_gib": 100}),  # never billed
        lifecycle_event(control, "activated", dep, since, kind="volume", spec={"size_gib": 100, "attached_to": ""}),
    ]
    for day in fortnight:
        start, end = local(day), local(day + timedelta(days=1))
        events += [usage_event(vm, "compute.vcpu", "24", start, end) for vm in (busy, egress, thin, resized)]
        events += [usage_event(vm, "network.egress", "0.5", start, end) for vm in (egress, resized)]
        events += [usage_event(vol_on, "storage.block", "2400", start, end),
                   usage_event(control, "storage.block", "2400", start, end),
                   usage_event(ip_on, "network.public_ip", "24", start, end)]
        if day >= date(2079, 2, 26):
            events.append(usage_event(vol_new, "storage.block", "2400", start, end))
        events += [utilization_event(busy, 25, 50, start, end), utilization_event(egress, 2, 10, start, end),
                   utilization_event(unbilled, 1, 10, start, end), utilization_event(resized, 2, 10, start, end)]
        if day >= date(2079, 2, 24):  # 5 of the idle window's 7 days: 71 % < the 80 % of evidence asked for
            events.append(utilization_event(thin, 1, 10, start, end))
    response = await post_events(apps["metering"], events)
    assert response.status_code == 202 and response.json()["accepted"] == len(events), response.text
    await wait_stored(events, worker)
    report = await apps["query"].get("/v1/reports/waste", params={"as_of": as_of.isoformat(), "department": dep},
                                     headers=FINANCE)
    assert report.status_code == 200, report.text
    findings = report.json()["findings"]
    # only the control: 100 GiB × 720 h × 0.001 a month
    assert [(f["kind"], f["resource_id"], f["monthly_saving"]) for f in findings] == [
        ("unattached_volume", control, "72.00")]
