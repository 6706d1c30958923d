"""Query API: what departments consumed and what it costs, scoped by role (Art. 18, 19), and the finance and
provider reports (Art. 10, 12, 19): utilisation, platform analysis, anomaly warnings, waste, budget basis and
the FOCUS export. Its lifespan runs the anomaly warning evaluation in the background."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Response

from schemas.api import Role, UsageReport
from schemas.catalogue import meters
from services.common.auth import Principal, require_roles
from services.common.config import get_settings
from services.common.db import get_engine
from services.common.guard import guard
from services.common.health import add_health_route
from services.common.http import unprocessable
from services.common.meters import add_meters_route
from services.common.metrics import observe_cache
from services.common.observability import instrument
from services.common.openapi import document_error_details
from services.common.lifespan import producer_lifespan
from services.common.known_answers import KnownAnswers, serve_known_answers
from services.common.http_guards import DepartmentParam, MeterParam, answer_statement_timeouts
from services.common.periods import LOCAL_TZ, Month, months_touching, parse_bound
from services.common.response_cache import USAGE_TABLES, Reads, ResponseCache, with_response_cache
from services.common.scope import TREE, Rollup, read_scope
from services.query import warnings
from services.query.reports import budget, focus, platform, utilization, waste
from services.query.reports import warnings as warnings_report
from services.query.domain.department_totals import department_rows, department_total_months
from services.query.domain.usage_pieces import OVER_LIMIT, assemble, bucket_key, piece_months, slice_piece
from services.query.views import (GRANULARITIES, GROUPS, USAGE_REPORT_HEAD, USAGE_REPORT_TAIL, TooManyRows,
                                  UsageQuery, department_month_totals, usage_piece, usage_report_json)


def _warning_loop(producer, settings):
    if settings.warnings_interval_seconds > 0:
        return warnings.warning_loop(get_engine(), producer, settings)
    return None


# Usage answers depend only on the rollups and the (scoped) query: cached until the rollups of their months and
# departments change.
usage_cache = ResponseCache(tables=USAGE_TABLES)
app = FastAPI(title="govmeter query API", version="1.0",
              lifespan=with_response_cache(producer_lifespan(_warning_loop), usage_cache))
add_health_route(app)
add_meters_route(app)
instrument(app, "query")
observe_cache("usage", usage_cache)
answer_statement_timeouts(app)
document_error_details(app)
guard(app, "query")
known_usage = KnownAnswers(usage_cache)
serve_known_answers(app, known_usage, "/v1/usage")  # a cached answer asked again is served before routing
TREE.watch(usage_cache)  # the cache counts changes to departments too: the tree is remembered while unchanged
for module in (utilization, platform, waste, budget, warnings_report, focus):
    app.include_router(module.router)

Reader = Annotated[Principal, Depends(require_roles(Role.FINANCE, Role.ADMIN, Role.DEPARTMENT))]


def _bound(field: str, text: str):
    try:
        value = parse_bound(text)
    except ValueError as exc:
        raise unprocessable(field, f"not a date or datetime with offset ({exc})") from None
    if (value.minute, value.second, value.microsecond) != (0, 0, 0):
        raise unprocessable(field, "usage is metered per hour: give a date or a whole hour")
    return value


@app.get("/v1/usage", response_model=UsageReport)
async def get_usage(
    principal: Reader,
    from_: Annotated[str, Query(alias="from", description="date (local midnight) or datetime with offset")],
    to: Annotated[str, Query(description="exclusive end: date or datetime with offset")],
    group_by: Annotated[list[str], Query(description="department, meter, resource, system; comma-separated")] = [],
    granularity: str = "total",
    department: DepartmentParam = None,
    meter: MeterParam = None,
    rollup: Rollup = False,
):
    """Usage and its cost over [from, to), grouped and bucketed in Asia/Shanghai time.

    Finance and admin see every department, and unattributed usage as ``department_id: null``; a district
    finance office sees its subtree; a department token sees only its own department and gets 403 for any
    other. ``rollup`` with ``department``: that department and every department below it."""
    start, end = _bound("from", from_), _bound("to", to)
    if end <= start:
        raise unprocessable("to", "must be after from")
    groups = tuple(dict.fromkeys(g.strip() for item in group_by for g in item.split(",") if g.strip()))
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise unprocessable("group_by", f"unknown {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    if granularity not in GRANULARITIES:
        raise unprocessable("granularity", f"choose from {', '.join(GRANULARITIES)}")
    if meter is not None and meter not in meters():
        raise unprocessable("meter", f"unknown meter {meter!r}")
    query = UsageQuery(start, end, groups, granularity, (await read_scope(principal, department, rollup)).ids, meter)
    # The query already holds the scope's ids; the caller's role and department are in the key as well,
    # so no answer ever crosses from one scope to another even if scoping changes.
    scope = (principal.role, principal.department)
    limit = get_settings().usage_max_rows
    key = ("/v1/usage", *scope, query)
    try:
        body, whole = None, True  # whole: cached whole under ``key`` (not assembled from cached pieces)
        if usage_cache.connected:  # pieces need the cache: uncached, a statement a month costs more than one
            by_department = department_total_months(start, end, groups, granularity, meter)
            if by_department:  # summed from month totals, and cached whole: summing costs more than a lookup
                reads = Reads(usage=True, months=frozenset(map(str, by_department)), departments=_departments(query))
                body = await usage_cache.serve(key, lambda: usage_by_department(scope, query, by_department, limit),
                                               reads)
            elif months := piece_months(start, end, groups, granularity):
                body = await usage_from_pieces(scope, query, months, limit)
                whole = body is None
        if body is None:
            reads = Reads(usage=True, months=months_touching(start, end), departments=_departments(query))
            body = await usage_cache.serve(key, lambda: usage_report_json(get_engine(), query, limit), reads)
        if whole:
            known_usage.remember(key)
    except TooManyRows as exc:
        raise unprocessable(str(exc)) from None
    return Response(body, media_type="application/json")


def _departments(query: UsageQuery) -> frozenset[str] | None:
    return None if query.departments is None else frozenset(query.departments)


@functools.lru_cache(maxsize=4096)
def _month_reads(month: Month, departments: tuple[str, ...] | None) -> Reads:
    """What a month's piece reads (remembered: a window asks for up to 13 of them)."""
    return Reads(usage=True, months=frozenset({str(month)}),
                 departments=None if departments is None else frozenset(departments))


