"""Decide whether a focus-validator 2.2 console report passes (used by scripts/focus-validator.sh; stdlib only).

    python scripts/focus_report_check.py RULES_DIR REPORT_FILE   → exit 0 pass, 1 rules failed, 5 unreadable report

The validator exits 0 even when rules fail, so its report is what decides, and a report that cannot be read in
full is a failure, never a pass: it must carry exactly one totals line ("Total: N | Pass: P | Fail: F | Skipped:
S"), one status line per rule adding up to exactly those counts, and at least one rule. A failing rule counts unless
it is one branch of an OR rule that passed: focus-validator 2.2 evaluates both branches of such ORs and reports the
losing one as failed (InvoiceId-C-004-C, "MUST be null when not invoiced", fails on every dataset that carries
invoice ids although its OR parent InvoiceId-C-003-C passes: FOCUS_Spec#2394 / focus_validator#142)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

TOTALS = re.compile(r"^Total: (\d+) \| Pass: (\d+) \| Fail: (\d+) \| Skipped: (\d+)\s*$", re.M)
RULE_LINE = re.compile(r"^\S+ ([A-Za-z]+-[A-Z]-\d{3}-[A-Z]): (PASS|FAIL|SKIPPED)\b", re.M)
STATUSES = ("PASS", "FAIL", "SKIPPED")


def or_branches(requirement):
    """The model rules that are alternatives of an OR inside ``requirement``."""
    if not isinstance(requirement, dict):
        return
    for item in requirement.get("Items") or []:
        if requirement.get("CheckFunction") == "OR" and item.get("CheckFunction") == "CheckModelRule":
            yield item["ModelRuleId"]
        yield from or_branches(item)


def verdict(report: str, model: dict) -> tuple[int, str]:
    """(exit code, one line saying why) for a console report judged against the validator's rule model."""
    totals = TOTALS.findall(report)
    if len(totals) != 1:
        return 5, f"focus-validator: expected one 'Total: N | Pass: P | Fail: F | Skipped: S' line, found {len(totals)}"
    total, *counts = (int(n) for n in totals[0])
    lines = RULE_LINE.findall(report)
    status = dict(lines)
    seen = [sum(1 for _, s in lines if s == wanted) for wanted in STATUSES]
    if total == 0 or len(status) != len(lines) or len(lines) != total or seen != counts or sum(counts) != total:
        return 5, (f"focus-validator: the report does not add up: totals say {total} rules "
                   f"(pass/fail/skipped {counts}), read {len(lines)} rule lines ({len(status)} distinct, "
                   f"pass/fail/skipped {seen})")
    rescued: set[str] = set()
    for rule_id, rule in model["ModelRules"].items():
        if status.get(rule_id) == "PASS":
            rescued.update(or_branches(rule["ValidationCriteria"].get("Requirement")))
    failed = sorted(r for r, s in status.items() if s == "FAIL")
    real = [r for r in failed if r not in rescued]
    summary = (f"focus-validator summary: {total} rules, Fail: {counts[1]}; failing only as a branch of a passed OR: "
               f"{', '.join(r for r in failed if r in rescued) or 'none'}; real failures: {len(real)} {' '.join(real)}")
    return (1 if real else 0), summary.rstrip()


def main(argv: list[str]) -> int:
    rules_dir, report_file = Path(argv[1]), Path(argv[2])
    model = json.loads(next(rules_dir.glob("model-1.2*.json")).read_text())
    code, line = verdict(report_file.read_text(errors="replace"), model)
    print(line, file=sys.stdout if code != 5 else sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
