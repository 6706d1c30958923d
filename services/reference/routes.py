"""Departments and rate cards over HTTP (mounted by the billing app; the URLs are billing's)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, status

from schemas.api import DepartmentIn, DepartmentOut, DepartmentParentIn, RateCardIn, RateCardOut, Role
from schemas.catalogue import meters
from services.common.auth import Principal, require_roles
from services.common.config import get_settings
from services.common.db import get_engine
from services.common.decimal_json import DecimalJSONRoute
from services.common.scope import read_scope
from services.reference.store import (AlreadyExists, BadParent, add_department, add_rate_card, list_departments,
                                      list_rate_cards, move_department)

router = APIRouter(route_class=DecimalJSONRoute)  # JSON numbers in bodies (prices) parsed as Decimal
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
AnyRole = Annotated[Principal, Depends(require_roles(*Role.ALL))]


@router.post("/v1/departments", status_code=status.HTTP_201_CREATED, response_model=DepartmentOut)
async def create_department(department: DepartmentIn, principal: Admin):
    try:
        row = await add_department(get_engine(), department)
    except (AlreadyExists, BadParent) as exc:
        raise refusal(exc) from None
    return DepartmentOut(id=row.id, name=row.name, created_at=row.created_at, parent_id=row.parent_id)


@router.get("/v1/departments", response_model=list[DepartmentOut])
async def get_departments(principal: AnyRole):
    """Every department with its parent; a department token sees only its own, a district finance office its
    subtree."""
    return await list_departments(get_engine(), (await read_scope(principal)).ids)


def refusal(exc: AlreadyExists | BadParent) -> HTTPException:
    """409 for a duplicate id or a cycle (a conflict with the stored tree), 422 for a parent that does not exist."""
    unknown = isinstance(exc, BadParent) and exc.unknown
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT if unknown else status.HTTP_409_CONFLICT,
                         detail=str(exc))


@router.put("/v1/departments/{department_id}/parent", response_model=DepartmentOut,
            responses={404: {"description": "no such department"},
                       409: {"description": "the move would make a cycle"},
                       422: {"description": "parent_id names no department"}})
async def set_parent(department_id: str, body: DepartmentParentIn, principal: Admin):
    """Put a department under another (``parent_id``), or at the top (null). Refused when the new parent is the
    department itself or below it. Stored bills do not change: roll-ups and district scopes follow the tree as it
    is when they are read, history included."""
    try:
        moved = await move_department(get_engine(), department_id, body.parent_id)
    except BadParent as exc:
        raise refusal(exc) from None
    if moved is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"department_id: no department {department_id}")
    return moved


def _with_unpriced(card: dict) -> dict:
    return {**card, "unpriced_meters": sorted(set(meters()) - set(card["prices"]))}


@router.post("/v1/rate-cards", status_code=status.HTTP_201_CREATED, response_model=RateCardOut)
async def create_rate_card(card: RateCardIn, principal: Admin, request: Request):
    """Add a rate card. Usage from ``effective_from`` on is priced by it (stored usage is re-rated at once)."""
    try:
        stored = await add_rate_card(get_engine(), card, created_by=principal.subject)
    except AlreadyExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    out = RateCardOut(**_with_unpriced(stored))
    producer = request.app.state.producer
    await producer.send_and_wait(get_settings().rate_card_topic, orjson.dumps(out.model_dump(mode="json")),
                                 key=card.version.encode())
    return out


@router.get("/v1/rate-cards", response_model=list[RateCardOut])
async def get_rate_cards(principal: AnyRole):
    return [_with_unpriced(card) for card in await list_rate_cards(get_engine())]