async def usage_by_department(scope: tuple, query: UsageQuery, months: list[Month], limit: int) -> bytes:
    """Usage by department alone (by month or in total) summed from its months' cached pieces
    (services.query.domain.department_totals): a window of last year asked for the first time reads nothing."""
    def piece(month: Month):
        return (("/v1/usage department totals", *scope, query.departments, month),
                lambda: department_month_totals(get_engine(), month, query.departments),
                _month_reads(month, query.departments))

    pieces = await usage_cache.serve_all([piece(month) for month in months])
    start = query.start.astimezone(LOCAL_TZ)
    count, parts = department_rows(pieces, start.date(), query.end.astimezone(LOCAL_TZ).date(), query.granularity,
                                   start.isoformat())
    if count > limit:
        raise TooManyRows(limit)
    return USAGE_REPORT_HEAD + b"[" + b",".join(parts) + b"]" + USAGE_REPORT_TAIL


async def usage_from_pieces(scope: tuple, query: UsageQuery, months: list[Month], limit: int) -> bytes | None:
    """A bucketed answer assembled from its months' cached pieces (services.query.domain.usage_pieces), or None
    when one month alone has more rows than ``limit`` (the window is then answered by one statement). Not cached
    itself: assembling costs less than the pieces, and a window is rarely asked twice."""

    # A piece is keyed by the query's shape and its month; its whole-month query is built only to compute it.
    shape = ("/v1/usage piece", *scope, query.group_by, query.granularity, query.departments, query.meter)

    def piece(month: Month):
        return ((*shape, month), lambda: usage_piece(get_engine(), replace(query, start=month.start, end=month.end),
                                                     limit), _month_reads(month, query.departments))

    pieces = await usage_cache.serve_all([piece(month) for month in months])
    if OVER_LIMIT in pieces:
        return None
    low, high = bucket_key(query.start), bucket_key(query.end)
    count, body = assemble([slice_piece(p, low, high) for p in pieces], USAGE_REPORT_HEAD, USAGE_REPORT_TAIL)
    if count > limit:
        raise TooManyRows(limit)
    return body
