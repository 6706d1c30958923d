"""Departments and rate cards over HTTP (mounted by the billing app; the URLs are billing's). Proposing and
approving a rate card is billing's maker/checker workflow (services/billing/rate_card_approvals.py): it writes the
ledger."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status

from schemas.api import DepartmentIn, DepartmentOut, DepartmentParentIn, RateCardOut, Role
from services.common.auth import Principal, require_roles
from services.common.db import get_engine
from services.common.decimal_json import DecimalJSONRoute
from services.common.scope import read_scope
from services.reference.rate_cards import with_unpriced
from services.reference.store import (AlreadyExists, BadParent, add_department, list_departments,
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


@router.get("/v1/rate-cards", response_model=list[RateCardOut])
async def get_rate_cards(principal: AnyRole):
    return [with_unpriced(card) for card in await list_rate_cards(get_engine())]
