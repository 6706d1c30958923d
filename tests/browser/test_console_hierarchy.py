"""The console signed in as a district finance office (issue 17): its district's subtree roll-up, its bureaux, and
nothing of the city bureaux or the other district, on any page or in any API answer the pages received."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from tests.browser.conftest import DEPARTMENTS, LOCAL, month_start, screenshot
from tests.browser.test_console import go, shown_amount, sign_in, wait_ready
from tests.browser.test_console_proxy import OTHER, foreign_routes, own_scope_routes
from tests.integration.support import lifecycle_event, usage_event

pytestmark = pytest.mark.browser
DISTRICT = {"ui-jj": ("椒江区人民政府", None, "24"), "ui-jj-edu": ("椒江区教育局", "ui-jj", "40"),
            "ui-jj-water": ("椒江区水利局", "ui-jj", "56")}
OTHER_DISTRICT = {"ui-hy": ("黄岩区人民政府", None, "72")}


@pytest.fixture(scope="module")
def districts(console_stack):
    """Two district governments (Jiaojiang with two bureaux), each with a VM used over last month and this one."""
    stack, now = console_stack, datetime.now(LOCAL)
    admin, provider = stack.token("admin"), stack.token("provider")
    first, until = month_start(now, 1), now.replace(minute=0, second=0, microsecond=0)
    events = []
    with httpx.Client(timeout=60) as client:
        for department, (name, parent, quantity) in {**DISTRICT, **OTHER_DISTRICT}.items():
            answer = client.post(f"{stack.apis['billing']}/v1/departments",
                                 headers={"Authorization": f"Bearer {admin}"},
                                 json={"id": department, "name": name, "parent_id": parent})
            assert answer.status_code == 201, answer.text
            vm = f"{department}-vm"
            events += [lifecycle_event(vm, "activated", department, first, system="区级政务平台"),
                       usage_event(vm, "compute.vcpu", quantity, first, month_start(now))]
            if until > month_start(now):
                events.append(usage_event(vm, "compute.vcpu", quantity, month_start(now), until))
        answer = client.post(f"{stack.apis['metering']}/v1/events", json=events,
                             headers={"Authorization": f"Bearer {provider}"})
        assert answer.status_code == 202, answer.text
    deadline = time.monotonic() + 120
    finance = stack.token("finance")
    while len(stack.get("query", "/v1/usage", finance, **{"from": f"{first:%Y-%m-%d}", "group_by": "department",
                                                          "to": f"{month_start(now, -1):%Y-%m-%d}"}).json()["rows"]
              ) < len(DEPARTMENTS) + len(DISTRICT) + len(OTHER_DISTRICT):
        assert time.monotonic() < deadline, "the districts' usage was not stored"
        time.sleep(0.3)
    return stack


def test_district_finance_sees_its_subtree_roll_up_and_nothing_outside_it(browser, districts):
    stack, now = districts, datetime.now(LOCAL)
    token = stack.token("finance", "ui-jj")
    page = sign_in(browser, stack, token)
    bodies: list[str] = []
    page.on("response", lambda r: bodies.append(r.text()) if "/api/" in r.url else None)
    wait_ready(page, "#/department/ui-jj")
    page.wait_for_selector('[data-testid="subtree"]')
    months = {"from": f"{month_start(now, 11):%Y-%m-%d}", "to": f"{month_start(now, -1):%Y-%m-%d}"}
    rolled = stack.get("query", "/v1/usage", stack.token("finance"), **months, department="ui-jj", rollup="true").json()
    assert shown_amount(page, "subtree-year") == rolled["rows"][0]["amount"]
    rows = page.locator('[data-testid="subtree-row"]')
    assert sorted(rows.nth(i).get_attribute("data-department") for i in range(rows.count())) == sorted(DISTRICT)
    screenshot(page, "district-finance")
    outside = [*DEPARTMENTS, *DEPARTMENTS.values(), *OTHER_DISTRICT, OTHER_DISTRICT["ui-hy"][0]]
    for route in ("#/departments", "#/bills", "#/department/ui-jj-edu", "#/department/ui-hy", "#/department/ui-edu"):
        go(page, route)
        text = page.inner_text("body")
        assert not [mark for mark in outside if mark in text], (route, text)
    go(page, "#/departments")
    assert all(name in page.inner_text("main") for name, _, _ in DISTRICT.values())
    for route in ("#/overview", "#/basis", "#/ops"):  # city-wide pages: not this token's, back home
        page.evaluate("route => { location.hash = route }", route)
        wait_ready(page, "#/department/ui-jj")
    page.wait_for_timeout(200)
    assert not [mark for body in bodies for mark in outside if mark in body]
    for path in ("/api/query/v1/usage?from=2020-01-01&to=2030-01-01&department=ui-hy",
                 "/api/billing/v1/bills?department=ui-edu", "/api/query/v1/reports/platform?month=2026-01"):
        status = page.evaluate("path => fetch(path).then(r => r.status)", path)
        assert status == 403, path
    page.context.close()


def test_district_finance_reaches_nothing_outside_its_subtree_through_any_console_route(districts):
    stack, now = districts, datetime.now(LOCAL)
    outside_names = [*DEPARTMENTS.values(), OTHER_DISTRICT["ui-hy"][0]]
    with httpx.Client(base_url=stack.console, timeout=60) as client:
        answer = client.post("/session", json={"token": stack.token("finance", "ui-jj")})
        assert answer.status_code == 200 and answer.json()["department"] == "ui-jj"
        for route in foreign_routes(now):
            if route == "/api/billing/v1/sources":
                continue  # the collectors' watermarks: finance reads them, no department's data is in them
            rolled = route + ("&" if "?" in route else "?") + "rollup=true"
            for variant in (route, route.replace(OTHER, "ui-hy"), rolled):
                assert client.get(variant).status_code in (401, 403, 404), variant
        for route in own_scope_routes(now):
            answer = client.get(route)
            assert answer.status_code == 200, (route, answer.text[:200])
            assert not [name for name in outside_names if name in answer.text], route
