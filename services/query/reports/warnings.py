"""``GET /v1/warnings``: the stored spend anomaly warnings (Art. 12(2)), newest day first. They are judged and
published by ``services.query.warnings``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from schemas.api import Role
from schemas.reports import WarningList
from services.common.auth import Principal, require_roles
from services.common.scope import Rollup, read_scope
from services.common.db import get_engine, raw_connection
from services.common.http_guards import DepartmentParam, MeterParam
from services.query.domain.warnings import warning_out
from services.query.formats import check_lang, parse_day
from services.query.views import WARNING_SELECT

router = APIRouter(tags=["warnings"])
Reader = Annotated[Principal, Depends(require_roles(*Role.ALL))]


@router.get("/v1/warnings", response_model=WarningList)
async def get_warnings(principal: Reader, from_: Annotated[str | None, Query(alias="from")] = None,
                       to: str | None = None, department: DepartmentParam = None, meter: MeterParam = None,
                       lang: str = "zh", rollup: Rollup = False):
    """Spend anomaly warnings with the figures that triggered them, newest day first; ``from``/``to`` are local
    days (``to`` exclusive). A department token sees its own department's warnings only."""
    check_lang(lang)
    scope = (await read_scope(principal, department, rollup)).ids
    clauses, args = [], []
    if from_ is not None:
        args.append(parse_day("from", from_))
        clauses.append(f"w.day >= ${len(args)}")
    if to is not None:
        args.append(parse_day("to", to))
        clauses.append(f"w.day < ${len(args)}")
    if scope is not None:
        args.append(scope)
        clauses.append(f"w.department_id = ANY(${len(args)}::text[])")
    if meter is not None:
        args.append(meter)
        clauses.append(f"w.meter = ${len(args)}")
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    async with raw_connection(get_engine()) as conn:
        rows = await conn.fetch(WARNING_SELECT + where + " ORDER BY w.day DESC, w.department_id, w.meter LIMIT 5000",
                                *args)
    return {"warnings": [warning_out(r, lang) for r in rows]}

