#!/usr/bin/env bash
# Install everything the tests need (Python packages, Debian's Chromium, a PostgreSQL server) and
# run them all: lint, format check, unit, app (AppTest), integration (PostgreSQL), end-to-end (Chromium).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."
export SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
# Debian's Chromium for the browser tests, with fonts so screenshots show text and emoji.
# LibreOffice Calc (headless) proves exported workbooks and CSV open in a real spreadsheet program.
if ! [ -x /usr/bin/chromium ] || ! [ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] \
  || ! command -v soffice >/dev/null; then
  echo "test.sh: installing Debian's chromium, fonts and LibreOffice Calc for the browser and spreadsheet tests" >&2
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium fonts-liberation fonts-noto-color-emoji libreoffice-calc-nogui >/dev/null
fi
# Debian's HAProxy for the replicas test (tests/e2e/test_replicas.py): the load balancer that
# scripts/replicas.sh puts in front of the app servers.
if ! command -v haproxy >/dev/null; then
  echo "test.sh: installing Debian's haproxy for the replicas test" >&2
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq haproxy >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
bash scripts/ensure-postgres.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -n 2 --dist loadgroup "$@"
