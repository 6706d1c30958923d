"""The query side's borders, read from the imports: no other service reaches into query's non-domain modules,
query's domain does no I/O, and query reaches into another service only where listed below (each to be moved)."""

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
COMPOSITION_ROOTS = {"cli.py", "common/cli.py"}  # the govmeter command assembles every service's subcommands
# What query still reads from other services' non-domain modules; a new entry here is a new violation.
KNOWN = {
    "services.metering.store",  # load_rate_cards: rate cards are to get a home of their own (issue #12, point 1)
    "services.metering.utilization",  # BUCKETS, percentile: the pure half is to move to metering/domain
    "services.billing.queries",  # the FOCUS export reconciles with the bills as billing reads them
}
IO_MODULES = ("fastapi", "asyncpg", "sqlalchemy", "aiokafka", "httpx", "services.common.db",
              "services.common.kafka", "services.query.views", "services.query.formats")


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def service_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "services" else None


def is_domain(module: str) -> bool:
    return module.split(".")[2:3] == ["domain"]


def test_no_other_service_imports_a_non_domain_module_of_the_query_side():
    others = [path for path in SERVICES.rglob("*.py") if path.relative_to(SERVICES).parts[0] != "query"
              and path.relative_to(SERVICES).as_posix() not in COMPOSITION_ROOTS]
    offenders = [(path.relative_to(SERVICES).as_posix(), module) for path in others
                 for module in imports(path) if service_of(module) == "query" and not is_domain(module)]
    assert offenders == []


def test_the_query_side_imports_other_services_only_through_their_domain_or_a_listed_exception():
    offenders = [(str(path.relative_to(SERVICES)), module)
                 for path in (SERVICES / "query").rglob("*.py") for module in imports(path)
                 if service_of(module) not in (None, "common", "query") and not is_domain(module)
                 and module not in KNOWN]
    assert offenders == []


def test_the_query_domain_does_no_io():
    offenders = [(path.name, module) for path in (SERVICES / "query" / "domain").rglob("*.py")
                 for module in imports(path) if module.startswith(IO_MODULES)]
    assert offenders == []
