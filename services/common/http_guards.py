"""Guards the APIs share: query parameters validated before they reach SQL (a NUL or a control character in a
filter is a 422 naming the parameter, never a database error), and a statement cancelled by the statement timeout
answered as such."""

from __future__ import annotations

from typing import Annotated

from asyncpg.exceptions import QueryCanceledError
from fastapi import FastAPI, Query, Request, status
from fastapi.responses import JSONResponse

from schemas.api import DEPARTMENT_ID_PATTERN
from services.common.config import get_settings

DepartmentParam = Annotated[str | None, Query(min_length=1, max_length=64, pattern=DEPARTMENT_ID_PATTERN,
                                              description="a department id; a department token: its own")]
MeterParam = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[a-z0-9_.]+$",
                                         description="a meter of the catalogue, e.g. compute.vcpu")]


def answer_statement_timeouts(app: FastAPI) -> None:
    """A statement that PostgreSQL cancelled for running past GOVMETER_STATEMENT_TIMEOUT_SECONDS is a 503 that
    says so (not a 500)."""

    async def cancelled(_request: Request, _exc: Exception) -> JSONResponse:
        seconds = get_settings().statement_timeout_seconds
        return JSONResponse({"detail": f"the query ran longer than {seconds:g} s (GOVMETER_STATEMENT_TIMEOUT_SECONDS)"
                                       "; narrow it (a shorter period, fewer groups, a filter)"},
                            status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    app.add_exception_handler(QueryCanceledError, cancelled)
