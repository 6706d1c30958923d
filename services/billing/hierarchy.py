"""Re-parenting a department (issue 17): ``PUT /v1/departments/{department_id}/parent`` (admin).

What a move does to history: nothing stored changes. Bills, adjustments, budgets and alerts stay per department;
the tree is read when a report, a roll-up or a district scope is computed, so after a move the department's whole
history (its past final bills included) rolls up under its new parent and is visible to the new district's finance
office, and no longer to the old one's. Cached answers key on the resolved scope, and the response caches count
changes to ``departments``, so no answer computed under the old tree is served under the new one."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, status

from schemas.api import DepartmentOut, DepartmentParentIn, Role
from services.billing.budgets import year_spend
from services.billing.store import AlreadyExists, BadParent
from services.common.auth import Principal, require_roles
from services.common.db import get_engine, raw_transaction
from services.common.hierarchy import subtree
from services.common.scope import TREE, Scope

router = APIRouter(tags=["departments"])
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]


def refusal(exc: AlreadyExists | BadParent) -> HTTPException:
    """409 for a duplicate id or a cycle (a conflict with the stored tree), 422 for a parent that does not exist."""
    unknown = isinstance(exc, BadParent) and exc.unknown
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT if unknown else status.HTTP_409_CONFLICT,
                         detail=str(exc))


async def move_department(engine, department_id: str, parent_id: str | None) -> dict | None:
    """Set a department's parent; None if there is no such department, BadParent if the parent is refused."""
    async with raw_transaction(engine) as conn:
        try:
            row = await conn.fetchrow("UPDATE departments SET parent_id = $2 WHERE id = $1 "
                                      "RETURNING id, name, created_at, parent_id", department_id, parent_id)
        except asyncpg.ForeignKeyViolationError:
            raise BadParent(f"parent_id: no department {parent_id}", unknown=True) from None
        except asyncpg.CheckViolationError as exc:  # the acyclic trigger (migration 0008) names the field
            raise BadParent(str(exc), unknown=False) from None
    return None if row is None else dict(row)


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


async def budget_spends(conn, rows: list[dict], scope: Scope, rollup: bool) -> list[tuple[dict, dict]]:
    """Each budget row with its ``spend`` and, with ``rollup``, its ``subtree_spend``: the spend of every department
    of its subtree that the scope holds (a department's spend computed once however many subtrees count it)."""
    spends: dict[tuple[str, int], Decimal] = {}

    async def spend_of(department: str, year: int) -> Decimal:
        if (department, year) not in spends:
            spends[department, year] = (await year_spend(conn, department, year))[0]
        return spends[department, year]

    tree = await TREE.tree() if rollup else {}
    visible = set(tree) if scope.ids is None else set(scope.ids)
    out = []
    for row in rows:
        figures = {"spend": await spend_of(row["department_id"], row["year"])}
        if rollup:
            below = sorted(subtree(tree, row["department_id"]) & visible)
            figures["subtree_spend"] = sum([await spend_of(d, row["year"]) for d in below], Decimal(0))
        out.append((row, figures))
    return out
