#!/usr/bin/env bash
# Validate a CSV against FinOps FOCUS 1.2 with focus-validator 2.2.x, in a venv of its own.
#
#   scripts/focus-validator.sh FILE.csv     → the validator's report on stdout; exit 0 only if no rule failed
#   scripts/focus-validator.sh --install    → create the venv (cached in .cache/focus-venv) and exit
#
# Why a venv of its own: focus-validator 2.x needs Python ≥ 3.12 (govmeter runs on 3.11), and its pin
# numpy<2 does not go with the pyarrow it pulls in, so numpy>=2 is installed over it. It finds its rule files
# only when run from its package's parent folder, and it exits 0 even when rules fail, so its report is what
# decides (scripts/focus_report_check.py). --block-download keeps it on the rule set shipped in the package.
# Exit codes: 0 valid, 1 rules failed, 2 usage, 3 no Python ≥ 3.12 found, 4 install failed, 5 report unreadable.
set -euo pipefail
data=""
case "${1:-}" in
  --install) ;;
  ""|-h|--help) sed -n '2,12p' "$0"; exit 2 ;;
  *) data="$(realpath "$1")" ;;
esac
cd "$(dirname "$0")/.."
VENV="$(realpath -m "${FOCUS_VENV:-.cache/focus-venv}")"
VERSION="${FOCUS_VALIDATOR_VERSION:-2.2.1}"

find_python() {
  local candidate
  for candidate in "${FOCUS_PYTHON:-}" python3.13 python3.12 /root/.pyenv/versions/3.1[2-9]*/bin/python \
                   "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python /usr/bin/python3.1[2-9]; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

install() {
  local stamp="$VENV/.installed-$VERSION"
  [ -f "$stamp" ] && return 0
  local python
  if ! python="$(find_python)"; then
    echo "focus-validator: no Python >= 3.12 found (set FOCUS_PYTHON)" >&2
    exit 3
  fi
  rm -rf "$VENV"
  "$python" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "focus-validator==$VERSION" ||
    { echo "focus-validator: install failed" >&2; exit 4; }
  # pip warns that this breaks focus-validator's numpy pin; that pin is what is wrong (pyarrow needs numpy 2)
  "$VENV/bin/pip" install -q --disable-pip-version-check "numpy>=2" 2>/dev/null ||
    { echo "focus-validator: installing numpy>=2 failed" >&2; exit 4; }
  "$VENV/bin/python" -c 'import focus_validator, numpy, pyarrow' || { echo "focus-validator: broken install" >&2; exit 4; }
  touch "$stamp"
}

install
[ -n "$data" ] || exit 0
site="$("$VENV/bin/python" -c 'import focus_validator, os; print(os.path.dirname(os.path.dirname(focus_validator.__file__)))')"
report_file="$(mktemp)"
trap 'rm -f "$report_file"' EXIT
(cd "$site" && "$VENV/bin/focus-validator" --data-file "$data" --validate-version 1.2 --block-download) \
  >"$report_file" 2>&1 || true
cat "$report_file"
# The report decides (the validator exits 0 even when rules fail): scripts/focus_report_check.py passes it only when
# its totals line and its rule lines agree and every failing rule is a branch of an OR rule that passed.
"$VENV/bin/python" scripts/focus_report_check.py "$site/focus_validator/rules" "$report_file"
