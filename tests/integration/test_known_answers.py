"""Cached answers served before routing (services.common.known_answers), over the real worker and PostgreSQL's
notifications: a request asked again is answered without FastAPI, byte for byte as routed, logged and counted
under its route; new usage, another caller, a bad token and a moved department are routed anew."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from services.billing.api import known_bills
from services.common.known_answers import MAX_QUERY_BYTES
from services.query.api import known_usage
from tests.integration.support import ADMIN, FINANCE, auth, lifecycle_event, usage_event
from tests.integration.test_billing import department, local, new_id, publish, rate_card, two_departments_with_usage

pytestmark = pytest.mark.usefixtures("worker")

YEAR = 2033
WINDOW = {"from": f"{YEAR}-01-01", "to": f"{YEAR + 1}-01-01", "group_by": "department", "granularity": "month"}


async def ask(app, known, path: str, headers: dict, **params) -> tuple:
    """(status, body, content type, whether it was served before routing)."""
    served = known.served
    response = await app.get(path, params=params, headers=headers)
    assert response.headers.get("x-request-id"), "the request observer wraps every answer"
    return response.status_code, response.content, response.headers.get("content-type"), known.served > served


def requests_counted(service: str, route: str) -> float:
    return REGISTRY.get_sample_value("govmeter_http_requests_total",
                                     {"service": service, "method": "GET", "route": route, "status": "200"}) or 0


async def test_an_answer_asked_again_is_served_before_routing_until_new_usage_changes_it(apps, worker):
    mine, theirs = await two_departments_with_usage(apps, worker, YEAR)  # 1 and 7 units on 2 January
    query = apps["query"]
    first = await ask(query, known_usage, "/v1/usage", FINANCE, **WINDOW)
    assert first[0] == 200 and not first[3]
    counted = requests_counted("query", "/v1/usage")
    again = await ask(query, known_usage, "/v1/usage", FINANCE, **WINDOW)
    assert again[3], "served before routing"
    assert again[:3] == first[:3]  # the same bytes and content type as routed
    assert requests_counted("query", "/v1/usage") == counted + 1  # logged and counted under the route's template

    vm = new_id("vm")
    await publish(apps, [lifecycle_event(vm, "activated", mine, local(YEAR, 1, 1)),
                         usage_event(vm, "compute.vcpu", "2", local(YEAR, 1, 3))], worker)
    changed = await ask(query, known_usage, "/v1/usage", FINANCE, **WINDOW)
    assert not changed[3], "the cache dropped the answer: routed and computed anew"
    amounts = {r["department_id"]: r["amount"] for r in (await query.get("/v1/usage", params=WINDOW,
                                                                          headers=FINANCE)).json()["rows"]}
    assert amounts[mine] == "3.00" and amounts[theirs] == "7.00"
    assert (await ask(query, known_usage, "/v1/usage", FINANCE, **WINDOW))[3]


async def test_another_caller_or_a_bad_token_never_gets_a_remembered_answer(apps, worker):
    mine, theirs = await two_departments_with_usage(apps, worker, YEAR)
    query = apps["query"]
    own = {**WINDOW, "department": mine}
    mine_token, theirs_token = auth("department", mine), auth("department", theirs)
    answered = await ask(query, known_usage, "/v1/usage", mine_token, **own)
    assert (await ask(query, known_usage, "/v1/usage", mine_token, **own))[3]

    # the same query string from another department: routed, and refused
    status, body, _, served = await ask(query, known_usage, "/v1/usage", theirs_token, **own)
    assert (status, served) == (403, False), body
    # finance's own answer to the same query string is finance's, not the department's remembered one
    status, body, _, served = await ask(query, known_usage, "/v1/usage", FINANCE, **own)
    assert status == 200 and not served and body == answered[1]  # (its own key: same figures, computed for it)
    for bad in ({"Authorization": "Bearer not-a-token"}, {},
                {"Authorization": mine_token["Authorization"][:-2] + "xx"}):
        status, _, _, served = await ask(query, known_usage, "/v1/usage", bad, **own)
        assert (status, served) == (401, False)
    # a refusal is never remembered either
    for _ in range(2):
        status, _, _, served = await ask(query, known_usage, "/v1/usage", theirs_token, **own)
        assert (status, served) == (403, False)


async def test_a_padded_query_string_is_answered_but_never_remembered(apps, worker):
    await two_departments_with_usage(apps, worker, YEAR)
    padded = {**WINDOW, "padding": "x" * MAX_QUERY_BYTES}  # an unknown parameter: ignored, the query valid
    for _ in range(2):
        status, _, _, served = await ask(apps["query"], known_usage, "/v1/usage", FINANCE, **padded)
        assert (status, served) == (200, False)


async def test_a_moved_department_leaves_a_district_offices_remembered_scope(apps, worker):
    district = await department(apps, "椒江区人民政府")
    bureau = new_id("dep")
    response = await apps["billing"].post("/v1/departments", headers=ADMIN,
                                          json={"id": bureau, "name": "椒江区教育局", "parent_id": district})
    assert response.status_code == 201, response.text
    await rate_card(apps, local(YEAR, 1, 1), compute_vcpu="1.00")
    vms = {district: new_id("vm"), bureau: new_id("vm")}
    await publish(apps, [*(lifecycle_event(vm, "activated", d, local(YEAR, 1, 1)) for d, vm in vms.items()),
                         usage_event(vms[district], "compute.vcpu", "1", local(YEAR, 2, 2)),
                         usage_event(vms[bureau], "compute.vcpu", "2", local(YEAR, 2, 2))], worker)
    office, query = auth("finance", district), apps["query"]

    async def departments_seen() -> tuple[set, bool]:
        status, body, _, served = await ask(query, known_usage, "/v1/usage", office, **WINDOW)
        assert status == 200, body
        response = await query.get("/v1/usage", params=WINDOW, headers=office)
        return {r["department_id"] for r in response.json()["rows"]}, served

    assert await departments_seen() == ({district, bureau}, False)
    assert (await ask(query, known_usage, "/v1/usage", office, **WINDOW))[3]
    response = await apps["billing"].put(f"/v1/departments/{bureau}/parent", json={"parent_id": None}, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert await departments_seen() == ({district}, False)  # the tree moved: the scope resolved anew


async def test_a_bill_list_by_the_clocks_month_is_never_remembered(apps, worker):
    mine, _ = await two_departments_with_usage(apps, worker, YEAR)
    billing, mine_token = apps["billing"], auth("department", mine)
    for _ in range(3):  # finance's list of "this month": the month is the clock's, so always routed
        status, _, _, served = await ask(billing, known_bills, "/v1/bills", FINANCE)
        assert (status, served) == (200, False)
    listed = await ask(billing, known_bills, "/v1/bills", mine_token)
    again = await ask(billing, known_bills, "/v1/bills", mine_token)
    assert again[3] and again[:3] == listed[:3]
    month = {"month": f"{YEAR}-01"}
    await ask(billing, known_bills, "/v1/bills", mine_token, **month)
    assert (await ask(billing, known_bills, "/v1/bills", mine_token, **month))[3]
