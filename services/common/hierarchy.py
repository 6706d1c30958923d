"""The department tree (issue 17): pure functions over ``{department: parent or None}``, no I/O.

A district government with its own bureaux, or the high-tech zone's management committee, is a department
whose children are departments. Reads see and roll up whole subtrees; the database keeps the tree acyclic
(migration 0008), and these functions stay finite on any input all the same (a cycle is walked once)."""

from __future__ import annotations

from collections.abc import Mapping

Tree = Mapping[str, "str | None"]


def children_of(tree: Tree) -> dict[str, list[str]]:
    """Each department's direct children, in id order."""
    children: dict[str, list[str]] = {}
    for department, parent in sorted(tree.items()):
        if parent is not None:
            children.setdefault(parent, []).append(department)
    return children


def subtree(tree: Tree, root: str) -> frozenset[str]:
    """``root`` and every department below it (``root`` alone if it has no children or is unknown)."""
    children = children_of(tree)
    seen, stack = {root}, [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return frozenset(seen)


def ancestors(tree: Tree, department: str) -> list[str]:
    """The parent, the parent's parent, … up to the top (nearest first)."""
    found: list[str] = []
    current = tree.get(department)
    while current is not None and current not in found and current != department:
        found.append(current)
        current = tree.get(current)
    return found


def cycle_refusal(tree: Tree, department: str, parent: str | None) -> str | None:
    """Why ``department`` may not be put under ``parent`` (it would be its own ancestor), or None."""
    if parent is None:
        return None
    if parent == department or department in ancestors(tree, parent):
        return f"parent_id: {department} under {parent} would make a cycle ({parent} is in {department}'s subtree)"
    return None
