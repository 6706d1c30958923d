"""The APIs' answer to bad input: a 422 whose detail names the field, and the month parameter that every report
and bill route takes (checked by ``Month.parse``: ASCII ``YYYY-MM`` only).

No ``from __future__ import annotations`` here: FastAPI reads the dependencies' annotations at runtime, and they
name values local to ``month_param``."""

from typing import Annotated, Callable

from fastapi import Depends, HTTPException, Path, Query, status

from services.common.periods import Month


def unprocessable(field: str, why: str | None = None) -> HTTPException:
    """The 422 of a bad input: ``{"detail": "field: why"}``. Given one text alone (an error whose message already
    starts with the field it is about, ``"department_id: unknown department 'x'"``), that text is the detail."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=field if why is None else f"{field}: {why}")


def parse_month_field(field: str, text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise unprocessable(field, str(exc)) from None


def month_param(name: str = "month", *, in_path: bool = False, required: bool = True,
                description: str | None = None) -> Callable[..., Month | None]:
    """A dependency reading the month parameter ``name`` (a query parameter, or the path's): its ``Month``, or
    None when it is optional and absent; anything but a canonical ``YYYY-MM`` is a 422 naming ``name``. Declare it
    after the route's principal, so that a request without a valid token is still a 401 first. (Async: a plain
    ``def`` dependency runs in the thread pool, a hop on every request for a few microseconds of parsing.)"""
    if in_path:
        async def from_path(month: Annotated[str, Path(alias=name, examples=["2026-11"])]) -> Month:
            return parse_month_field(name, month)
        return from_path
    if required:
        async def required_query(month: Annotated[str, Query(alias=name, description=description)]) -> Month:
            return parse_month_field(name, month)
        return required_query

    async def optional_query(month: Annotated[str | None, Query(alias=name, description=description)] = None
                             ) -> Month | None:
        return None if month is None else parse_month_field(name, month)
    return optional_query


MonthQuery = Annotated[Month, Depends(month_param())]
