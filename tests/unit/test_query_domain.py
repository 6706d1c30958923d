"""The query side's pure rules moved out of the report routers: which rule finds a resource, how the budget basis
counts waste, how the platform report tallies a month, when a day is judged, and the FOCUS rows of a bill."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.query.domain.anomaly import AnomalyRule, judge_day
from services.query.domain.basis import waste_by_department
from services.query.domain.charges import ChargeRow
from services.query.domain.figures import UtilizationFigures
from services.query.domain.focus import focus_rows, service_columns
from services.query.domain.platform import tally, top_departments
from services.query.domain.waste import ResourceEvidence, Windows, held_size, held_throughout, judge_resource
from services.query.domain.waste_rules import IDLE, OVERSIZED, UNATTACHED_IP, Size

D = Decimal
END = datetime(2077, 3, 1, tzinfo=UTC)
WINDOWS = Windows.before(END)
PRICES = {"compute.vcpu": D("0.12"), "compute.memory": D("0.05"), "network.public_ip": D("0.02")}
HOUR_MS = 3600 * 1000


def interval(start: datetime, end: datetime | None = None, department="czj", kind="vm", **spec) -> dict:
    return {"resource_id": "r-1", "valid_from": start, "valid_to": end, "department_id": department,
            "system": "s", "kind": kind, "spec": spec}


def watched(days: int, cpu_max: str, p95_bucket: int = 0) -> UtilizationFigures:
    hist = [0] * 100
    hist[p95_bucket] = days * 24 * HOUR_MS
    return UtilizationFigures(days * 24 * HOUR_MS, D(0), D(0), D(cpu_max), D(cpu_max), hist, list(hist))


def test_held_throughout_needs_one_department_without_a_gap():
    start = END - timedelta(days=7)
    whole = [interval(start - timedelta(days=1))]
    assert held_throughout(whole, start, END) == whole
    gap = [interval(start - timedelta(days=1), start + timedelta(days=1)), interval(start + timedelta(days=2))]
    assert held_throughout(gap, start, END) is None
    moved = [interval(start - timedelta(days=1), start + timedelta(days=1)),
             interval(start + timedelta(days=1), None, department="other")]
    assert held_throughout(moved, start, END) is None
    assert held_throughout([interval(start + timedelta(hours=1))], start, END) is None


def test_a_resized_vm_has_no_one_size():
    assert held_size([interval(END, vcpu=8, memory_gib=32)]) == Size(8, 32)
    assert held_size([interval(END, vcpu=8), interval(END, vcpu=4)]) is None
    assert held_size([interval(END, vcpu=True)]) is None


def test_an_idle_resource_is_found_idle_not_oversized():
    held = [interval(END - timedelta(days=30), vcpu=8, memory_gib=32)]
    evidence = ResourceEvidence(held, {"compute.vcpu": D(8 * 168)}, D("161.28"), watched(7, "1"), watched(14, "1"))
    verdict = judge_resource(evidence, WINDOWS, PRICES)
    assert verdict.kind == IDLE and verdict.saving == verdict.cost == 8 * D("0.12") * 720


def test_an_unattached_ip_saves_its_monthly_cost():
    held = [interval(END - timedelta(days=30), kind="ip", attached_to=None)]
    evidence = ResourceEvidence(held, {"network.public_ip": D(168)}, D("3.36"), None, None)
    verdict = judge_resource(evidence, WINDOWS, PRICES)
    assert verdict.kind == UNATTACHED_IP and verdict.saving == D("0.02") * 720


def test_a_busy_vm_with_a_low_p95_is_oversized_and_saves_the_capacity_given_up():
    held = [interval(END - timedelta(days=30), vcpu=8, memory_gib=32)]
    evidence = ResourceEvidence(held, {"compute.vcpu": D(8 * 168)}, D("161.28"), watched(7, "90", 11),
                                watched(14, "90", 11))
    verdict = judge_resource(evidence, WINDOWS, PRICES)
    assert verdict.kind == OVERSIZED and verdict.current == Size(8, 32) and verdict.suggested.vcpu == 2


def test_a_resource_without_observations_is_never_idle():
    held = [interval(END - timedelta(days=30), vcpu=8)]
    assert judge_resource(ResourceEvidence(held, {}, D(1), None, None), WINDOWS, PRICES) is None


def test_the_budget_basis_counts_a_resource_once_at_its_largest_saving():
    findings = [{"department_id": "a", "resource_id": "r1", "monthly_saving": "10.00"},
                {"department_id": "a", "resource_id": "r1", "monthly_saving": "25.00"},
                {"department_id": "a", "resource_id": "r2", "monthly_saving": "1.00"},
                {"department_id": "b", "resource_id": "r3", "monthly_saving": "2.00"}]
    assert waste_by_department(findings) == ({"a": D(26), "b": D(2)}, {"a": 3, "b": 1})


def test_the_platform_tally_keeps_unattributed_usage_out_of_the_ranking():
    rows = [{"department_id": "a", "meter": "m", "quantity": D(1), "amount": D(5)},
            {"department_id": None, "meter": "m", "quantity": D(2), "amount": D(7)},
            {"department_id": "b", "meter": "n", "quantity": D(1), "amount": D(5)}]
    month = tally(rows)
    assert month.total == 17 and month.by_meter["m"].quantity == 3
    assert dict(month.by_department) == {"a": 5, "b": 5} and month.unattributed["m"].amount == 7
    assert top_departments(month.by_department, 1) == [("a", D(5))]


@given(st.lists(st.integers(0, 100), min_size=14, max_size=14), st.integers(0, 100_000))
def test_a_day_is_judged_against_its_own_trailing_window(baseline, spend):
    day = date(2077, 3, 15)
    spends = {("a", "m", day - timedelta(days=n + 1)): D(v) for n, v in enumerate(reversed(baseline))}
    spends[("a", "m", day)] = D(spend)
    found = judge_day(day, spends, AnomalyRule())
    assert [f[3] for f in found] in ([], [[D(v) for v in baseline]])


def charge(department: str, cost: str, meter: str = "compute.vcpu") -> ChargeRow:
    return ChargeRow(department, "s", "vm-1", meter, date(2077, 2, 3), 1, D("0.12"), None, D(1), D(cost))


def test_focus_rows_sum_to_each_bill_with_a_rounding_row_per_line():
    charges = [charge("a", "0.123"), charge("a", "0.001")]
    rows = focus_rows("2077-02", charges, {"a": "部门"}, {"vm-1": "vm"}, {1: "v1"}, "en")
    assert [r["ChargeCategory"] for r in rows] == ["Usage", "Usage", "Adjustment"]
    assert sum(D(r["BilledCost"]) for r in rows) == D("0.12")
    assert rows[2]["ChargeDescription"].startswith("Rounding to the fen")


def test_focus_rows_carry_a_bills_late_adjustments_and_credits():
    bill = {"lines": [], "adjustments": [
        {"kind": "late", "amount": "1.50", "meter": "compute.vcpu", "original_period": "2077-01"},
        {"kind": "manual", "amount": "-2.00", "id": "adj-1", "reason": "补偿"}]}
    late, credit = focus_rows("2077-02", [], {}, {}, {}, "zh", {"a": bill})
    assert (late["ChargeClass"], late["x_CorrectedPeriod"], late["ServiceName"]) == ("Correction", "2077-01",
                                                                                      "Cloud Server")
    assert late["ChargePeriodStart"] == "2076-12-31T16:00:00Z"
    assert (credit["ChargeCategory"], credit["x_AdjustmentId"], credit["ServiceCategory"]) == ("Credit", "adj-1",
                                                                                             "Other")


def test_meters_of_one_service_share_its_focus_columns():
    assert service_columns("compute.vcpu") == service_columns("compute.memory")
    assert service_columns("network.bandwidth") == service_columns("network.egress")
    assert service_columns(None)["ServiceName"] == "Government Cloud"
