"""No function over 80 lines outside migrations: a long function hides a second rule, so it is split where the rule
changes. Counted from the `def` line to the function's last line (docstring and comments included), for every
function and method, nested ones too, in the project's own Python trees."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ("services", "schemas", "tests", "bench", "scripts")
MAX_LINES = 80

# Functions over the limit that are tolerated; empty, and nothing may be added to it.
KNOWN_LONG: set[tuple[str, str]] = set()


def long_functions(root: Path = ROOT, max_lines: int = MAX_LINES) -> list[tuple[str, str, int, int]]:
    """(path, function name, first line, length) of every function longer than max_lines under the trees."""
    found = []
    for tree in TREES:
        for path in sorted((root / tree).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=relative)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > max_lines:
                        found.append((relative, node.name, node.lineno, length))
    return found


def test_no_function_is_longer_than_80_lines_outside_migrations():
    too_long = [f"{path}:{line} {name} ({length} lines)" for path, name, line, length in long_functions()
                if (path, name) not in KNOWN_LONG]
    assert not too_long, "split these where the rule changes:\n" + "\n".join(too_long)


def test_the_length_check_counts_a_function_from_its_def_to_its_last_line(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(80))
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "m.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n")
    assert long_functions(tmp_path) == [("services/m.py", "long", 5, 81)]
