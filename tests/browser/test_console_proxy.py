"""The console's own server: sign-in, headers, and that a department cannot reach another department's data
through any console route, because the proxy sends the user's own token and the APIs refuse."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from tests.browser.conftest import DEPARTMENTS, LOCAL, month_start

OWN, OTHER = "ui-edu", "ui-police"


@pytest.fixture
def department_client(console_stack):
    with httpx.Client(base_url=console_stack.console, timeout=60) as client:
        answer = client.post("/session", json={"token": console_stack.token("department", OWN)})
        assert answer.status_code == 200
        assert answer.json() == {"subject": OWN, "role": "department", "department": OWN,
                                 "apis": ["metering", "billing", "query"]}
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        yield client


def foreign_routes(now: datetime) -> list[str]:
    last, this = f"{month_start(now, 1):%Y-%m}", f"{month_start(now):%Y-%m}"
    bill = f"GM-{last}-{OTHER}"
    return [
        f"/api/billing/v1/bills?department={OTHER}", f"/api/billing/v1/bills?month={last}&department={OTHER}",
        f"/api/billing/v1/bills/{bill}", f"/api/billing/v1/bills/{bill}.csv",
        f"/api/billing/v1/bills/{bill}/document.xlsx", f"/api/billing/v1/bills/{bill}/document.pdf",
        f"/api/billing/v1/bills/{bill}.xlsx", f"/api/billing/v1/bills/{bill}.pdf",
        f"/api/billing/v1/bills/GM-{this}-{OTHER}", f"/api/billing/v1/budgets?department={OTHER}",
        f"/api/billing/v1/adjustments?department={OTHER}", "/api/billing/v1/sources", "/api/billing/v1/ledger/verify",
        f"/api/query/v1/usage?from={last}-01&to={this}-01&department={OTHER}",
        f"/api/query/v1/reports/waste?department={OTHER}",
        f"/api/query/v1/reports/utilization?period=month&start={last}-01&department={OTHER}",
        f"/api/query/v1/reports/budget-basis?year={now.year + 1}", f"/api/query/v1/reports/platform?month={last}",
        f"/api/query/v1/warnings?department={OTHER}", f"/api/query/v1/exports/focus?month={last}&department={OTHER}",
        "/api/metering/v1/dead-letters",
    ]


def own_scope_routes(now: datetime) -> list[str]:
    last, this = f"{month_start(now, 1):%Y-%m}", f"{month_start(now):%Y-%m}"
    return [
        "/api/billing/v1/departments", "/api/billing/v1/bills", f"/api/billing/v1/bills?month={last}",
        "/api/billing/v1/periods", "/api/billing/v1/budgets", "/api/billing/v1/alerts", "/api/billing/v1/adjustments",
        f"/api/query/v1/usage?from={last}-01&to={this}-01&group_by=department", "/api/query/v1/reports/waste",
        f"/api/query/v1/reports/utilization?period=month&start={last}-01", "/api/query/v1/warnings",
        f"/api/query/v1/exports/focus?month={last}",
    ]


def test_a_department_cannot_reach_another_departments_data_through_the_console(console_stack, department_client):
    now = datetime.now(LOCAL)
    others = [name for department, name in DEPARTMENTS.items() if department != OWN]
    for route in foreign_routes(now):
        answer = department_client.get(route)
        assert answer.status_code in (401, 403, 404), (route, answer.status_code, answer.text[:200])
        assert not any(name in answer.text for name in others), route
    for route in own_scope_routes(now):
        answer = department_client.get(route)
        assert answer.status_code == 200, (route, answer.text[:200])
        assert not any(other in answer.text for other in [*others, "ui-police", "ui-health"]), route
    # The department's own bill comes through, byte for byte what the API serves it.
    own_bill = f"/v1/bills/GM-{month_start(now, 1):%Y-%m}-{OWN}.csv"
    assert department_client.get("/api/billing" + own_bill).content == console_stack.get(
        "billing", own_bill, console_stack.token("department", OWN)).content


def test_the_proxy_sends_only_the_session_token(console_stack, department_client):
    bill = f"/api/billing/v1/bills/GM-{month_start(datetime.now(LOCAL), 1):%Y-%m}-{OTHER}"
    finance = console_stack.token("finance")
    # A token the page puts in a header or the URL is ignored: the cookie's token is the one sent.
    assert department_client.get(bill, headers={"Authorization": f"Bearer {finance}"}).status_code == 403
    assert department_client.get(bill, params={"token": finance, "access_token": finance}).status_code == 403
    # Without a session the APIs answer 401 themselves; the console reads only (no writes through it).
    with httpx.Client(base_url=console_stack.console) as anonymous:
        assert anonymous.get(bill).status_code == 401
        assert anonymous.get("/session").status_code == 401
        assert anonymous.post("/session", json={"token": "not-a-token"}).status_code == 401
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        answer = department_client.request(method, "/api/billing/v1/adjustments", json={})
        assert answer.status_code == 405, method
    assert department_client.get("/api/elsewhere/v1/bills").status_code == 404


def test_console_pages_are_local_and_locked_down(console_stack):
    with httpx.Client(base_url=console_stack.console) as client:
        index = client.get("/")
        assert index.status_code == 200 and "/static/vendor/echarts.min.js" in index.text
        assert "http://" not in index.text and "https://" not in index.text  # no CDN, no fonts from elsewhere
        policy = index.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert client.get("/static/vendor/echarts.min.js").status_code == 200
        for asset in ("console.js", "console.css", "i18n.js"):
            text = client.get(f"/static/{asset}").text
            assert "//cdn" not in text and "fonts.googleapis" not in text
    answer = httpx.delete(console_stack.console + "/session")
    assert answer.status_code == 204 and "Max-Age=0" in answer.headers["set-cookie"]
