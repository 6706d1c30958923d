"""The console in Debian's Chromium: what finance, a department and the provider see, against the APIs' answers."""

from __future__ import annotations

import re
from pathlib import Path
from datetime import datetime

import pytest

from tests.browser.conftest import DEPARTMENTS, LOCAL, month_start, screenshot

pytestmark = pytest.mark.browser


def sign_in(browser, stack, token: str, lang: str = "zh", route: str | None = None):
    """A fresh browser context signed in with the token, on its first page (or, given a route, once that route's
    page is ready)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True,
                                  locale="zh-CN" if lang == "zh" else "en-GB")
    page = context.new_page()
    page.goto(stack.console + "/")
    page.fill("#token", token)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("main[data-ready]")
    if route is not None:
        wait_ready(page, route)
    return page


def wait_ready(page, route: str) -> None:
    page.wait_for_function("route => document.querySelector('main').dataset.ready === route", arg=route)


def go(page, route: str) -> None:
    page.evaluate("route => { location.hash = route }", route)
    wait_ready(page, route)


def shown_amount(page, testid: str) -> str:
    text = page.locator(f'[data-testid="{testid}"]').inner_text()
    return re.sub(r"[^\d.\-]", "", text)


def test_finance_overview_equals_the_api_to_the_fen(browser, console_stack):
    stack, finance = console_stack, console_stack.token("finance")
    page = sign_in(browser, stack, finance, route="#/overview")
    now = datetime.now(LOCAL)
    answer = stack.get("query", "/v1/usage", finance, **{"from": f"{month_start(now, 12):%Y-%m-%d}",
                                                         "to": f"{month_start(now, -1):%Y-%m-%d}",
                                                         "granularity": "month"}).json()
    monthly = {row["period_start"][:7]: row["amount"] for row in answer["rows"]}
    assert shown_amount(page, "kpi-this-month") == monthly[f"{month_start(now):%Y-%m}"]
    assert shown_amount(page, "kpi-last-month") == monthly[f"{month_start(now, 1):%Y-%m}"]
    assert shown_amount(page, "kpi-last-year") == monthly[f"{month_start(now, 12):%Y-%m}"]
    top = stack.get("query", "/v1/usage", finance, **{"from": f"{month_start(now):%Y-%m-%d}",
                                                      "to": f"{month_start(now, -1):%Y-%m-%d}",
                                                      "group_by": "department", "granularity": "total"}).json()
    expected = sorted(((row["department_id"], row["amount"]) for row in top["rows"]),
                      key=lambda item: -float(item[1]))
    rows = page.locator('[data-testid="top-department"]')
    shown = [(rows.nth(i).get_attribute("data-department"),
              rows.nth(i).locator("td").nth(1).inner_text().replace(",", "")) for i in range(rows.count())]
    assert shown == expected
    assert all(name in page.inner_text("main") for name in DEPARTMENTS.values())
    page.wait_for_selector("#trend canvas")
    screenshot(page, "overview")
    # a past month's overview: that month, the one before and a year before, to the fen
    last = f"{month_start(now, 1):%Y-%m}"
    go(page, f"#/overview?month={last}")
    assert shown_amount(page, "kpi-this-month") == monthly[last] == shown_amount(page, "kpi-projection")
    assert shown_amount(page, "kpi-last-month") == monthly[f"{month_start(now, 2):%Y-%m}"]
    go(page, "#/overview")
    # a click drills into a department
    rows.first.click()
    wait_ready(page, f"#/department/{expected[0][0]}")
    assert DEPARTMENTS[expected[0][0]] in page.inner_text("main h1")
    screenshot(page, "department")
    page.context.close()


def other_departments_marks(stack, own: str) -> list[str]:
    """What must never appear on a page of ``own``: the other departments' ids, names and bill totals."""
    finance = stack.token("finance")
    marks = []
    for department, name in DEPARTMENTS.items():
        if department == own:
            continue
        marks += [department, name]
        for bill in stack.get("billing", "/v1/bills", finance, department=department).json():
            marks.append(f"{float(bill['total']):,.2f}")
    return marks


