"""Resource applications end to end (Art. 8–10): apply with an estimate, accept, approve or reject, fulfil into the
lifecycle event the worker attributes, the working-day clocks and the overdue list, roles and department scope.
Rate cards of these tests are effective in 2088 (the years given to this file); the clock tests stand in 2025, whose
holidays chinese-calendar knows, and create no rate card."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from unittest.mock import patch

import pytest

from services.billing.api import app as billing_app
from services.billing.applications import applications_clock
from services.common.periods import LOCAL_TZ
from services.demo.rate_cards import propose_and_approve
from tests.integration.support import ADMIN, FINANCE, PROVIDER, SOURCE, auth, post_events, usage_event, \
    usage_rows, wait_stored

pytestmark = pytest.mark.usefixtures("worker")
EGOV = auth("egov")


def local(year, month, day, hour=0, minute=0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LOCAL_TZ)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def clock(instant: datetime):
    """Stand the applications' routes at ``instant``."""
    return patch.dict(billing_app.dependency_overrides, {applications_clock: lambda: instant})


async def department(apps) -> str:
    department_id = f"dep-{uuid.uuid4().hex[:8]}"
    response = await apps["billing"].post("/v1/departments", json={"id": department_id, "name": "市大数据局"},
                                          headers=ADMIN)
    assert response.status_code == 201, response.text
    return department_id


def vm_application(**changes) -> dict:
    body = {"system": "预约办事系统", "kind": "vm", "spec": {"flavor": "c6.xlarge", "vcpu": 4},
            "items": [{"meter": "compute.vcpu", "quantity": "4"}, {"meter": "compute.memory", "quantity": "16"}],
            "reason": "新建预约办事子系统", "wanted_by": "2088-03-15"}
    return {**body, **changes}


async def apply(apps, dep: str, **changes) -> dict:
    response = await apps["billing"].post("/v1/applications", json=vm_application(**changes), headers=auth(
        "department", dep))
    assert response.status_code == 201, response.text
    return response.json()


async def step(apps, application_id: int, action: str, headers, expect: int = 200, **body) -> dict:
    response = await apps["billing"].post(f"/v1/applications/{application_id}/{action}", json=body or None,
                                          headers=headers)
    assert response.status_code == expect, response.text
    return response.json()


async def test_a_fulfilled_application_activates_the_resource_for_the_department_through_the_events_topic(apps):
    dep = await department(apps)
    card = {"version": f"rc-{uuid.uuid4().hex[:8]}", "effective_from": local(2088, 1, 1).isoformat(),
            "prices": {"compute.vcpu": "0.12", "compute.memory": "0.05"}}
    assert (await propose_and_approve(apps["billing"], card)).status_code == 201  # maker/checker
    mine = auth("department", dep)
    with clock(local(2088, 3, 1, 10)):  # a Monday (2088 is beyond chinese-calendar's data: weekdays)
        estimate = await apps["billing"].post("/v1/applications/estimate", json=vm_application(), headers=mine)
        assert estimate.status_code == 200, estimate.text
        # March has 744 hours: 4 vCPU × 744 × 0.12 + 16 GiB × 744 × 0.05
        assert estimate.json()["total"] == "952.32"
        assert estimate.json()["rate_card"] == card["version"]
        created = await apply(apps, dep)
        assert created["state"] == "submitted" and created["estimate"] == "952.32"
        assert at(created["approval"]["due_at"]) == local(2088, 3, 4)
        assert created["approval"]["calendar"] == "weekdays"
        await step(apps, created["id"], "accept", EGOV)
        approved = await step(apps, created["id"], "approve", EGOV)
        assert at(approved["fulfilment"]["due_at"]) == local(2088, 3, 4)
    vm = f"vm-{uuid.uuid4().hex[:8]}"
    with clock(local(2088, 3, 2, 9)):
        fulfilled = await step(apps, created["id"], "fulfil", PROVIDER, resource_id=vm, source=SOURCE)
    assert fulfilled["state"] == "fulfilled" and fulfilled["resource_id"] == vm
    assert [(s["action"], s["role"]) for s in fulfilled["steps"]] == [
        ("submit", "department"), ("accept", "egov"), ("approve", "egov"), ("fulfil", "provider")]
    assert not fulfilled["overdue"] and not fulfilled["fulfilment"]["late"]
    # The activation went the way every event goes: the topic, the worker, the store; usage is the department's.
    usage = usage_event(vm, "compute.vcpu", "4", local(2088, 3, 2, 10))
    assert (await post_events(apps["metering"], [usage])).status_code == 202
    await wait_stored([{"source": SOURCE, "id": f"application-{created['id']}"}, usage])
    rows = await usage_rows(apps["query"], mine, **{"from": "2088-03-01", "to": "2088-04-01",
                                                    "group_by": "department,system", "granularity": "total"})
    assert [(r["department_id"], r["system"], r["quantity"], r["amount"]) for r in rows] == [
        (dep, "预约办事系统", "4", "0.48")]


