"""Reads are bounded: an API's statements are cancelled after GOVMETER_STATEMENT_TIMEOUT_SECONDS (503 saying so),
/v1/usage refuses an answer of more than GOVMETER_USAGE_MAX_ROWS rows with a 422 that says how to narrow it,
CSV exports are streamed, and a NUL in a filter is a 422 naming the parameter.

Era: 2048 (rate cards are global and effective-dated; other tests live in other years)."""

from __future__ import annotations

import csv
import io

import pytest
from asyncpg.exceptions import QueryCanceledError

import services.query.api as query_api
from services.common import db
from services.common.db import get_engine, raw_connection
from tests.integration.support import ADMIN, FINANCE, auth, lifecycle_event, usage_event
from tests.integration.test_billing import department, local, new_id, publish, rate_card

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
async def statement_limit(settings):
    """Set the process's statement timeout for the test (new connections), and put it back after."""

    async def limit(seconds: float) -> None:
        db.limit_statement_time(seconds)
        await get_engine().dispose()

    yield limit
    await limit(settings.statement_timeout_seconds)


async def test_api_statements_are_cancelled_after_the_statement_timeout_and_answered_503(
        apps, settings, statement_limit, monkeypatch):
    assert settings.statement_timeout_seconds == 15
    async with raw_connection(get_engine()) as conn:
        assert await conn.fetchval("SHOW statement_timeout") == "15s"
    await statement_limit(0.2)
    async with raw_connection(get_engine()) as conn:
        with pytest.raises(QueryCanceledError):
            await conn.fetchval("SELECT pg_sleep(2)")

    async def slow_usage(engine, query, max_rows):
        async with raw_connection(engine) as conn:
            await conn.fetchval("SELECT pg_sleep(2)")

    monkeypatch.setattr(query_api, "usage_report_json", slow_usage)
    response = await apps["query"].get("/v1/usage", params={"from": "2048-01-01", "to": "2048-01-02"},
                                       headers=FINANCE)
    assert response.status_code == 503 and "GOVMETER_STATEMENT_TIMEOUT_SECONDS" in response.text, response.text


async def test_usage_answers_beyond_the_row_limit_are_refused_saying_how_to_narrow_them(
        apps, worker, settings, monkeypatch):
    dep = await department(apps)
    await rate_card(apps, local(2048, 1, 1), compute_vcpu="1.00")
    vms = [new_id("vm") for _ in range(3)]
    await publish(apps, [*(lifecycle_event(vm, "activated", dep, local(2048, 1, 1)) for vm in vms),
                         *(usage_event(vm, "compute.vcpu", "1", local(2048, 1, 2)) for vm in vms)], worker)
    monkeypatch.setattr(settings, "usage_max_rows", 2)
    params = {"from": "2048-01-01", "to": "2048-02-01", "department": dep}
    refused = await apps["query"].get("/v1/usage", params={**params, "group_by": "resource"}, headers=FINANCE)
    assert refused.status_code == 422, refused.text
    assert "more than 2 rows" in refused.text and "narrow" in refused.text
    fits = await apps["query"].get("/v1/usage", params={**params, "group_by": "meter"}, headers=FINANCE)
    assert fits.status_code == 200 and [r["quantity"] for r in fits.json()["rows"]] == ["3"]

    focus = await apps["query"].get("/v1/exports/focus", params={"month": "2048-01", "department": dep},
                                    headers=FINANCE)
    assert focus.status_code == 200 and "content-length" not in focus.headers  # streamed
    assert {r["ResourceId"] for r in csv.DictReader(io.StringIO(focus.text)) if r["ResourceId"]} == set(vms)
    report = await apps["query"].get("/v1/reports/utilization", headers=FINANCE, params={
        "period": "month", "start": "2048-01-01", "department": dep, "format": "csv"})
    assert report.status_code == 200 and "content-length" not in report.headers
    assert report.content.startswith("\ufeff".encode()) and len(report.text.splitlines()) == 2


@pytest.mark.parametrize("api, path, parameter", [
    ("billing", "/v1/alerts", "department"), ("billing", "/v1/budgets", "department"),
    ("billing", "/v1/bills", "department"), ("billing", "/v1/adjustments", "department"),
    ("query", "/v1/usage?from=2048-01-01&to=2048-01-02", "department"),
    ("query", "/v1/usage?from=2048-01-01&to=2048-01-02", "meter"),
    ("query", "/v1/warnings", "department"), ("query", "/v1/warnings", "meter"),
    ("query", "/v1/reports/waste", "department"),
    ("query", "/v1/reports/utilization?period=month&start=2048-01-01", "department"),
    ("query", "/v1/exports/focus?month=2048-01", "department"),
])
async def test_a_nul_in_a_filter_is_a_422_naming_the_parameter(apps, api, path, parameter):
    path, _, query = path.partition("?")
    params = dict(pair.split("=") for pair in query.split("&") if pair)
    response = await apps[api].get(path, params={**params, parameter: "a\x00b"}, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["query", parameter]]
