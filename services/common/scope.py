"""Which departments a read may see (Art. 18 with the department tree of issue 17): one function for every route.

``read_scope(principal, requested, rollup)`` answers a ``Scope``: ``ids`` is the sorted tuple of department ids the
read is limited to, or None for every department (unattributed usage included). Every read applies it the same
way, ``department_id = ANY($n::text[])`` when ``ids`` is not None, and every cached answer keys on ``ids``, so no
answer computed for one scope is served to another.

Who sees what: admin, the city finance bureau (role finance without a ``department`` claim) and the provider see
every department; a district finance office (role finance with a ``department`` claim) sees that department's
subtree and nothing else; a department token sees its own department only, whatever lies below it (a district
government's oversight of its bureaux is its finance office's token, not every clerk's). A requested department
outside the visible set is 403 without data. ``rollup``: the requested department's whole subtree (within the
visible set), so a parent's usage, bills, budgets and reports include its bureaux.

The tree is read from ``departments`` and remembered while the table is unchanged, as the response cache counts
its notifications (see ``TreeMemo``); while the cache is not listening it is read for every request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Query, status

from schemas.api import Role
from services.common.auth import Principal, require_roles
from services.common.db import get_engine, raw_connection
from services.common.hierarchy import Tree, subtree
from services.common.response_cache import ResponseCache

TABLE = "departments"


@dataclass(frozen=True, slots=True)
class Scope:
    ids: tuple[str, ...] | None  # None: every department (and usage not yet attributed to one)

    @property
    def one(self) -> str | None:
        """The department when the scope is exactly one, else None."""
        return self.ids[0] if self.ids is not None and len(self.ids) == 1 else None


class OutOfScope(Exception):
    pass


def visible_set(principal: Principal, tree: Tree) -> frozenset[str] | None:
    """Every department the principal may read (None: all of them)."""
    if principal.role == Role.DEPARTMENT:
        return frozenset({principal.department})
    if principal.role == Role.FINANCE and principal.department is not None:
        return subtree(tree, principal.department)
    return None


def resolve_scope(principal: Principal, tree: Tree, requested: str | None, rollup: bool = False) -> Scope:
    """The scope of one read (pure); OutOfScope when ``requested`` is not visible to the principal."""
    visible = visible_set(principal, tree)
    if requested is None:
        return Scope(None if visible is None else tuple(sorted(visible)))
    if visible is not None and requested not in visible:
        raise OutOfScope(requested)
    wanted = subtree(tree, requested) if rollup else frozenset({requested})
    return Scope(tuple(sorted(wanted if visible is None else wanted & visible)))


def forbidden(principal: Principal) -> HTTPException:
    if principal.role == Role.DEPARTMENT:
        return HTTPException(status.HTTP_403_FORBIDDEN, detail="department: you may read only your own department")
    return HTTPException(status.HTTP_403_FORBIDDEN,
                         detail=f"department: you may read only {principal.department} and the departments below it")


class TreeMemo:
    """The tree, remembered while ``departments`` is unchanged (the response cache's rule: the generation is
    read before the load and compared after the caller's round trip has caught up)."""

    def __init__(self) -> None:
        self.cache: ResponseCache | None = None
        self._kept: tuple[tuple[int, int], dict[str, str | None]] | None = None

    def watch(self, cache: ResponseCache) -> None:
        self.cache = cache

    async def tree(self) -> dict[str, str | None]:
        cache = self.cache
        before = None if cache is None else cache.table_generation(TABLE)
        if before is not None and await cache.caught_up():
            kept = self._kept
            if kept is not None and kept[0] == cache.table_generation(TABLE):
                return kept[1]
            before = cache.table_generation(TABLE)
        async with raw_connection(get_engine()) as conn:
            rows = await conn.fetch("SELECT id, parent_id FROM departments")
        tree = {r["id"]: r["parent_id"] for r in rows}
        if before is not None:
            self._kept = (before, tree)
        return tree


TREE = TreeMemo()


async def read_scope(principal: Principal, requested: str | None = None, rollup: bool = False) -> Scope:
    """The scope of a read by ``principal`` of ``requested`` (None: everything visible); 403 outside it."""
    needs_tree = rollup or (principal.role == Role.FINANCE and principal.department is not None)
    try:
        # without a roll-up or a district claim the answer does not depend on the tree (a one-node tree is exact)
        return resolve_scope(principal, await TREE.tree() if needs_tree else {}, requested, rollup)
    except OutOfScope:
        raise forbidden(principal) from None


async def may_see(principal: Principal, department_id: str | None) -> bool:
    """Whether one stored row of ``department_id`` is in the principal's visible set (for routes reading one row)."""
    district = principal.role == Role.FINANCE and principal.department is not None
    visible = visible_set(principal, await TREE.tree() if district else {})
    return visible is None or department_id in visible


# The query parameter of every read that takes a department: include the department's subtree.
Rollup = Annotated[bool, Query(description="with department: include every department below it (its subtree)")]


def require_city_wide(*roles: str):
    """Dependency for city-wide reports (the platform analysis, the budget basis): ``require_roles``, and 403 for
    a district finance office, whose scope is a subtree (Art. 18: no other district's figures)."""
    check = require_roles(*roles)

    async def city_wide(principal: Principal = Depends(check)) -> Principal:  # a default: check is not global
        if principal.role == Role.FINANCE and principal.department is not None:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail=f"department: a finance token scoped to {principal.department} may not read "
                                       "city-wide reports")
        return principal

    return city_wide