async def test_an_action_the_state_does_not_allow_answers_409_naming_the_state(apps):
    dep = await department(apps)
    created = await apply(apps, dep)
    detail = (await step(apps, created["id"], "approve", EGOV, expect=409))["detail"]
    assert "state: the application is submitted" in detail
    await step(apps, created["id"], "fulfil", PROVIDER, expect=409, resource_id="vm-x", source=SOURCE)
    await step(apps, created["id"], "reject", EGOV, reason="资源已有富余")
    detail = (await step(apps, created["id"], "accept", EGOV, expect=409))["detail"]
    assert "state: the application is rejected" in detail
    rejected = (await apps["billing"].get(f"/v1/applications/{created['id']}", headers=EGOV)).json()
    assert rejected["state"] == "rejected" and rejected["steps"][-1]["note"] == "资源已有富余"


async def test_each_step_belongs_to_its_role(apps):
    dep = await department(apps)
    created = await apply(apps, dep)
    mine = auth("department", dep)
    for action, headers in (("accept", mine), ("accept", PROVIDER), ("accept", ADMIN), ("accept", FINANCE)):
        assert (await step(apps, created["id"], action, headers, expect=403))["detail"].startswith("role ")
    await step(apps, created["id"], "withdraw", EGOV, expect=403)
    response = await apps["billing"].post("/v1/applications", json=vm_application(department_id=dep), headers=EGOV)
    assert response.status_code == 403
    await step(apps, created["id"], "accept", EGOV)
    await step(apps, created["id"], "approve", EGOV)
    await step(apps, created["id"], "fulfil", EGOV, expect=403, resource_id="vm-x", source=SOURCE)
    detail = (await step(apps, created["id"], "fulfil", PROVIDER, expect=403, resource_id="vm-x",
                         source="urn:someone-else"))["detail"]
    assert detail.startswith("source: ")


async def test_reject_needs_a_reason(apps):
    dep = await department(apps)
    created = await apply(apps, dep)
    assert "reason" in (await step(apps, created["id"], "reject", EGOV, expect=422))["detail"]
    response = await apps["billing"].post(f"/v1/applications/{created['id']}/reject", json={}, headers=EGOV)
    assert response.status_code == 422 and response.json()["detail"].startswith("reason: ")


async def test_a_department_sees_and_moves_only_its_own_applications(apps):
    mine, theirs = await department(apps), await department(apps)
    own = await apply(apps, mine)
    other = await apply(apps, theirs)
    me = auth("department", mine)
    listed = (await apps["billing"].get("/v1/applications", headers=me)).json()
    assert {a["department_id"] for a in listed} == {mine} and own["id"] in {a["id"] for a in listed}
    assert (await apps["billing"].get(f"/v1/applications/{other['id']}", headers=me)).status_code == 404
    assert (await apps["billing"].get("/v1/applications", params={"department": theirs}, headers=me)).status_code \
        == 403
    with clock(local(2099, 1, 1)):  # both are long overdue by then
        overdue = (await apps["billing"].get("/v1/applications", params={"overdue": "true"}, headers=me)).json()
    assert {a["department_id"] for a in overdue} == {mine}
    await step(apps, other["id"], "withdraw", me, expect=404)
    response = await apps["billing"].post("/v1/applications", json=vm_application(department_id=theirs), headers=me)
    assert response.status_code == 403
    withdrawn = await step(apps, own["id"], "withdraw", me)
    assert withdrawn["state"] == "withdrawn"
    assert (await apps["billing"].get(f"/v1/applications/{other['id']}", headers=EGOV)).json()["state"] == "submitted"


@pytest.mark.parametrize(("change", "field"), [
    ({"items": [{"meter": "compute.quantum", "quantity": "1"}]}, "items"),
    ({"items": [{"meter": "compute.vcpu", "quantity": "-1"}]}, "quantity"),
    ({"items": [{"meter": "compute.vcpu", "quantity": "1e30"}]}, "quantity"),
    ({"items": [{"meter": "compute.vcpu", "quantity": "1"}] * 2}, "items"),
    ({"items": []}, "items"),
    ({"system": "a\x00b"}, "system"),
    ({"system": "x" * 257}, "system"),
    ({"reason": "r" * 2001}, "reason"),
    ({"spec": {f"k{i}": "v" for i in range(65)}}, "spec"),
    ({"spec": {"nested": {"a": 1}}}, "spec"),
    ({"wanted_by": "2188-01-01"}, "wanted_by"),
    ({"surprise": 1}, "surprise"),
])
async def test_a_bad_application_is_refused_with_422_naming_the_field(apps, change, field):
    dep = await department(apps)
    for path in ("/v1/applications", "/v1/applications/estimate"):
        response = await apps["billing"].post(path, json=vm_application(**change), headers=auth("department", dep))
        assert response.status_code == 422, response.text
        assert field in response.text


