#!/usr/bin/env bash
# Install the app into .venv and start it. With no warehouse configured, the first start builds
# the demo extract and the demo accounts (see README).
#   scripts/start.sh                      # http://localhost:8501
#   PORT=8080 scripts/start.sh            # another port (or: scripts/start.sh --server.port 8080)
set -euo pipefail
cd "$(dirname "$0")/.."
port="${PORT:-8501}"
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --server.port=*) port="${args[$i]#*=}" ;;
    --server.port) port="${args[$((i + 1))]:-$port}" ;;
  esac
done

# Packages are installed when .venv is new or the pinned requirements changed since the last
# install; otherwise the app starts at once.
stamp=.venv/.spotlight-requirements
wanted=$(cat requirements.txt constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "start.sh: installing the app's packages into .venv (first start, or the requirements" \
       "changed; a few minutes)..." >&2
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off \
    -r requirements.txt 2>&1 | grep -E '^(Collecting|Successfully installed|ERROR)' >&2 || true
  .venv/bin/python -c "import streamlit, duckdb, sqlalchemy" 2>/dev/null \
    || { echo "start.sh: the install failed; run: .venv/bin/python -m pip install -r requirements.txt" >&2; exit 1; }
  echo "$wanted" > "$stamp"
fi

# Streamlit's own banner looks up this machine's public address, which fails offline with a
# warning that reads like an error; say where the app is instead.
host_ip=$(hostname -I 2>/dev/null | awk '{print $1}')
echo "Spotlight Analytics: open http://localhost:${port}${host_ip:+ (from other machines: http://${host_ip}:${port})}." >&2
echo "The first start on demo data builds the demo extract (a progress bar in the page). Stop with Ctrl+C." >&2
exec .venv/bin/python -m streamlit run app.py --server.port "$port" --logger.hideWelcomeMessage true "${args[@]}"