def test_a_department_sees_only_its_own_data_and_downloads_its_bill(browser, console_stack):
    stack, own = console_stack, "ui-edu"
    page = sign_in(browser, stack, stack.token("department", own))
    seen_bodies: list[str] = []
    page.on("response", lambda r: seen_bodies.append(r.text()) if "/api/" in r.url else None)
    wait_ready(page, f"#/department/{own}")
    assert DEPARTMENTS[own] in page.inner_text("main h1")
    screenshot(page, "department-own")
    now = datetime.now(LOCAL)
    foreign = [f"GM-{month_start(now, 1):%Y-%m}-ui-police", f"GM-{month_start(now):%Y-%m}-ui-health"]
    routes = ["#/bills", f"#/bills?month={month_start(now, 1):%Y-%m}", f"#/bill/GM-{month_start(now, 1):%Y-%m}-{own}",
              "#/department/ui-police", f"#/bill/{foreign[0]}", f"#/bill/{foreign[1]}"]
    marks = other_departments_marks(stack, own)
    for route in routes:
        go(page, route)
        text = page.inner_text("body")
        assert not [mark for mark in marks if mark in text], (route, text)
    for route in ("#/overview", "#/basis", "#/ops", "#/departments"):  # not this role's pages: back home
        page.evaluate("route => { location.hash = route }", route)
        wait_ready(page, f"#/department/{own}")
        assert not [mark for mark in marks if mark in page.inner_text("body")], route
    page.wait_for_timeout(200)
    leaked = [mark for body in seen_bodies for mark in marks if mark in body and mark.startswith("ui-") is False]
    assert not leaked  # no API answer the page received carried another department's name or figure
    assert all(("市卫生健康委员会" not in body and "市公安局" not in body) for body in seen_bodies)
    go(page, f"#/bill/GM-{month_start(now, 1):%Y-%m}-{own}")
    assert page.locator('[data-testid="content-hash"]').inner_text() == stack.get(
        "billing", f"/v1/bills/GM-{month_start(now, 1):%Y-%m}-{own}", stack.token("finance")).json()["content_hash"]
    screenshot(page, "bill")
    with page.expect_download() as download:
        page.click('[data-testid="download-csv"]')
    csv = Path(download.value.path()).read_bytes()
    assert csv == stack.get("billing", f"/v1/bills/GM-{month_start(now, 1):%Y-%m}-{own}.csv",
                            stack.token("department", own)).content
    assert csv.startswith(b"\xef\xbb\xbf") and b"ui-police" not in csv
    for link in ("download-xlsx", "download-pdf"):  # the documents' links name the bill, through the proxy
        href = page.locator(f'[data-testid="{link}"]').get_attribute("href")
        assert href.startswith(f"/api/billing/v1/bills/GM-{month_start(now, 1):%Y-%m}-{own}/document.")
    page.context.close()


def test_finance_bills_and_budget_basis(browser, console_stack):
    stack, finance = console_stack, console_stack.token("finance")
    now = datetime.now(LOCAL)
    page = sign_in(browser, stack, finance)
    last = f"{month_start(now, 1):%Y-%m}"
    go(page, f"#/bills?month={last}")
    bills = stack.get("billing", "/v1/bills", finance, month=last).json()
    rows = page.locator('[data-testid="bill-row"]')
    assert [rows.nth(i).get_attribute("data-bill") for i in range(rows.count())] == [b["bill_id"] for b in bills]
    screenshot(page, "bills")
    go(page, f"#/bill/{bills[0]['bill_id']}")
    bill = stack.get("billing", f"/v1/bills/{bills[0]['bill_id']}", finance).json()
    assert shown_amount(page, "bill-total") == bill["total"]
    assert page.locator('[data-testid="content-hash"]').inner_text() == bill["content_hash"]
    year = str(now.year + 1)
    go(page, "#/basis")
    basis = stack.get("query", "/v1/reports/budget-basis", finance, year=year).json()
    assert shown_amount(page, "basis-total") == basis["total_proposed_basis"]
    for department in basis["departments"]:
        assert f"{float(department['proposed_basis']):,.2f}" in page.inner_text("main")
    href = page.locator('[data-testid="basis-xlsx"]').get_attribute("href")
    answer = page.request.get(stack.console + href)
    assert answer.status == 200 and answer.body()[:2] == b"PK"  # an XLSX, fetched with the session cookie
    screenshot(page, "budget-basis")
    page.context.close()


def test_operations_page_as_the_provider(browser, console_stack):
    stack = console_stack
    page = sign_in(browser, stack, stack.token("provider"), route="#/ops")
    sources = stack.get("billing", "/v1/sources", stack.token("provider")).json()
    text = page.inner_text("main")
    for source in sources:
        assert source["source"] in text and str(source["events"]) in text
    assert "死信" in text and "数据源新鲜度" in text
    letters = stack.get("metering", "/v1/dead-letters", stack.token("provider")).json()["dead_letters"]
    assert letters and all(letter["reason"] in text for letter in letters)
    page.wait_for_function("() => document.querySelector('[data-testid=\"events-per-second\"]').textContent !== '—'")
    nav = page.inner_text("nav")
    assert "运行" in nav and "总览" not in nav and "账单" not in nav
    screenshot(page, "operations")
    page.context.close()


def test_the_language_switch_turns_the_console_english_and_the_choice_survives_a_reload(browser, console_stack):
    page = sign_in(browser, console_stack, console_stack.token("finance"), route="#/overview")
    assert "总览" in page.inner_text("nav") and "本月至今城市支出" in page.inner_text("main")
    page.click('[data-testid="lang-switch"]')
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    wait_ready(page, "#/overview")
    assert "Overview" in page.inner_text("nav") and "City spend this month so far" in page.inner_text("main")
    assert "总览" not in page.inner_text("nav")
    screenshot(page, "overview-en")
    page.reload()  # the choice is kept
    wait_ready(page, "#/overview")
    assert "Budget basis" in page.inner_text("nav")
    page.click('[data-testid="lang-switch"]')
    wait_ready(page, "#/overview")
    assert "预算依据" in page.inner_text("nav")
    page.context.close()