async def test_admin_applies_only_naming_a_department_that_exists(apps):
    response = await apps["billing"].post("/v1/applications", json=vm_application(), headers=ADMIN)
    assert response.status_code == 422 and "department_id" in response.text
    response = await apps["billing"].post("/v1/applications", json=vm_application(department_id="no-such-dep"),
                                          headers=ADMIN)
    assert response.status_code == 422 and "department_id" in response.text


async def test_overdue_applications_are_listed_and_counted_in_the_platform_report(apps):
    dep = await department(apps)
    with clock(local(2025, 9, 26, 16, 30)):  # the Friday before National Day 2025
        late = await apply(apps, dep, wanted_by="2025-10-09")
        on_time = await apply(apps, dep, wanted_by="2025-10-09")
    # Saturday 27 is a rest day, Sunday 28 an adjusted working day, Monday 29 the second: due 30 September 00:00.
    assert at(late["approval"]["due_at"]) == local(2025, 9, 30)
    assert late["approval"]["calendar"] == "chinese-calendar"
    with clock(local(2025, 9, 29, 17)):
        await step(apps, on_time["id"], "accept", EGOV)
        await step(apps, on_time["id"], "approve", EGOV)
        overdue = await apps["billing"].get("/v1/applications", params={"overdue": "true", "department": dep},
                                            headers=EGOV)
        assert overdue.json() == []
    with clock(local(2025, 9, 30, 9)):
        overdue = (await apps["billing"].get("/v1/applications", params={"overdue": "true", "department": dep},
                                             headers=EGOV)).json()
        assert [a["id"] for a in overdue] == [late["id"]] and overdue[0]["overdue"]
        assert overdue[0]["approval"]["late"]
    # The on-time one's fulfilment clock (approved Monday 29) counts Tuesday 30, skips the holiday (1–8 October)
    # and counts Thursday 9: due at the end of it.
    with clock(local(2025, 10, 11, 9)):
        approved = (await apps["billing"].get(f"/v1/applications/{on_time['id']}", headers=EGOV)).json()
        assert at(approved["fulfilment"]["due_at"]) == local(2025, 10, 10)
    report = await apps["query"].get("/v1/reports/platform", params={"month": "2025-09"}, headers=FINANCE)
    assert report.status_code == 200, report.text
    assert report.json()["applications"] == {"late_approvals": 1, "late_fulfilments": 0}
    october = (await apps["query"].get("/v1/reports/platform", params={"month": "2025-10"}, headers=FINANCE)).json()
    assert october["applications"]["late_fulfilments"] == 1


async def test_the_estimate_without_a_card_in_force_lists_everything_unpriced(apps):
    dep = await department(apps)
    with clock(local(2001, 6, 1)):
        response = await apps["billing"].post("/v1/applications/estimate", json=vm_application(),
                                              headers=auth("department", dep))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rate_card"] is None and body["total"] == "0.00"
    assert body["unpriced_meters"] == ["compute.memory", "compute.vcpu"]
    assert Decimal(body["lines"][1]["monthly_quantity"]) == 4 * 720


async def test_the_e_government_centre_reads_applications_but_no_bills_nor_usage(apps):
    assert (await apps["billing"].get("/v1/applications", headers=EGOV)).status_code == 200
    assert (await apps["billing"].get("/v1/bills", headers=EGOV)).status_code == 403
    assert (await apps["billing"].get("/v1/budgets", headers=EGOV)).status_code == 403
    assert (await apps["query"].get("/v1/usage", params={"from": "2088-01-01", "to": "2088-02-01"},
                                    headers=EGOV)).status_code == 403
    assert (await apps["query"].get("/v1/reports/platform", params={"month": "2088-01"},
                                    headers=EGOV)).status_code == 403


async def test_two_simultaneous_approvals_approve_once_and_the_other_is_409(apps):
    import asyncio

    dep = await department(apps)
    created = await apply(apps, dep)
    await step(apps, created["id"], "accept", EGOV)
    answers = await asyncio.gather(*(apps["billing"].post(f"/v1/applications/{created['id']}/approve", headers=EGOV)
                                     for _ in range(2)))
    assert sorted(a.status_code for a in answers) == [200, 409]
    steps = (await apps["billing"].get(f"/v1/applications/{created['id']}", headers=EGOV)).json()["steps"]
    assert [s["action"] for s in steps] == ["submit", "accept", "approve"]


async def test_a_fulfilment_starts_billing_neither_before_the_approval_nor_in_the_future(apps):
    dep = await department(apps)
    with clock(local(2089, 5, 4, 10)):
        created = await apply(apps, dep)
        await step(apps, created["id"], "accept", EGOV)
        await step(apps, created["id"], "approve", EGOV)
        for effective_at in (local(2089, 5, 4, 9), local(2089, 5, 5, 10)):
            detail = (await step(apps, created["id"], "fulfil", PROVIDER, expect=422, resource_id="vm-early",
                                 source=SOURCE, effective_at=effective_at.isoformat()))["detail"]
            assert detail.startswith("effective_at: ")
    still = (await apps["billing"].get(f"/v1/applications/{created['id']}", headers=EGOV)).json()
    assert still["state"] == "approved" and still["resource_id"] is None
