"""/v1/usage by the day is assembled from cached month pieces (services/query/domain/usage_pieces.py): the
answer is the same, to the byte, as the one statement over the window; a never-asked window over cached months
runs no statement; new usage recomputes only the month it touched; a month larger than the row limit falls back
to the one statement. Usage by department alone (by month or in total) is summed in process from month totals
(services/query/domain/department_totals.py), to the same bytes. Era: 2075."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.common.config import get_settings
from services.common.db import get_engine, raw_connection
from services.common.periods import parse_bound
from services.query.api import usage_cache
from services.query.domain.department_totals import round_text, trim_scale_text
from services.query.views import UsageQuery, usage_report_json
from tests.integration.support import FINANCE, auth, lifecycle_event, usage_event
from tests.integration.test_billing import department, local, new_id, publish, rate_card

pytestmark = pytest.mark.usefixtures("worker")

YEAR = 2075
DAY_WINDOWS = [("2075-01-17", "2075-04-03"), ("2075-02-01", "2075-02-15"), ("2075-03-31", "2075-05-01"),
               ("2074-12-20", "2075-02-02"), ("2075-01-01", "2075-05-01")]
GROUPS = ["meter", "department,meter", "system", "department,system,meter", ""]


async def usage_fleet(apps, worker) -> tuple[str, str]:
    """Two departments' VMs and a VM nobody owns (unattributed usage), each using two meters at 80 random hours
    of January to April."""
    first, second = await department(apps), await department(apps, "市公安局")
    await rate_card(apps, local(YEAR, 1, 1), compute_vcpu="1.005", storage_block="0.333")
    vms = {first: new_id("vm"), second: new_id("vm")}
    events = [lifecycle_event(vm, "activated", dep, local(YEAR, 1, 1)) for dep, vm in vms.items()]
    rng = random.Random(2075)
    for k in range(80):
        start = local(YEAR, 1, 1) + timedelta(hours=rng.randrange(24 * 120))
        for vm in (*vms.values(), new_id("stray")):
            events.append(usage_event(vm, "compute.vcpu", str(rng.randint(1, 9)), start))
            events.append(usage_event(vm, "storage.block", f"{k}.5", start))
    await publish(apps, events, worker)
    return first, second


async def answer(apps, headers, **params) -> bytes:
    response = await apps["query"].get("/v1/usage", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.content


async def one_statement(params: dict, departments) -> bytes:
    groups = tuple(g for g in params["group_by"].split(",") if g)
    query = UsageQuery(parse_bound(params["from"]), parse_bound(params["to"]), groups, params["granularity"],
                       departments, None)
    return await usage_report_json(get_engine(), query, get_settings().usage_max_rows)


def questions(first: str, second: str):
    """(headers, params, the scope's ids) for every window, grouping and scope."""
    scopes = [(FINANCE, {}, None), (FINANCE, {"department": first}, (first,)),
              (auth("department", second), {}, (second,))]
    for begin, end in DAY_WINDOWS:
        for group_by in GROUPS:
            for headers, scope, ids in scopes:
                yield headers, {"from": begin, "to": end, "group_by": group_by, "granularity": "day", **scope}, ids


async def test_answers_from_month_pieces_equal_the_one_statement_to_the_byte(apps, worker):
    first, second = await usage_fleet(apps, worker)
    assert usage_cache.connected
    checked = 0
    for headers, params, ids in questions(first, second):
        found = await answer(apps, headers, **params)
        assert found == await one_statement(params, ids), params
        checked += found.count(b"period_start")
    assert checked > 1000  # the windows hold usage
    # a department's answer holds only its own rows
    mine = await answer(apps, auth("department", second), **{"from": "2075-01-01", "to": "2075-05-01",
                                                              "group_by": "department", "granularity": "day"})
    assert mine.count(b'"department_id":"') == mine.count(f'"department_id":"{second}"'.encode()) > 10


async def march_usage_recomputes_march_only(apps, worker, department_id: str, params: dict, ids,
                                            computed: int = 1) -> bytes:
    """Usage of ``department_id`` in March, then a window from January to April asked as finance: of the pieces,
    only March's is computed again (``computed``: what the cache computes in all), and the answer is the one
    statement's (``ids``: the scope's)."""
    vm = new_id("vm")
    await publish(apps, [lifecycle_event(vm, "activated", department_id, local(YEAR, 1, 1)),
                         usage_event(vm, "compute.vcpu", "1000", local(YEAR, 3, 9, 10))], worker)
    window = {"from": "2075-01-09", "to": "2075-04-11", **params}
    misses = usage_cache.misses
    found = await answer(apps, FINANCE, **window)
    assert usage_cache.misses == misses + computed  # March's piece, and no other
    assert found == await one_statement(window, ids)
    return found


async def test_a_new_window_over_cached_months_runs_no_statement_and_new_usage_recomputes_its_month_only(
        apps, worker):
    first, _ = await usage_fleet(apps, worker)
    params = {"group_by": "meter", "granularity": "day", "department": first}
    await answer(apps, FINANCE, **{"from": "2075-01-01", "to": "2075-05-01", **params})  # four pieces
    misses = usage_cache.misses
    for begin, end in (("2075-01-09", "2075-03-30"), ("2075-02-03", "2075-04-11"), ("2075-01-02", "2075-01-03")):
        await answer(apps, FINANCE, **{"from": begin, "to": end, **params})
    assert usage_cache.misses == misses  # every piece was cached

    found = await march_usage_recomputes_march_only(apps, worker, first, params, (first,))
    assert b'"period_start":"2075-03-09T00:00:00+08:00","meter":"compute.vcpu"' in found


async def test_a_month_beyond_the_row_limit_falls_back_to_the_one_statement(apps, worker, settings, monkeypatch):
    first, _ = await usage_fleet(apps, worker)
    days = {"group_by": "meter", "granularity": "day", "department": first}
    window = {"from": "2075-02-01", "to": "2075-02-08", **days}
    month_rows = (await one_statement({**window, "to": "2075-03-01"}, (first,))).count(b"period_start")
    window_rows = (await one_statement(window, (first,))).count(b"period_start")
    assert 0 < window_rows < month_rows
    monkeypatch.setattr(settings, "usage_max_rows", window_rows)
    misses = usage_cache.misses
    assert await answer(apps, FINANCE, **window) == await one_statement(window, (first,))
    assert usage_cache.misses == misses + 2  # February's piece (too large: remembered as such), then the window
    later = {**window, "from": "2075-02-09", "to": "2075-02-16"}
    assert await answer(apps, FINANCE, **later) == await one_statement(later, (first,))
    assert usage_cache.misses == misses + 3  # only the new window: February is not grouped again
    refused = await apps["query"].get("/v1/usage", params={**window, "to": "2075-02-20"}, headers=FINANCE)
    assert refused.status_code == 422 and f"more than {window_rows} rows" in refused.text


# --- by department alone: summed in process from month totals (services/query/domain/department_totals.py) ------


def department_windows(count: int) -> list[tuple[str, str]]:
    """Whole months, windows inside one month, windows that cut two months, a month's last day, across the
    year's start, and random ones from December 2074 to May 2075."""
    fixed = [("2075-01-01", "2075-05-01"), ("2075-02-01", "2075-03-01"), ("2075-02-03", "2075-02-27"),
             ("2075-01-31", "2075-02-01"), ("2074-12-20", "2075-02-02"), ("2075-03-31", "2075-05-01"),
             ("2075-01-17", "2075-04-03"), ("2074-06-01", "2074-09-01")]
    rng = random.Random(75)
    first = local(YEAR - 1, 12, 1).date().toordinal()
    for _ in range(count):
        begin = first + rng.randrange(170)
        fixed.append((date.fromordinal(begin).isoformat(), date.fromordinal(begin + rng.randint(1, 140)).isoformat()))
    return fixed


async def test_answers_by_department_summed_from_month_totals_equal_the_one_statement_to_the_byte(apps, worker):
    first, second = await usage_fleet(apps, worker)
    scopes = [(FINANCE, {}, None), (FINANCE, {"department": first}, (first,)),
              (auth("department", second), {}, (second,))]
    checked, unattributed = 0, 0
    for begin, end in department_windows(30):
        for granularity in ("month", "total"):
            for headers, scope, ids in scopes:
                params = {"from": begin, "to": end, "group_by": "department", "granularity": granularity, **scope}
                found = await answer(apps, headers, **params)
                assert found == await one_statement(params, ids), params
                checked += found.count(b"period_start")
                unattributed += found.count(b'"department_id":null')
    assert checked > 500 and unattributed > 50  # the windows hold usage, unattributed usage too
    mine = await answer(apps, auth("department", second), **{"from": "2075-01-01", "to": "2075-05-01",
                                                              "group_by": "department", "granularity": "month"})
    assert mine.count(b'"department_id":') == mine.count(f'"department_id":"{second}"'.encode()) == 4


async def test_a_new_window_by_department_reads_nothing_and_new_usage_recomputes_its_month_only(apps, worker):
    first, _ = await usage_fleet(apps, worker)
    params = {"group_by": "department", "granularity": "total"}
    await answer(apps, FINANCE, **{"from": "2075-01-01", "to": "2075-05-01", **params})  # four pieces
    misses = usage_cache.misses
    windows = (("2075-01-09", "2075-03-30"), ("2075-02-03", "2075-04-11"), ("2075-01-02", "2075-01-03"))
    for begin, end in windows:
        await answer(apps, FINANCE, **{"from": begin, "to": end, **params})
        await answer(apps, FINANCE, **{"from": begin, "to": end, **params, "granularity": "month"})
    assert usage_cache.misses == misses + 2 * len(windows)  # each answer summed once: every piece was cached
    for begin, end in windows:  # and then cached whole
        await answer(apps, FINANCE, **{"from": begin, "to": end, **params})
    assert usage_cache.misses == misses + 2 * len(windows)

    await march_usage_recomputes_march_only(apps, worker, first, params, None, computed=2)  # and the answer


async def test_quantities_and_amounts_are_written_as_postgresql_writes_them():
    rng = random.Random(7)
    values = [Decimal(0), Decimal("0.000"), Decimal("100"), Decimal("100.500"), Decimal("0.005"), Decimal("0.015"),
              Decimal("2.675"), Decimal("-0.005"), Decimal("-0.004"), Decimal("1E+3"), Decimal("1.0E-12"),
              Decimal("999999999999999999999.999999999"), Decimal("123456789012345678901.123456789123456789")]
    values += [Decimal(rng.randrange(10 ** 30)).scaleb(-rng.randrange(25)) for _ in range(300)]
    async with raw_connection(get_engine()) as conn:
        rows = await conn.fetch("SELECT trim_scale(x)::text, round(x, 2)::text FROM unnest($1::numeric[]) AS x",
                                values)
    assert [(trim_scale_text(v), round_text(v)) for v in values] == [tuple(r) for r in rows]
