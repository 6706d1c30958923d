"""The 申请 (Applications) page in Debian's Chromium: a department applies and sees the API's estimate, the
e-government centre accepts and approves, the provider fulfils, an overdue application is marked, and the console
passes on no write but the workflow's."""

from __future__ import annotations

import os
import re

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.browser.conftest import in_thread, screenshot
from tests.browser.test_console import go, sign_in, wait_ready
from tests.conftest import SUPERUSER_URL
from tests.integration.support import SOURCE

pytestmark = pytest.mark.browser
OWN = "ui-edu"


def row(page, application_id: int):
    return page.locator(f'tr[data-testid="application"][data-id="{application_id}"]')


def wait_state(page, application_id: int, state: str) -> None:
    page.wait_for_selector(f'tr[data-testid="application"][data-id="{application_id}"][data-state="{state}"]')


async def _make_overdue(application_id: int) -> None:
    # The stack's clock is the real one: move the approval clock into the past rather than wait two working days.
    database = make_url(os.environ["DATABASE_URL"]).database + "_ui"
    url = make_url(SUPERUSER_URL).set(database=database, drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE applications SET approval_due_at = now() - interval '1 hour' WHERE id = $1",
                           application_id)
    finally:
        await conn.close()


def test_an_application_goes_from_the_department_through_egov_to_the_provider_in_the_console(browser, console_stack):
    stack = console_stack
    page = sign_in(browser, stack, stack.token("department", OWN))
    go(page, "#/applications")
    form = page.locator("#application-form")
    form.locator('input[name="system"]').fill("智慧教育平台")
    form.locator('select[name="meter0"]').select_option("compute.vcpu")
    form.locator('input[name="quantity0"]').fill("2")
    form.locator('textarea[name="reason"]').fill("扩容在线考试系统")
    page.click("#estimate-button")
    page.wait_for_selector('[data-testid="estimate-total"]')
    body = {"system": "智慧教育平台", "kind": "vm", "spec": {}, "reason": "扩容在线考试系统",
            "items": [{"meter": "compute.vcpu", "quantity": "2"}]}
    answer = httpx.post(f"{stack.apis['billing']}/v1/applications/estimate", json=body,
                        headers={"Authorization": f"Bearer {stack.token('department', OWN)}"}).json()
    shown = re.sub(r"[^\d.]", "", page.locator('[data-testid="estimate-total"]').inner_text())
    assert shown == answer["total"] and answer["total"] != "0.00"
    screenshot(page, "applications-estimate")
    before = page.locator('tr[data-testid="application"]').count()
    form.locator('button[type="submit"]').click()
    page.wait_for_function("n => document.querySelectorAll('tr[data-testid=\"application\"]').length > n", arg=before)
    application_id = int(page.locator('tr[data-testid="application"]').first.get_attribute("data-id"))
    wait_state(page, application_id, "submitted")
    page.context.close()

    egov = sign_in(browser, stack, stack.token("egov"))
    wait_ready(egov, "#/applications")  # the e-government centre's home
    row(egov, application_id).locator('button[data-action="accept"]').click()
    wait_state(egov, application_id, "accepted")
    row(egov, application_id).locator('button[data-action="approve"]').click()
    wait_state(egov, application_id, "approved")
    egov.context.close()

    provider = sign_in(browser, stack, stack.token("provider"))
    go(provider, "#/applications")
    line = row(provider, application_id)
    line.locator(".resource-id").fill(f"ui-vm-app-{application_id}")
    line.locator(".event-source").fill(SOURCE)
    line.locator('button[data-action="fulfil"]').click()
    wait_state(provider, application_id, "fulfilled")
    screenshot(provider, "applications-fulfilled")
    provider.context.close()


def test_an_overdue_application_is_marked_and_listed_under_overdue_only(browser, console_stack):
    stack = console_stack
    body = {"system": "智慧教育平台", "kind": "disk", "reason": "归档",
            "items": [{"meter": "storage.block", "quantity": "500"}]}
    created = httpx.post(f"{stack.apis['billing']}/v1/applications", json=body,
                         headers={"Authorization": f"Bearer {stack.token('department', OWN)}"})
    assert created.status_code == 201, created.text
    application_id = created.json()["id"]
    in_thread(_make_overdue(application_id))
    page = sign_in(browser, stack, stack.token("egov"))
    wait_ready(page, "#/applications")
    assert row(page, application_id).locator('[data-testid="overdue"]').count() == 1
    page.check("#only-overdue")
    wait_ready(page, "#/applications?overdue=1")
    ids = [int(r.get_attribute("data-id")) for r in page.locator('tr[data-testid="application"]').all()]
    assert application_id in ids
    assert all(page.locator(f'tr[data-testid="application"][data-id="{i}"] [data-testid="overdue"]').count() == 1
               for i in ids)
    screenshot(page, "applications-overdue")
    page.context.close()


def test_the_console_passes_on_no_write_but_the_workflows_and_only_from_its_pages(console_stack):
    with httpx.Client(base_url=console_stack.console) as client:
        client.post("/session", json={"token": console_stack.token("department", OWN)})
        body = {"system": "s", "kind": "vm", "reason": "r", "items": [{"meter": "compute.vcpu", "quantity": "1"}]}
        assert client.post("/api/billing/v1/applications/estimate", json=body).status_code == 403  # no marker
        marked = {"X-Govmeter-Console": "1"}
        assert client.post("/api/billing/v1/applications/estimate", json=body, headers=marked).status_code == 200
        assert client.post("/api/billing/v1/adjustments", json={}, headers=marked).status_code == 405
        assert client.post("/api/billing/v1/rate-cards", json={}, headers=marked).status_code == 405
        assert client.post("/api/billing/v1/applications/estimate", content=b"x=1", headers={
            **marked, "Content-Type": "application/x-www-form-urlencoded"}).status_code == 415
        assert client.post("/api/billing/v1/applications/estimate", content=b"{" + b" " * 70_000 + b"}", headers={
            **marked, "Content-Type": "application/json"}).status_code == 413
