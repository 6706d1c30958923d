#!/usr/bin/env bash
# Quick start, command 1: install what is needed and run the whole system with a demo load (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/govmeter dev --demo "$@"
