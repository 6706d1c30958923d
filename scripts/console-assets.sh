#!/usr/bin/env bash
# The console's front-end library (Apache ECharts, pinned in console/package-lock.json) from npm into
# services/console/static/vendor/ (git-ignored): served from govmeter's own origin, never from a CDN, since
# government intranets have no internet. Re-running it is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
target=services/console/static/vendor/echarts.min.js
stamp=services/console/static/vendor/.lock-$(sha256sum console/package-lock.json | cut -c1-16)
if [ -f "$target" ] && [ -f "$stamp" ]; then
  exit 0
fi
(cd console && npm ci --no-audit --no-fund --silent)
mkdir -p services/console/static/vendor
rm -f services/console/static/vendor/.lock-*
cp console/node_modules/echarts/dist/echarts.min.js "$target"
cp console/node_modules/echarts/LICENSE services/console/static/vendor/echarts.LICENSE
touch "$stamp"
