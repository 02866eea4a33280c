#!/usr/bin/env bash
# Install the app into .venv and start it. With no warehouse configured, the first start builds
# the demo extract and the demo accounts (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
exec .venv/bin/python -m streamlit run app.py "$@"
