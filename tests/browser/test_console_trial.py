"""A bill page in Debian's Chromium shows a trial (试运行) line: a resource fulfilled with a trial, its usage in the
trial window on the department's draft bill at the trial rate (0 by default), marked as such."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import httpx
import pytest

from tests.browser.conftest import LOCAL, screenshot
from tests.browser.test_console import go, sign_in
from tests.browser.test_console_applications import OWN
from tests.integration.support import SOURCE, usage_event

pytestmark = pytest.mark.browser


def _step(stack, application_id: int, action: str, token: str, **body) -> dict:
    answer = httpx.post(f"{stack.apis['billing']}/v1/applications/{application_id}/{action}", json=body or None,
                        headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _fulfilled_with_a_trial_and_used(stack) -> tuple[str, str]:
    body = {"system": "智慧教育平台", "kind": "vm", "reason": "试运行在线考试系统",
            "items": [{"meter": "compute.vcpu", "quantity": "2"}]}
    created = httpx.post(f"{stack.apis['billing']}/v1/applications", json=body, timeout=60,
                         headers={"Authorization": f"Bearer {stack.token('department', OWN)}"})
    assert created.status_code == 201, created.text
    application_id = created.json()["id"]
    _step(stack, application_id, "accept", stack.token("egov"))
    _step(stack, application_id, "approve", stack.token("egov"))
    vm = f"ui-vm-trial-{uuid.uuid4().hex[:6]}"
    fulfilled = _step(stack, application_id, "fulfil", stack.token("provider"), resource_id=vm, source=SOURCE,
                      trial_days=3)
    start = datetime.fromisoformat(fulfilled["trial"]["starts_at"]) + timedelta(seconds=1)
    time.sleep(max(0.0, (start + timedelta(seconds=1) - datetime.now(start.tzinfo)).total_seconds()))
    usage = usage_event(vm, "compute.vcpu", "2", start, start + timedelta(seconds=1))
    posted = httpx.post(f"{stack.apis['metering']}/v1/events", json=[usage], timeout=60,
                        headers={"Authorization": f"Bearer {stack.token('provider')}"})
    assert posted.status_code == 202, posted.text
    return f"GM-{start.astimezone(LOCAL):%Y-%m}-{OWN}", vm


def test_the_bill_page_marks_the_trial_line_and_its_rate(browser, console_stack):
    stack = console_stack
    bill_id, _ = _fulfilled_with_a_trial_and_used(stack)
    mine = stack.token("department", OWN)
    deadline = time.monotonic() + 120
    while not [line for line in stack.get("billing", f"/v1/bills/{bill_id}", mine).json()["lines"]
               if line.get("trial_rate") is not None]:
        assert time.monotonic() < deadline, "no trial line on the draft bill"
        time.sleep(0.5)
    page = sign_in(browser, stack, mine)
    go(page, f"#/bill/{bill_id}")
    badge = page.locator('[data-testid="trial-line"]')
    badge.first.wait_for()
    assert badge.count() == 1 and "×0" in badge.inner_text()
    row = badge.locator("xpath=ancestor::tr")
    assert "0.00" in row.locator("td").last.inner_text()
    screenshot(page, "bill-trial-line")
    page.context.close()
