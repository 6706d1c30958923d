"""The console in Debian's Chromium: what finance, a department and the provider see, against the APIs' answers."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from tests.browser.conftest import DEPARTMENTS, LOCAL, month_start, screenshot

pytestmark = pytest.mark.browser


def sign_in(browser, stack, token: str, lang: str = "zh"):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True,
                                  locale="zh-CN" if lang == "zh" else "en-GB")
    page = context.new_page()
    page.goto(stack.console + "/")
    page.fill("#token", token)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("main[data-ready]")
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
    page = sign_in(browser, stack, finance)
    wait_ready(page, "#/overview")
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
    shown = [(rows.nth(i).get_attribute("data-department"), rows.nth(i).locator("td").nth(1).inner_text().replace(",", ""))
             for i in range(rows.count())]
    assert shown == expected
    assert all(name in page.inner_text("main") for name in DEPARTMENTS.values())
    page.wait_for_selector("#trend canvas")
    screenshot(page, "overview")
    # a click drills into a department
    rows.first.click()
    wait_ready(page, f"#/department/{expected[0][0]}")
    assert DEPARTMENTS[expected[0][0]] in page.inner_text("main h1")
    screenshot(page, "department")
    page.context.close()
