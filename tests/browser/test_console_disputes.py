"""Disputes in the console (Art. 13), in Debian's Chromium: a department disputes a line of its own final bill,
finance upholds one with an amount and rejects another with a reply, the department reads the answers; the console
writes nothing but disputes, only from its own pages, and no department sees another's."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from tests.browser.conftest import DEPARTMENTS, LOCAL, month_start, screenshot
from tests.browser.test_console import go, sign_in, wait_ready

pytestmark = pytest.mark.browser
OWN = "ui-health"  # the other console tests read ui-edu's and ui-police's pages: this one's credit leaves them be


def dispute_line(page, meter: str, reason: str) -> None:
    page.click(f'[data-testid="dispute-line"][data-meter="{meter}"]')
    page.fill("#dispute-reason", reason)
    page.click('[data-testid="dispute-submit"]')
    wait_ready(page, "#/disputes")


def row(page, dispute_id: int):
    return page.locator(f'[data-testid="dispute-row"][data-dispute="{dispute_id}"]')


def test_a_department_disputes_its_bill_lines_and_finance_upholds_one_and_rejects_the_other(browser, console_stack):
    stack, now = console_stack, datetime.now(LOCAL)
    last, this = f"{month_start(now, 1):%Y-%m}", f"{month_start(now):%Y-%m}"
    bill_id, mine = f"GM-{last}-{OWN}", stack.token("department", OWN)
    finance = stack.token("finance")
    lines = {line["meter"]: line for line in stack.get("billing", f"/v1/bills/{bill_id}", mine).json()["lines"]}

    page = sign_in(browser, stack, mine)
    go(page, f"#/bill/{bill_id}")
    assert "对此项提出争议" in page.inner_text('[data-testid="bill-disputes"]')
    page.click('[data-testid="dispute-line"][data-meter="compute.vcpu"]')
    screenshot(page, "bill-dispute")
    dispute_line(page, "compute.vcpu", "月中已缩容，仍按原规格计费")
    go(page, f"#/bill/{bill_id}")
    dispute_line(page, "storage.block", "云硬盘已释放")
    disputes = stack.get("billing", "/v1/disputes", mine).json()
    vcpu, disk = (next(d for d in disputes if d["meter"] == meter) for meter in ("compute.vcpu", "storage.block"))
    assert (vcpu["status"], vcpu["line_amount"], vcpu["bill_id"]) == ("open", lines["compute.vcpu"]["amount"], bill_id)
    assert row(page, vcpu["id"]).get_attribute("data-status") == "open" and "待处理" in row(page, disk["id"]).inner_text()
    go(page, f"#/bill/{bill_id}")  # the same line again while its dispute is open: the API's 409, shown
    page.click('[data-testid="dispute-line"][data-meter="compute.vcpu"]')
    page.fill("#dispute-reason", "再次提出")
    page.click('[data-testid="dispute-submit"]')
    page.wait_for_function("() => document.querySelector('[data-testid=\"dispute-error\"]').textContent.includes('409')")
    assert "still open" in page.inner_text('[data-testid="dispute-error"]')
    page.context.close()

    page = sign_in(browser, stack, finance)
    go(page, "#/disputes")
    assert DEPARTMENTS[OWN] in row(page, vcpu["id"]).inner_text()
    too_much = f"{float(lines['compute.vcpu']['amount']) + 0.01:.2f}"
    row(page, vcpu["id"]).locator('[data-testid="amount"]').fill(too_much)
    row(page, vcpu["id"]).locator('[data-testid="uphold"]').click()
    page.wait_for_function("() => document.querySelector('[data-testid=\"dispute-error\"]').textContent.includes('amount')")
    assert f"amount: at most {lines['compute.vcpu']['amount']}" in page.inner_text('[data-testid="dispute-error"]')
    row(page, vcpu["id"]).locator('[data-testid="amount"]').fill("1.20")
    row(page, vcpu["id"]).locator('[data-testid="reply"]').fill("核实缩容，核减差额")
    row(page, vcpu["id"]).locator('[data-testid="uphold"]').click()
    page.wait_for_function(f"() => document.querySelector('[data-dispute=\"{vcpu['id']}\"]')?.dataset.status === 'upheld'")
    row(page, disk["id"]).locator('[data-testid="reply"]').fill("该云硬盘本月仍挂载使用")
    row(page, disk["id"]).locator('[data-testid="reject"]').click()
    page.wait_for_function(f"() => document.querySelector('[data-dispute=\"{disk['id']}\"]')?.dataset.status === 'rejected'")
    wait_ready(page, "#/disputes")
    assert "1.20" in row(page, vcpu["id"]).locator('[data-testid="dispute-credit"]').inner_text()
    screenshot(page, "disputes-finance")
    page.context.close()

    upheld = stack.get("billing", f"/v1/disputes/{vcpu['id']}", finance).json()
    assert (upheld["status"], upheld["credit"], upheld["credit_period"], upheld["answered_by"]) == (
        "upheld", "1.20", this, "finance")
    draft = stack.get("billing", f"/v1/bills/GM-{this}-{OWN}", mine).json()
    assert [(a["amount"], a["reference"]) for a in draft["adjustments"] if a["kind"] == "manual"] == [
        ("-1.20", f"dispute:{vcpu['id']}")]
    assert stack.get("billing", f"/v1/disputes/{disk['id']}", finance).json()["reply"] == "该云硬盘本月仍挂载使用"

    page = sign_in(browser, stack, mine)  # the department reads the answers, in both languages
    go(page, "#/disputes")
    assert "已支持" in row(page, vcpu["id"]).inner_text() and "已驳回" in row(page, disk["id"]).inner_text()
    assert "该云硬盘本月仍挂载使用" in row(page, disk["id"]).inner_text()
    assert not any(name in page.inner_text("body") for d, name in DEPARTMENTS.items() if d != OWN)
    assert not row(page, vcpu["id"]).locator('[data-testid="uphold"]').count()  # a department does not answer
    screenshot(page, "disputes-department")
    page.click('[data-testid="lang-switch"]')
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    wait_ready(page, "#/disputes")
    assert "Disputes" in page.inner_text("nav") and "Upheld" in row(page, vcpu["id"]).inner_text()
    page.click('[data-testid="lang-switch"]')
    wait_ready(page, "#/disputes")
    go(page, f"#/bill/GM-{this}-{OWN}")  # the credit on this month's draft, naming the dispute
    assert f"争议 #{vcpu['id']} 成立" in page.inner_text("main")
    page.context.close()

    other = sign_in(browser, stack, stack.token("department", "ui-edu"))
    go(other, "#/disputes")
    assert not other.locator('[data-testid="dispute-row"]').count()
    assert DEPARTMENTS[OWN] not in other.inner_text("body") and "核实缩容" not in other.inner_text("body")
    other.context.close()


def test_the_console_writes_only_its_workflows_and_only_from_its_own_pages(console_stack):
    stack = console_stack
    # the header the console's own pages send (services/console/writes.py); Origin and Sec-Fetch-Site are checked too
    with httpx.Client(base_url=stack.console, timeout=60, headers={"X-Govmeter-Console": "1"}) as client:
        assert client.post("/session", json={"token": stack.token("department", "ui-edu")}).status_code == 200
        bill = {"bill_id": f"GM-{month_start(datetime.now(LOCAL), 1):%Y-%m}-ui-police", "meter": "compute.vcpu",
                "reason": "x"}
        for path in ("/api/billing/v1/adjustments", "/api/billing/v1/disputes/1/uphold/x", "/api/query/v1/disputes",
                     "/api/billing/v1/periods/2026-01/close", "/api/billing/v1/rate-cards"):
            assert client.post(path, json={}).status_code == 405, path
        assert client.post("/api/billing/v1/disputes", json=bill,
                           headers={"Origin": "https://elsewhere.example"}).status_code == 403
        assert client.post("/api/billing/v1/disputes", json=bill,
                           headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert client.post("/api/billing/v1/disputes", content=b"bill_id=x",
                           headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 415
        # through the console, as through the API: another department's bill, its disputes, its answers refused
        refused = client.post("/api/billing/v1/disputes", json=bill)
        assert refused.status_code == 403 and "ui-police" not in refused.text
        opened = httpx.post(f"{stack.apis['billing']}/v1/disputes", json={**bill, "meter": "security.waf"},
                            headers={"Authorization": f"Bearer {stack.token('department', 'ui-police')}"})
        assert opened.status_code == 201, opened.text
        others = [d for d in stack.get("billing", "/v1/disputes", stack.token("finance")).json()
                  if d["department_id"] != "ui-edu"]
        assert others
        for dispute in others:
            assert client.get(f"/api/billing/v1/disputes/{dispute['id']}").status_code == 404
            assert client.post(f"/api/billing/v1/disputes/{dispute['id']}/reject",
                               json={"reply": "x"}).status_code == 403
        for params in ({"department": "ui-police"}, {"department": "ui-health"}):
            assert client.get("/api/billing/v1/disputes", params=params).status_code == 403
        own = client.get("/api/billing/v1/disputes")
        assert own.status_code == 200 and all(d["department_id"] == "ui-edu" for d in own.json())
