"""The 价目审批 page (maker/checker) and the budget basis by information system, in Debian's Chromium: finance
approves or rejects a proposed rate card from the console, its proposer cannot, and the console's only write is
guarded against other origins and other paths."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import httpx
import pytest

from services.common.auth import issue_token
from services.demo.rate_cards import PROPOSER, proposer_headers
from tests.browser.conftest import LOCAL, screenshot
from tests.browser.test_console import go, sign_in

pytestmark = pytest.mark.browser


def propose(stack, effective_from: str = "2093-06-01T00:00:00+08:00") -> dict:
    body = {"version": f"ui-{uuid.uuid4().hex[:8]}", "effective_from": effective_from, "currency": "CNY",
            "prices": {"compute.vcpu": "0.15"}}
    answer = httpx.post(f"{stack.apis['billing']}/v1/rate-cards", json=body, headers=proposer_headers(), timeout=60)
    assert answer.status_code == 202, answer.text
    return answer.json()


def proposal(stack, proposal_id: int) -> dict:
    listed = stack.get("billing", "/v1/rate-cards/proposals", stack.token("finance")).json()
    return next(p for p in listed if p["id"] == proposal_id)


def test_finance_approves_a_pending_card_in_the_console_and_its_proposer_cannot(browser, console_stack):
    stack = console_stack
    card = propose(stack)
    page = sign_in(browser, stack, issue_token("admin", subject=PROPOSER))
    go(page, "#/rate-cards")
    row = page.locator(f'[data-testid="proposal-row"][data-proposal="{card["id"]}"]')
    assert card["version"] in row.inner_text() and PROPOSER in row.inner_text()
    row.locator("[data-approve]").click()
    page.wait_for_selector('[data-testid="decision-result"].error')
    assert "403" in page.locator('[data-testid="decision-result"]').inner_text()
    assert proposal(stack, card["id"])["status"] == "pending"
    page.context.close()

    page = sign_in(browser, stack, stack.token("finance"))
    go(page, "#/rate-cards")
    screenshot(page, "rate-card-approval")
    page.locator(f'[data-testid="proposal-row"][data-proposal="{card["id"]}"] [data-approve]').click()
    page.wait_for_selector(f'[data-testid="decided-row"][data-proposal="{card["id"]}"]')
    decided = proposal(stack, card["id"])
    assert (decided["status"], decided["decided_by"], decided["decided_role"]) == ("approved", "finance", "finance")
    cards = stack.get("billing", "/v1/rate-cards", stack.token("finance")).json()
    (stored,) = [c for c in cards if c["version"] == card["version"]]
    assert (stored["created_by"], stored["approved_by"]) == (PROPOSER, "finance")
    page.context.close()


def test_a_card_rejected_in_the_console_keeps_its_reason(browser, console_stack):
    stack = console_stack
    card = propose(stack, "2093-07-01T00:00:00+08:00")
    page = sign_in(browser, stack, stack.token("admin"), lang="en")
    go(page, "#/rate-cards")
    row = page.locator(f'[data-testid="proposal-row"][data-proposal="{card["id"]}"]')
    row.locator("[data-reason]").fill("价格高于合同")
    row.locator("[data-reject]").click()
    page.wait_for_selector(f'[data-testid="decided-row"][data-proposal="{card["id"]}"]')
    assert "价格高于合同" in page.locator(f'[data-testid="decided-row"][data-proposal="{card["id"]}"]').inner_text()
    assert (proposal(stack, card["id"])["status"], proposal(stack, card["id"])["reason"]) == ("rejected", "价格高于合同")
    page.context.close()


def test_the_consoles_only_write_refuses_other_paths_other_origins_and_departments(console_stack):
    stack, card = console_stack, propose(console_stack, "2093-08-01T00:00:00+08:00")
    path = f"/api/billing/v1/rate-cards/proposals/{card['id']}/approve"
    mine = {"X-Govmeter-Console": "1", "Content-Type": "application/json"}
    with httpx.Client(base_url=stack.console, timeout=60) as client:
        assert client.post("/session", json={"token": stack.token("finance")}).status_code == 200
        assert client.post(path, content=b"{}", headers={"Content-Type": "application/json"}).status_code == 403
        foreign = client.post(path, content=b"{}", headers={**mine, "Origin": "http://127.0.0.1:1"})
        assert foreign.status_code == 403 and foreign.json()["detail"].startswith("origin:")
        for other in ("/api/billing/v1/adjustments", "/api/billing/v1/rate-cards", "/api/query/v1/usage",
                      f"/api/billing/v1/rate-cards/proposals/{card['id']}/approve/../../../rate-cards"):
            assert client.post(other, content=b"{}", headers=mine).status_code in (404, 405), other
        assert proposal(stack, card["id"])["status"] == "pending"
    with httpx.Client(base_url=stack.console, timeout=60) as client:
        assert client.post("/session", json={"token": stack.token("department", "ui-edu")}).status_code == 200
        assert client.post(path, content=b"{}", headers=mine).status_code == 403
        assert client.get("/api/billing/v1/rate-cards/proposals").status_code == 403
    assert proposal(stack, card["id"])["status"] == "pending"


def test_the_budget_basis_by_information_system_equals_the_api(browser, console_stack):
    stack, finance = console_stack, console_stack.token("finance")
    year = str(datetime.now(LOCAL).year + 1)
    page = sign_in(browser, stack, finance)
    go(page, f"#/basis?year={year}&by=system")
    basis = stack.get("query", "/v1/reports/budget-basis", finance, year=year, by="system").json()
    rows = page.locator('[data-testid="basis-system"]')
    shown = sorted((rows.nth(i).locator("td").nth(1).inner_text(),
                    Decimal(rows.nth(i).locator("td").nth(2).inner_text().replace(",", "")))
                   for i in range(rows.count()))
    expected = sorted((s, Decimal(a)) for d in basis["departments"] for s, a in d["by_system"].items())
    assert shown == expected and shown
    href = page.locator('[data-testid="basis-xlsx"]').get_attribute("href")
    assert "by=system" in href
    answer = page.request.get(stack.console + href)
    assert answer.status == 200 and answer.body()[:2] == b"PK"
    screenshot(page, "budget-basis-by-system")
    page.context.close()
