"""Budgets rolled up a department's subtree (issue 17). Re-parenting lives with the departments
(services/reference/routes.py).

What a move does to history: nothing stored changes. Bills, adjustments, budgets and alerts stay per department;
the tree is read when a report, a roll-up or a district scope is computed, so after a move the department's whole
history (its past final bills included) rolls up under its new parent and is visible to the new district's finance
office, and no longer to the old one's. Cached answers key on the resolved scope, and the response caches count
changes to ``departments``, so no answer computed under the old tree is served under the new one."""

from __future__ import annotations

from decimal import Decimal


from services.billing.budgets import year_spend
from services.common.hierarchy import subtree
from services.common.scope import TREE, Scope

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
