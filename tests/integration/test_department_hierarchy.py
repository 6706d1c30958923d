"""The department tree (issue 17): parents, roll-ups, and the scope of every role at every level of the tree.

The city below: two city bureaux; the Jiaojiang district government with two bureaux; the Huangyan district
government with one; the high-tech zone's management committee with one. Each department holds one public IP
without ``attached_to`` (so each has a waste finding), used for the first seven days of January 2094 at ¥1.00 an
IP-hour; the quantities are powers of two, so every sum names exactly the departments in it."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import datetime
from decimal import Decimal

import pytest

from services.billing.api import bills_cache
from services.common.db import get_engine, raw_connection
from services.common.periods import LOCAL_TZ
from services.query.api import usage_cache
from services.demo.rate_cards import propose_and_approve
from tests.integration.support import ADMIN, FINANCE, PROVIDER, auth, lifecycle_event, post_events, usage_event, \
    wait_stored

pytestmark = pytest.mark.usefixtures("worker")
RUN = uuid.uuid4().hex[:6]
# id suffix → (name, parent suffix, IP-hours in the first week of January 2094)
CITY = {
    "edu": ("市教育局", None, 1), "health": ("市卫健委", None, 2),
    "jj": ("椒江区人民政府", None, 4), "jj-edu": ("椒江区教育局", "jj", 8),
    "jj-water": ("椒江区水利局", "jj", 16),
    "hy": ("黄岩区人民政府", None, 32), "hy-edu": ("黄岩区教育局", "hy", 64),
    "ht": ("台州高新区管委会", None, 128), "ht-park": ("高新区园区服务中心", "ht", 256),
}
WEEK = (datetime(2094, 1, 1, tzinfo=LOCAL_TZ), datetime(2094, 1, 8, tzinfo=LOCAL_TZ))
MONTH = {"from": "2094-01-01", "to": "2094-02-01"}


def dep(suffix: str) -> str:
    return f"h{RUN}-{suffix}"


def ids(*suffixes: str) -> set[str]:
    return {dep(s) for s in suffixes}


def amount(*suffixes: str) -> str:
    return f"{sum(CITY[s][2] for s in suffixes)}.00"


JJ = ("jj", "jj-edu", "jj-water")
OUTSIDE_JJ = ("edu", "health", "hy", "hy-edu", "ht", "ht-park")
DISTRICT = auth("finance", dep("jj"))  # the Jiaojiang district finance office


@pytest.fixture(scope="module")
async def city(apps, worker):
    billing = apps["billing"]
    for suffix, (name, parent, _) in CITY.items():  # parents first: the dict is in that order
        body = {"id": dep(suffix), "name": name, "parent_id": parent and dep(parent)}
        response = await billing.post("/v1/departments", json=body, headers=ADMIN)
        assert response.status_code == 201 and response.json()["parent_id"] == body["parent_id"], response.text
    card = {"version": f"h{RUN}", "effective_from": WEEK[0].isoformat(), "prices": {"network.public_ip": "1.00"}}
    assert (await propose_and_approve(billing, card)).status_code == 201
    events = []
    for suffix, (_, _, hours) in CITY.items():
        ip = f"ip-{dep(suffix)}"
        events += [lifecycle_event(ip, "activated", dep(suffix), WEEK[0], kind="ip", spec={"bandwidth": 5}),
                   usage_event(ip, "network.public_ip", hours, *WEEK)]
    assert (await post_events(apps["metering"], events)).status_code == 202
    await wait_stored(events, worker)
    async with raw_connection(get_engine()) as conn:  # one stored anomaly warning per department
        await conn.executemany(
            "INSERT INTO spend_warnings (day, department_id, meter, spend, median, mad, mad_used, robust_z, "
            "threshold, baseline) VALUES ('2094-01-07', $1, 'network.public_ip', 9, 1, 0, 0.05, 80, 3.5, '{}')",
            [(dep(s),) for s in CITY])
    for suffix in ("jj-edu", "hy-edu"):
        body = {"department_id": dep(suffix), "amount": "-1.00", "reason": "补偿", "month": "2094-02"}
        assert (await billing.post("/v1/adjustments", json=body, headers=ADMIN)).status_code == 201
        put = await billing.put(f"/v1/budgets/{dep(suffix)}/2094", json={"amount": "10.00"}, headers=FINANCE)
        assert put.status_code == 200, put.text
    return CITY


async def usage_rows(apps, headers, **params) -> tuple[int, list]:
    response = await apps["query"].get("/v1/usage", params={**MONTH, "granularity": "total", **params},
                                       headers=headers)
    return response.status_code, response.json().get("rows", []) if response.status_code == 200 else []


async def departments_in(apps, api: str, path: str, headers, key="department_id", **params) -> set:
    response = await apps[api].get(path, params=params, headers=headers)
    assert response.status_code == 200, (path, response.text)
    body = response.json()
    rows = body if isinstance(body, list) else body.get("rows", body.get("findings", body.get("warnings")))
    return {r[key] for r in rows} & ids(*CITY)  # other tests' departments share the database


async def test_departments_are_registered_and_listed_with_their_parent(apps, city):
    listed = (await apps["billing"].get("/v1/departments", headers=FINANCE)).json()
    parents = {d["id"]: d["parent_id"] for d in listed if d["id"] in ids(*CITY)}
    assert parents == {dep(s): p and dep(p) for s, (_, p, _) in CITY.items()}
    district = (await apps["billing"].get("/v1/departments", headers=DISTRICT)).json()
    assert {d["id"] for d in district} == ids(*JJ)
    bureau = (await apps["billing"].get("/v1/departments", headers=auth("department", dep("jj")))).json()
    assert [d["id"] for d in bureau] == [dep("jj")]


async def test_a_parent_that_does_not_exist_is_422_and_a_cycle_is_409_naming_parent_id(apps, city):
    billing = apps["billing"]
    unknown = await billing.post("/v1/departments", json={"id": dep("x"), "name": "x", "parent_id": "nowhere"},
                                 headers=ADMIN)
    assert unknown.status_code == 422 and unknown.json()["detail"].startswith("parent_id:"), unknown.text
    itself = await billing.post("/v1/departments", json={"id": dep("self"), "name": "x", "parent_id": dep("self")},
                                headers=ADMIN)
    assert itself.status_code in (409, 422) and "parent_id" in itself.text, itself.text
    for child, parent in (("jj", "jj-edu"), ("jj", "jj")):
        cycle = await billing.put(f"/v1/departments/{dep(child)}/parent", json={"parent_id": dep(parent)},
                                  headers=ADMIN)
        assert cycle.status_code == 409 and cycle.json()["detail"].startswith("parent_id:"), cycle.text
    moved = await billing.put("/v1/departments/nowhere/parent", json={"parent_id": None}, headers=ADMIN)
    assert moved.status_code == 404
    for who in (FINANCE, DISTRICT, auth("department", dep("jj"))):
        refused = await billing.put(f"/v1/departments/{dep('edu')}/parent", json={"parent_id": None}, headers=who)
        assert refused.status_code == 403


async def test_city_finance_sees_all_and_rolls_up_each_parent_s_subtree(apps, city):
    status, rows = await usage_rows(apps, FINANCE, group_by="department")
    assert status == 200 and {r["department_id"]: r["amount"] for r in rows if r["department_id"] in ids(*CITY)} \
        == {dep(s): amount(s) for s in CITY}
    for parent, subtree in (("jj", JJ), ("hy", ("hy", "hy-edu")), ("ht", ("ht", "ht-park")), ("edu", ("edu",))):
        assert (await usage_rows(apps, FINANCE, department=dep(parent), rollup="true"))[1][0]["amount"] \
            == amount(*subtree)
        assert (await usage_rows(apps, FINANCE, department=dep(parent)))[1][0]["amount"] == amount(parent)
    bills = await apps["billing"].get("/v1/bills", params={"month": "2094-01", "department": dep("jj"),
                                                           "rollup": "true"}, headers=FINANCE)
    assert sorted((b["department_id"], b["total"]) for b in bills.json()) == [(dep(s), amount(s)) for s in JJ]


async def test_district_finance_sees_its_district_and_bureaux_on_every_route_and_nothing_else(apps, city):
    status, rows = await usage_rows(apps, DISTRICT, group_by="department")
    assert status == 200 and {r["department_id"]: r["amount"] for r in rows} == {dep(s): amount(s) for s in JJ}
    assert (await usage_rows(apps, DISTRICT))[1][0]["amount"] == amount(*JJ)  # no unattributed, no other district
    assert (await usage_rows(apps, DISTRICT, department=dep("jj"), rollup="true"))[1][0]["amount"] == amount(*JJ)
    reads = [
        ("billing", "/v1/bills", {"month": "2094-01"}), ("billing", "/v1/adjustments", {}),
        ("billing", "/v1/budgets", {"year": 2094}), ("billing", "/v1/alerts", {"year": 2094}),
        ("query", "/v1/reports/utilization", {"period": "week", "start": "2094-01-01"}),
        ("query", "/v1/reports/waste", {"as_of": "2094-01-08"}), ("query", "/v1/warnings", {"from": "2094-01-01"}),
    ]
    expected = {"/v1/adjustments": ids("jj-edu"), "/v1/budgets": ids("jj-edu"), "/v1/alerts": ids("jj-edu")}
    for api, path, params in reads:
        assert await departments_in(apps, api, path, DISTRICT, **params) == expected.get(path, ids(*JJ)), path
        assert await departments_in(apps, api, path, FINANCE, **params) >= ids("jj-edu", "hy-edu"), path
        assert await departments_in(apps, api, path, DISTRICT, department=dep("jj"), rollup="true", **params) \
            == expected.get(path, ids(*JJ)), path
    focus = await apps["query"].get("/v1/exports/focus", params={"month": "2094-01"}, headers=DISTRICT)
    assert {r["SubAccountId"] for r in csv.DictReader(io.StringIO(focus.text))} == ids(*JJ)
    await refused_everywhere_outside(apps, DISTRICT, OUTSIDE_JJ)
    for path, params in (("/v1/reports/platform", {"month": "2094-01"}), ("/v1/reports/budget-basis", {"year": 2095})):
        assert (await apps["query"].get(path, params=params, headers=DISTRICT)).status_code == 403, path


async def refused_everywhere_outside(apps, headers, outside: tuple[str, ...]) -> None:
    """Every route that takes a department answers 403, without data, for each department in ``outside``."""
    for suffix in outside:
        other = dep(suffix)
        requests = [
            ("query", "/v1/usage", {**MONTH, "department": other}),
            ("query", "/v1/usage", {**MONTH, "department": other, "rollup": "true"}),
            ("query", "/v1/reports/utilization", {"period": "week", "start": "2094-01-01", "department": other}),
            ("query", "/v1/reports/waste", {"as_of": "2094-01-08", "department": other}),
            ("query", "/v1/warnings", {"department": other}),
            ("query", "/v1/exports/focus", {"month": "2094-01", "department": other}),
            ("billing", "/v1/bills", {"month": "2094-01", "department": other}),
            ("billing", "/v1/bills", {"department": other, "rollup": "true"}),
            ("billing", f"/v1/bills/GM-2094-01-{other}", {}),
            ("billing", f"/v1/bills/GM-2094-01-{other}.csv", {}),
            ("billing", f"/v1/bills/GM-2094-01-{other}/document.xlsx", {}),
            ("billing", "/v1/adjustments", {"department": other}),
            ("billing", "/v1/budgets", {"department": other}),
            ("billing", "/v1/alerts", {"department": other}),
        ]
        for api, path, params in requests:
            response = await apps[api].get(path, params=params, headers=headers)
            assert response.status_code == 403 and set(response.json()) == {"detail"}, (path, suffix)  # no data
        put = await apps["billing"].put(f"/v1/budgets/{other}/2094", json={"amount": "1.00"}, headers=headers)
        assert put.status_code == 403
        subscribe = await apps["billing"].post("/v1/subscriptions", json={
            "url": "http://127.0.0.1:9/hook", "events": ["budget.alert"], "department_id": other}, headers=headers)
        assert subscribe.status_code == 403


async def test_a_bureau_s_token_sees_only_itself_even_with_rollup(apps, city):
    for suffix in ("jj-edu", "jj", "ht", "ht-park"):  # a bureau, a district government, the zone's committee
        token = auth("department", dep(suffix))
        status, rows = await usage_rows(apps, token, group_by="department")
        assert status == 200 and [(r["department_id"], r["amount"]) for r in rows] == [(dep(suffix), amount(suffix))]
        own_rollup = await usage_rows(apps, token, department=dep(suffix), rollup="true", group_by="department")
        assert [r["department_id"] for r in own_rollup[1]] == [dep(suffix)]
        for api, path, params in (("billing", "/v1/bills", {"month": "2094-01"}),
                                  ("query", "/v1/reports/waste", {"as_of": "2094-01-08"}),
                                  ("query", "/v1/warnings", {"from": "2094-01-01"})):
            assert await departments_in(apps, api, path, token, **params) == ids(suffix), (path, suffix)
        await refused_everywhere_outside(apps, token, tuple(s for s in CITY if s != suffix)[:3])


async def test_the_high_tech_zone_s_finance_sees_the_zone_and_not_the_districts(apps, city):
    zone = auth("finance", dep("ht"))
    status, rows = await usage_rows(apps, zone, group_by="department")
    assert {r["department_id"] for r in rows} == ids("ht", "ht-park")
    await refused_everywhere_outside(apps, zone, ("jj", "hy-edu", "edu"))
    # a bureau's finance token (a leaf) is its own department alone
    leaf = auth("finance", dep("ht-park"))
    assert {r["department_id"] for r in (await usage_rows(apps, leaf, group_by="department"))[1]} == ids("ht-park")
    await refused_everywhere_outside(apps, leaf, ("ht",))


async def test_a_parent_s_budget_is_set_by_its_district_and_shows_its_subtree_s_spend(apps, city):
    put = await apps["billing"].put(f"/v1/budgets/{dep('jj')}/2094", json={"amount": "100.00"}, headers=DISTRICT)
    assert put.status_code == 200, put.text
    rolled = await apps["billing"].get("/v1/budgets", params={"year": 2094, "department": dep("jj"), "rollup": "true"},
                                       headers=DISTRICT)
    figures = {b["department_id"]: (b["spend"], b["subtree_spend"]) for b in rolled.json()}
    # January's lines, and jj-edu's ¥1.00 credit of February
    assert figures == {dep("jj"): ("4.00", "27.00"), dep("jj-edu"): ("7.00", "7.00")}
    plain = await apps["billing"].get("/v1/budgets", params={"year": 2094, "department": dep("jj")}, headers=FINANCE)
    assert [(b["spend"], b["subtree_spend"]) for b in plain.json()] == [("4.00", None)]


async def test_district_finance_subscribes_to_one_department_of_its_subtree(apps, city):
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["budget.alert"]}
    inside = await apps["billing"].post("/v1/subscriptions", json={**hook, "department_id": dep("jj-water")},
                                        headers=DISTRICT)
    assert inside.status_code == 201 and inside.json()["department_id"] == dep("jj-water")
    everyone = await apps["billing"].post("/v1/subscriptions", json=hook, headers=DISTRICT)
    assert everyone.status_code == 422 and everyone.json()["detail"].startswith("department_id")


async def test_the_response_caches_never_serve_one_scope_s_answer_to_another(apps, city):
    scopes = {"city": FINANCE, "jj": DISTRICT, "ht": auth("finance", dep("ht")),
              "bureau": auth("department", dep("jj-edu"))}
    hits = usage_cache.hits, bills_cache.hits
    answers: dict[str, list] = {}
    for _ in range(2):  # the second round is served from the caches
        for name, token in scopes.items():
            rows = sorted((r["department_id"], r["amount"]) for r in (await usage_rows(
                apps, token, group_by="department"))[1] if r["department_id"] in ids(*CITY))
            bills = await departments_in(apps, "billing", "/v1/bills", token, month="2094-01")
            assert answers.setdefault(name, [rows, bills]) == [rows, bills], name
    assert answers["jj"][1] == ids(*JJ) and answers["ht"][1] == ids("ht", "ht-park")
    assert answers["bureau"][1] == ids("jj-edu") and answers["city"][1] == ids(*CITY)
    assert usage_cache.hits > hits[0] and bills_cache.hits > hits[1]


async def test_re_parenting_moves_the_department_s_history_to_its_new_district_and_no_cached_answer_survives(
        apps, worker):
    billing = apps["billing"]
    a, b, moved = (f"m{RUN}-{x}" for x in ("a", "b", "moved"))
    for department, parent in ((a, None), (b, None), (moved, a)):
        body = {"id": department, "name": department, "parent_id": parent}
        assert (await billing.post("/v1/departments", json=body, headers=ADMIN)).status_code == 201
    ip = f"ip-{moved}"
    events = [lifecycle_event(ip, "activated", moved, WEEK[0], kind="ip", spec={}),
              usage_event(ip, "network.public_ip", 3, *WEEK)]
    assert (await post_events(apps["metering"], events)).status_code == 202
    await wait_stored(events, worker)

    async def seen_by(district: str) -> tuple[set, set]:
        token = auth("finance", district)
        rows = (await usage_rows(apps, token, group_by="department"))[1]
        bills = await billing.get("/v1/bills", params={"month": "2094-01"}, headers=token)
        return {r["department_id"] for r in rows}, {x["department_id"] for x in bills.json()}

    assert await seen_by(a) == ({moved}, {moved})
    assert await seen_by(a) == ({moved}, {moved})  # now from the caches
    response = await billing.put(f"/v1/departments/{moved}/parent", json={"parent_id": b}, headers=ADMIN)
    assert response.status_code == 200 and response.json()["parent_id"] == b
    assert await seen_by(a) == (set(), set())
    assert await seen_by(b) == ({moved}, {moved})
    rolled = await usage_rows(apps, FINANCE, department=b, rollup="true")
    assert rolled[1][0]["amount"] == "3.00"  # January's history rolls up under the new parent
    refused = await apps["query"].get("/v1/usage", params={**MONTH, "department": moved},
                                      headers=auth("finance", a))
    assert refused.status_code == 403


async def test_a_closed_month_s_final_bills_and_period_totals_follow_the_scope(apps, city):
    from tests.integration.test_billing import clock

    with clock(datetime(2094, 2, 1, 1, tzinfo=LOCAL_TZ)):
        closed = await apps["billing"].post("/v1/periods/2094-01/close", headers=ADMIN,
                                            json={"override_watermarks": True, "reason": "hierarchy test"})
    assert closed.status_code == 200, closed.text

    async def january(headers) -> dict:
        periods = (await apps["billing"].get("/v1/periods", headers=headers)).json()
        return {p["period"]: p for p in periods}["2094-01"]

    district = await january(DISTRICT)
    assert (district["bills"], Decimal(district["total"])) == (3, Decimal(amount(*JJ)))
    bureau = await january(auth("department", dep("jj-edu")))
    assert (bureau["bills"], Decimal(bureau["total"])) == (1, Decimal(amount("jj-edu")))
    finals = await apps["billing"].get("/v1/bills", params={"month": "2094-01"}, headers=DISTRICT)
    assert {(b["department_id"], b["status"]) for b in finals.json()} == {(dep(s), "final") for s in JJ}
    own = await apps["billing"].get(f"/v1/bills/GM-2094-01-{dep('jj-water')}", headers=DISTRICT)
    assert own.status_code == 200 and own.json()["total"] == amount("jj-water")
    await refused_everywhere_outside(apps, DISTRICT, ("hy-edu", "ht"))
    await district_finance_holds_no_city_wide_power(apps, dep("jj-water"), dep("hy-edu"))


async def district_finance_holds_no_city_wide_power(apps, inside: str, outside: str) -> None:
    """A district finance office reads its subtree's disputes and applications, nothing else, and none of the
    city's powers: answering disputes (credits), deciding rate cards (prices), the city's closes (totals)."""
    billing = apps["billing"]
    ids = {}
    for department in (inside, outside):
        opened = await billing.post("/v1/disputes", headers=auth("department", department), json={
            "bill_id": f"GM-2094-01-{department}", "meter": "network.public_ip", "reason": "hierarchy test"})
        assert opened.status_code == 201, opened.text
        ids[department] = opened.json()["id"]
    assert (await billing.get(f"/v1/disputes/{ids[inside]}", headers=DISTRICT)).status_code == 200
    refused = await billing.get(f"/v1/disputes/{ids[outside]}", headers=DISTRICT)
    assert refused.status_code == 404 and outside not in refused.text
    for path, body in ((f"/v1/disputes/{ids[inside]}/reject", {"reply": "no"}),
                       (f"/v1/disputes/{ids[inside]}/uphold", {"amount": "0.01"}),
                       ("/v1/rate-cards/proposals/1/approve", {}), ("/v1/rate-cards/proposals/1/reject", {"reason": "x"})):
        assert (await billing.post(path, json=body, headers=DISTRICT)).status_code == 403, path
    for path in ("/v1/closes", "/v1/rate-cards/proposals"):
        assert (await billing.get(path, headers=DISTRICT)).status_code == 403, path
    assert (await billing.post(f"/v1/disputes/{ids[outside]}/reject", json={"reply": "city answers"},
                               headers=FINANCE)).status_code == 200
    for department in (inside, outside):
        applied = await billing.post("/v1/applications", headers=auth("department", department), json={
            "system": "预约办事系统", "kind": "vm", "items": [{"meter": "compute.vcpu", "quantity": "4"}],
            "reason": "hierarchy test", "wanted_by": "2094-03-15"})
        assert applied.status_code == 201, applied.text
        ids[department] = applied.json()["id"]
    assert (await billing.get(f"/v1/applications/{ids[inside]}", headers=DISTRICT)).status_code == 200
    refused = await billing.get(f"/v1/applications/{ids[outside]}", headers=DISTRICT)
    assert refused.status_code == 404 and outside not in refused.text


async def test_two_concurrent_moves_cannot_close_a_cycle_between_them(apps):
    billing = apps["billing"]
    for round_ in range(5):
        a, b = f"c{RUN}-{round_}-a", f"c{RUN}-{round_}-b"
        for department in (a, b):
            body = {"id": department, "name": department}
            assert (await billing.post("/v1/departments", json=body, headers=ADMIN)).status_code == 201
        moves = await asyncio.gather(
            billing.put(f"/v1/departments/{a}/parent", json={"parent_id": b}, headers=ADMIN),
            billing.put(f"/v1/departments/{b}/parent", json={"parent_id": a}, headers=ADMIN))
        assert sorted(m.status_code for m in moves) == [200, 409], [m.text for m in moves]
