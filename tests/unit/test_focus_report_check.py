"""scripts/focus_report_check.py: a focus-validator report passes only when it was read in full and every failing
rule is accounted for. A validator that printed nothing, or changed its output format, must fail the FOCUS tests."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "focus_report_check.py"
_spec = importlib.util.spec_from_file_location("focus_report_check", SCRIPT)
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

# A model in the validator's shape: InvoiceId-C-003-C passes when either alternative does.
MODEL = {"ModelRules": {
    "InvoiceId-C-003-C": {"ValidationCriteria": {"Requirement": {"CheckFunction": "OR", "Items": [
        {"CheckFunction": "CheckModelRule", "ModelRuleId": "InvoiceId-C-004-C"},
        {"CheckFunction": "CheckModelRule", "ModelRuleId": "InvoiceId-C-005-C"}]}}},
    "InvoiceId-C-004-C": {"ValidationCriteria": {"Requirement": {"CheckFunction": "CheckNull"}}},
    "InvoiceId-C-005-C": {"ValidationCriteria": {"Requirement": {"CheckFunction": "CheckNotNull"}}},
    "BilledCost-C-001-M": {"ValidationCriteria": {"Requirement": {"CheckFunction": "CheckType"}}},
}}


def report(statuses: dict[str, str], totals: str | None = "auto") -> str:
    counts = [sum(1 for s in statuses.values() if s == wanted) for wanted in ("PASS", "FAIL", "SKIPPED")]
    if totals == "auto":
        totals = f"Total: {len(statuses)} | Pass: {counts[0]} | Fail: {counts[1]} | Skipped: {counts[2]}"
    lines = [f"{'✅' if s == 'PASS' else '❌'} {rule}: {s}  (12.0ms)" for rule, s in sorted(statuses.items())]
    return "\n=== Validation Results ===\n" + (totals + "\n" if totals else "") + "\n".join(lines) + "\n"


ALL_PASS = {"InvoiceId-C-003-C": "PASS", "InvoiceId-C-005-C": "PASS", "BilledCost-C-001-M": "PASS",
            "InvoiceId-C-004-C": "PASS"}


def test_a_report_with_every_rule_passing_passes():
    code, line = check.verdict(report(ALL_PASS), MODEL)
    assert (code, line) == (0, "focus-validator summary: 4 rules, Fail: 0; failing only as a branch of a passed OR: "
                               "none; real failures: 0")


def test_a_failing_branch_of_a_passed_or_is_excused_and_named():
    code, line = check.verdict(report({**ALL_PASS, "InvoiceId-C-004-C": "FAIL"}), MODEL)
    assert code == 0 and "passed OR: InvoiceId-C-004-C;" in line and "real failures: 0" in line


def test_any_other_failing_rule_fails():
    code, line = check.verdict(report({**ALL_PASS, "BilledCost-C-001-M": "FAIL"}), MODEL)
    assert code == 1 and line.endswith("real failures: 1 BilledCost-C-001-M")
    # a branch is excused only while its OR passed
    code, line = check.verdict(report({**ALL_PASS, "InvoiceId-C-003-C": "FAIL", "InvoiceId-C-004-C": "FAIL"}), MODEL)
    assert code == 1 and line.endswith("real failures: 2 InvoiceId-C-003-C InvoiceId-C-004-C")


@pytest.mark.parametrize("text", [
    "",  # the validator printed nothing
    "Traceback (most recent call last):\n  ...\nValueError: boom\n",
    report(ALL_PASS, totals=None),  # no totals line
    report(ALL_PASS, totals="Total: 4 | Pass: 4 | Failed: 0 | Skipped: 0"),  # the totals line changed its format
    report(ALL_PASS) + "Total: 4 | Pass: 4 | Fail: 0 | Skipped: 0\n",  # two totals lines
    report({}),  # no rule at all
    report(ALL_PASS).replace("✅ BilledCost-C-001-M: PASS", "BilledCost-C-001-M -> PASS"),  # a rule line unread
    report(ALL_PASS, totals="Total: 5 | Pass: 5 | Fail: 0 | Skipped: 0"),  # a rule more than the lines
    report({**ALL_PASS, "BilledCost-C-001-M": "FAIL"},
           totals="Total: 4 | Pass: 4 | Fail: 0 | Skipped: 0"),  # counts that disagree with the lines
    report(ALL_PASS) + "✅ BilledCost-C-001-M: PASS\n",  # a rule reported twice
])
def test_a_report_that_cannot_be_read_in_full_fails(text):
    code, line = check.verdict(text, MODEL)
    assert code == 5 and line.startswith("focus-validator: "), line


def test_the_command_exits_with_the_verdict(tmp_path):
    (tmp_path / "model-1.2.0.1.json").write_text(__import__("json").dumps(MODEL))
    for text, code in ((report(ALL_PASS), 0), (report({**ALL_PASS, "BilledCost-C-001-M": "FAIL"}), 1), ("", 5)):
        (tmp_path / "report.txt").write_text(text)
        done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), str(tmp_path / "report.txt")],
                              capture_output=True, text=True)
        assert done.returncode == code, done.stdout + done.stderr
