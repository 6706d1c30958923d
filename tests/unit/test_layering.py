"""The import layering, read from the code's own imports (ast, nothing imported):

- ``schemas`` (the contracts) imports nothing from ``services``;
- ``services/common`` (the lowest floor) imports no service package;
- above it, shared floors that any service may import, each importing only schemas, the floors below it and
  services' ``domain`` packages: ``services/projection`` (the rated usage projection: ownership intervals,
  rollups and their re-rating), ``services/reference`` (departments and rate cards, which every service reads; a
  new card re-rates the projection in the transaction that stores it) and ``services/bill_reads`` (bills as billing
  issues and computes them, which billing serves and the query reports reconcile with);
- a service (billing, metering, query, console, demo) imports from another service only its ``domain`` package
  (pure code), and never ``services.replay`` or ``services.cli``;
- ``services/replay`` rebuilds metering's projections and re-checks billing's bills: composition code, allowed
  the other services' public modules, imported only by the composition root;
- ``services/cli.py`` is the composition root: exempt.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FLOORS = ("common", "projection", "reference", "bill_reads")  # shared floors any service may import, lowest first
COMPOSITION = {"replay"}  # may use the other services' public modules; only the composition root imports it
EXEMPT = {"services.cli"}  # the composition root
# Crossings the rule cannot express, each with its reason; the check fails on any other. Empty: keep it so.
ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, importer: str, is_package: bool = False) -> list[tuple[str, int]]:
    """Every module a source imports, as dotted names with their line; ``from package import name`` counts as
    ``package.name`` (the name may be a module), relative imports are resolved against ``importer``."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = importer.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            found.extend((f"{base}.{alias.name}", node.lineno) for alias in node.names)
    return found


def refusal(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported``, or None when it may."""
    target = imported.split(".")
    if target[0] != "services" or len(target) < 2 or importer in EXEMPT:
        return None
    if (importer, ".".join(target[:3])) in ALLOWED:
        return None
    source = importer.split(".")
    if source[0] == "schemas":
        return "schemas (the contracts) import nothing from services"
    if source[0] != "services" or len(source) < 2:
        return None
    own, other = source[1], target[1]
    if own == other:
        return None
    if own == "common":
        return "services/common imports no service package"
    if other in ("cli", *COMPOSITION):
        return "only the composition root (services/cli.py) imports the composition code"
    if own in FLOORS and other in FLOORS:
        return None if FLOORS.index(other) < FLOORS.index(own) else (
            f"a shared floor imports only the floors below it ({', '.join(FLOORS[:FLOORS.index(own)])})")
    if own in COMPOSITION or other in FLOORS:
        return None
    if other == "common" or (len(target) > 2 and target[2] == "domain"):
        return None
    return f"a module of one service imports only another service's domain package (services.{other}.domain)"


def violations(imports: dict[str, list[tuple[str, int]]]) -> list[str]:
    return [f"{importer} imports {imported} (line {line}): {why}"
            for importer, found in sorted(imports.items()) for imported, line in found
            if (why := refusal(importer, imported)) is not None]


def repository_imports() -> dict[str, list[tuple[str, int]]]:
    imports = {}
    for folder in ("services", "schemas"):
        for path in sorted((REPO / folder).rglob("*.py")):
            name = module_name(path)
            imports[name] = imported_modules(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
    return imports


def test_no_module_imports_another_services_non_domain_module():
    found = violations(repository_imports())
    assert not found, "layering violations:\n" + "\n".join(found)


def test_every_allowed_crossing_still_exists_so_the_list_cannot_go_stale():
    imports = repository_imports()
    for importer, imported in ALLOWED:
        assert any(name.startswith(imported) for name, _ in imports.get(importer, [])), (importer, imported)


def test_the_check_names_importer_and_imported_of_a_new_violation():
    source = "from services.metering.store import load_rate_cards\nfrom services.metering.domain import rating\n"
    found = violations({"services.billing.bills": imported_modules(source, "services.billing.bills")})
    assert found == ["services.billing.bills imports services.metering.store.load_rate_cards (line 1): a module of "
                     "one service imports only another service's domain package (services.metering.domain)"]


def test_the_check_refuses_contracts_and_the_lowest_floor_reaching_up():
    found = violations({
        "schemas.billing": [("services.common.money", 3)],
        "services.common.cli": [("services.billing.cli", 9)],
        "services.bill_reads.issued": [("services.billing.watermarks", 11), ("services.reference.store", 12)],
        "services.projection.rerate": [("services.reference.rate_cards", 13), ("services.metering.pipeline", 14)],
        "services.query.reports.charges": [("services.replay.plan", 4), ("services.reference.store", 5)],
        "services.reference.store": [("services.metering.rollups", 6), ("services.metering.domain.rating", 7),
                                     ("services.bill_reads.bills", 15)],
        "services.replay.plan": [("services.metering.rollups", 8)],
        "services.cli": [("services.replay.cli", 10)],
    })
    assert found == [
        "schemas.billing imports services.common.money (line 3): schemas (the contracts) import nothing from services",
        "services.bill_reads.issued imports services.billing.watermarks (line 11): a module of one service imports "
        "only another service's domain package (services.billing.domain)",
        "services.common.cli imports services.billing.cli (line 9): services/common imports no service package",
        "services.projection.rerate imports services.reference.rate_cards (line 13): a shared floor imports only "
        "the floors below it (common)",
        "services.projection.rerate imports services.metering.pipeline (line 14): a module of one service imports "
        "only another service's domain package (services.metering.domain)",
        "services.query.reports.charges imports services.replay.plan (line 4): only the composition root "
        "(services/cli.py) imports the composition code",
        "services.reference.store imports services.metering.rollups (line 6): a module of one service imports only "
        "another service's domain package (services.metering.domain)",
        "services.reference.store imports services.bill_reads.bills (line 15): a shared floor imports only the "
        "floors below it (common, projection)",
    ]


def test_relative_imports_resolve_against_the_importer():
    found = imported_modules("from ..metering import store\nfrom . import x\n", "services.billing.bills")
    assert found == [("services.metering.store", 1), ("services.billing.x", 2)]
