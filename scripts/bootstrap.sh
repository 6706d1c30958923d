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
# A CJK font for the bills' printable PDF (GOVMETER_PDF_FONT); root and CI can apt-get, others are told.
if [ ! -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q fonts-wqy-microhei
  else
    echo "bills' PDF needs a CJK font: apt-get install fonts-wqy-microhei (or set GOVMETER_PDF_FONT)" >&2
  fi
fi
