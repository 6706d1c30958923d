#!/usr/bin/env bash
# Create .venv and install govmeter with its test extras. Re-running it is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  rm -f .venv/.installed-* && touch "$stamp"
fi
# The console's browser tests drive Debian's Chromium (Playwright cannot download its own builds here); a CJK
# font (also the bills' PDF font, GOVMETER_PDF_FONT) keeps Chinese from rendering as empty boxes. Skipped when present; needs root (CI and these machines run as root).
if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "WenQuanYi Micro Hei"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver fonts-wqy-microhei >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
           chromium-driver fonts-wqy-microhei >/dev/null; }
  else
    echo "bootstrap: install chromium and fonts-wqy-microhei (apt-get) for the console's browser tests" >&2
  fi
fi
# The console's front-end library (ECharts) from npm, served locally.
bash scripts/console-assets.sh
