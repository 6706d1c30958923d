"""Integration tests share one database and keep apart by the years they use (docs/tests.md). A month that
test_partitions detaches is gone for every test after it: its years must appear in no other test. A literal
search misses a year written ``YEAR + 1``, as happened once (the replay tests failed in the full suite only), so
the years are read from each module's constants and the offsets it adds to them."""

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
DETACHING = (TESTS / "integration" / "test_partitions.py", TESTS / "integration" / "test_event_partitions.py")
_LITERAL_YEAR = re.compile(r"(?<![\d.])(20[3-9]\d)(?!\d)")


def _constants(tree: ast.Module) -> dict[str, int]:
    """Module-level ``NAME = 20xx`` constants."""
    return {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, int)
            and 2030 <= node.value.value < 2100 for target in node.targets if isinstance(target, ast.Name)}


def _year(node: ast.AST, constants: dict[str, int]) -> int | None:
    """The year ``node`` spells: a literal, a constant, or a constant plus or minus a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and 2030 <= node.value < 2100:
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub) and isinstance(node.right, ast.Constant):
        base = _year(node.left, constants)
        if base is not None:
            return base + node.right.value if isinstance(node.op, ast.Add) else base - node.right.value
    return None


def years_used(path: Path) -> set[int]:
    """Every year a test module writes: in its text (dates, partition names) and as constants with offsets."""
    source = path.read_text()
    tree = ast.parse(source)
    constants = _constants(tree)
    found = {int(year) for year in _LITERAL_YEAR.findall(source)}
    found |= {year for node in ast.walk(tree) if (year := _year(node, constants)) is not None}
    return found


def years_detached(path: Path) -> set[int]:
    """The years of the months a module passes to ``detach_month(…, Month(year, month))``."""
    tree = ast.parse(path.read_text())
    constants = _constants(tree)
    return {_year(month.args[0], constants) for call in ast.walk(tree)
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "detach_month"
            for month in call.args if isinstance(month, ast.Call) and getattr(month.func, "id", None) == "Month"}


def test_the_years_reader_sees_offsets_from_a_constant(tmp_path):
    module = tmp_path / "test_example.py"
    module.write_text("YEAR = 2090\nstart = f'{YEAR + 1}-01-01'\nend = (YEAR - 2, 3)\n")
    assert years_used(module) == {2088, 2090, 2091}


def test_the_years_test_partitions_detaches_are_its_own():
    for detaching in DETACHING:
        detached = years_detached(detaching)
        assert detached, f"{detaching.name} detaches a month: the reader should find its year"
        for path in sorted(TESTS.rglob("test_*.py")):
            if path not in (detaching, Path(__file__).resolve()):
                assert not years_used(path) & detached, f"{path.name} uses {sorted(years_used(path) & detached)}, " \
                                                         f"which {detaching.name} detaches"
