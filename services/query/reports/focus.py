"""``GET /v1/exports/focus?month=YYYY-MM``: a month's charges as FinOps FOCUS 1.2 (CSV); the rows and their rules
are ``services.query.domain.focus``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from schemas.api import Role
from services.common.auth import Principal, require_roles
from services.common.db import get_engine, raw_connection
from services.common.http import MonthQuery
from services.common.http_guards import DepartmentParam
from services.common.scope import Rollup, read_scope
from services.query.domain.focus import COLUMNS, focus_rows
from services.query.formats import check_lang, csv_response
from services.reference.rate_cards import load_rate_cards
from services.query.views import bill_documents, department_names, month_charges, resource_kinds

router = APIRouter(tags=["exports"])
Reader = Annotated[Principal, Depends(require_roles(Role.FINANCE, Role.ADMIN, Role.DEPARTMENT))]


@router.get("/v1/exports/focus", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "FOCUS 1.2 CSV"}})
async def export_focus(principal: Reader, period: MonthQuery, department: DepartmentParam = None, lang: str = "zh",
                       rollup: Rollup = False):
    """A month's charges in FinOps FOCUS 1.2 (CSV). Finance and admin: every department (a district finance
    office: its subtree); a department token: its own. BilledCost summed per InvoiceId equals that department's
    bill total for the month."""
    check_lang(lang)
    month = str(period)
    scope = (await read_scope(principal, department, rollup)).ids
    async with raw_connection(get_engine()) as conn:
        cards = await load_rate_cards(conn)
        charges = await month_charges(conn, month, scope, cards)
        names = await department_names(conn, {c.department_id for c in charges})
        kinds = await resource_kinds(conn, {c.resource_id for c in charges})
    bills = await bill_documents(get_engine(), month, scope)

    def lines():  # built while streaming, in the thread pool
        for row in focus_rows(month, charges, names, kinds, {c.id: c.version for c in cards}, lang, bills):
            yield [row.get(name, "") for name in COLUMNS]

    return csv_response(COLUMNS, lines(), f"govmeter-focus-{month}{'-' + department if department else ''}.csv", bom=False)
