"""The 运行 (Operations) page's worker lag and closes in Debian's Chromium, against the APIs' own answers."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.browser.conftest import LOCAL, month_start, screenshot
from tests.browser.test_console import sign_in, wait_ready

pytestmark = pytest.mark.browser


def test_operations_page_shows_the_worker_lag_per_partition_and_each_close_with_its_duration(browser, console_stack):
    stack = console_stack
    provider = stack.token("provider")
    page = sign_in(browser, stack, provider)
    wait_ready(page, "#/ops")

    lag = stack.get("metering", "/v1/worker-lag", provider).json()
    assert lag["partitions"], lag
    # The seeded worker has read everything: the lag is 0 on the card and on every partition's row.
    assert page.locator('[data-testid="worker-lag"]').inner_text() == str(lag["total"]) == "0"
    for partition in lag["partitions"]:
        cell = page.locator(f'[data-testid="lag-{partition["topic"]}-{partition["partition"]}"]')
        assert cell.inner_text() == "0"
    text = page.inner_text("main")
    assert "处理延迟（按主题分区）" in text and lag["partitions"][0]["topic"] in text

    closes = stack.get("billing", "/v1/closes", provider).json()
    last_month = f"{month_start(datetime.now(LOCAL), 1):%Y-%m}"
    (close,) = [c for c in closes if c["period"] == last_month]
    assert close["duration_seconds"] >= 0
    shown = page.locator(f'[data-testid="close-duration-{last_month}"]').inner_text()
    if close["duration_seconds"] < 10:
        assert shown == f"{close['duration_seconds']:.2f} 秒"
    assert shown.endswith(("秒", "分钟"))
    assert "结账记录" in text and last_month in text and str(close["bills"]) in text
    screenshot(page, "operations-lag-closes")
    page.context.close()


def test_the_operations_page_is_not_offered_to_finance_and_a_department_cannot_read_the_closes(browser,
                                                                                               console_stack):
    stack = console_stack
    assert stack.get("billing", "/v1/closes", stack.token("department", "ui-edu")).status_code == 403
    assert stack.get("metering", "/v1/worker-lag", stack.token("department", "ui-edu")).status_code == 403
    page = sign_in(browser, stack, stack.token("department", "ui-edu"))
    page.evaluate("() => { location.hash = '#/ops' }")
    page.wait_for_function("() => !location.hash.startsWith('#/ops')")  # sent back to its own page
    assert "运行" not in page.inner_text("nav")
    page.context.close()

