"""/v1/usage over windows that cut months: the whole months come from the monthly rollup and the edges from the
daily one: the quantities are the sum of the days, and the amounts the exact cost of that usage, to the fen."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from tests.integration.support import FINANCE, auth, lifecycle_event, usage_event
from tests.integration.test_billing import department, local, new_id, publish, rate_card

pytestmark = pytest.mark.usefixtures("worker")

YEAR = 2049
WINDOWS = [("2049-01-17", "2049-04-03"), ("2049-02-01", "2049-02-15"), ("2049-03-31", "2049-05-01"),
           ("2049-01-01", "2049-06-01"), ("2049-05-09", "2049-05-10"), ("2048-12-20", "2049-07-02")]


async def rows(apps, headers, **params):
    response = await apps["query"].get("/v1/usage", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["rows"]


PRICES = {"compute.vcpu": Decimal("1.005"), "storage.block": Decimal("0.333")}


def fen(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), ROUND_HALF_UP)


def summed(answer, by):
    totals = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for r in answer:
        key = (r["period_start"][:7] if by == "month" else "", r.get("department_id"), r.get("meter"))
        totals[key][0] += Decimal(r["quantity"])
        totals[key][1] += Decimal(r["amount"])
    return dict(totals)


async def test_windows_cutting_months_sum_to_the_same_figures_as_their_days(apps, worker):
    first, second = await department(apps), await department(apps, "市公安局")
    await rate_card(apps, local(YEAR, 1, 1), compute_vcpu=str(PRICES["compute.vcpu"]),
                    storage_block=str(PRICES["storage.block"]))
    vms = {first: new_id("vm"), second: new_id("vm")}
    events = [lifecycle_event(vm, "activated", dep, local(YEAR, 1, 1)) for dep, vm in vms.items()]
    for k, day in enumerate((1, 16, 31, 45, 59, 60, 90, 91, 120, 121, 130, 150, 151, 170)):
        for dep, vm in vms.items():
            start = local(YEAR, 1, 1, hour=k % 24) + timedelta(days=day - 1)
            events.append(usage_event(vm, "compute.vcpu", str(k + 1), start))
            events.append(usage_event(vm, "storage.block", f"{k}.5", start))
    await publish(apps, events, worker)
    for begin, end in WINDOWS:
        for department_id, headers in ((None, FINANCE), (second, auth("department", second))):
            scope = {"department": department_id} if department_id else {}
            days = await rows(apps, headers, **{"from": begin, "to": end, "group_by": "department,meter",
                                                "granularity": "day", **scope})
            for granularity in ("month", "total"):
                answer = await rows(apps, headers, **{"from": begin, "to": end, "group_by": "department,meter",
                                                      "granularity": granularity, **scope})
                mine = {k: v for k, v in summed(answer, granularity).items() if k[1] in vms}
                expected = {k: v for k, v in summed(days, granularity).items() if k[1] in vms}
                # quantities: the sum of the days, exactly; amounts: the exact cost of that usage, to the fen
                assert {k: v[0] for k, v in mine.items()} == {k: v[0] for k, v in expected.items()}, (begin, end)
                assert {k: v[1] for k, v in mine.items()} == {k: fen(v[0] * PRICES[k[2]]) for k, v in mine.items()}
                # by department alone (the edges from the all-meters daily totals)
                by_department = await rows(apps, headers, **{"from": begin, "to": end, "group_by": "department",
                                                             "granularity": granularity, **scope})
                per_department = defaultdict(lambda: [Decimal(0), Decimal(0)])
                for (month, owner, meter), (quantity, _) in mine.items():
                    per_department[(month, owner, None)][0] += quantity
                    per_department[(month, owner, None)][1] += quantity * PRICES[meter]
                found = {k: v for k, v in summed(by_department, granularity).items() if k[1] in vms}
                assert found == {k: [quantity, fen(cost)] for k, (quantity, cost) in per_department.items()}
            top = await rows(apps, headers, **{"from": begin, "to": end, "group_by": "department", **scope})
            assert {r["department_id"] for r in top if r["department_id"] in vms} == {
                r["department_id"] for r in days if r["department_id"] in vms}
