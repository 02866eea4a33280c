#!/usr/bin/env bash
# N app replicas (`streamlit run app.py` each) behind HAProxy on one host, sharing the app
# database on PostgreSQL, each with its own copy of the published extract. The recipe a
# multi-host deployment follows too (docs/architecture.md, "Replicas"); stop with Ctrl+C.
#
#   SPOTLIGHT_APP_DB=postgresql://spotlight@127.0.0.1:5432/spotlight scripts/replicas.sh
#   REPLICAS=4 LB_PORT=8500 BASE_PORT=8501 PUBLISHED=/srv/spotlight/published scripts/replicas.sh
#
# - HAProxy (Debian's package) listens on LB_PORT, routes each browser to one replica with a
#   cookie (sticky websockets) and checks /_stcore/health every 2 s.
# - Every replica trusts X-Forwarded-For only from HAProxy (SPOTLIGHT_TRUSTED_PROXIES), so the
#   sign-in throttles and the audit log see the browser's address, and cookie_secure=auto
#   follows HAProxy's X-Forwarded-Proto.
# - The extract: the sync writes PUBLISHED/extract.duckdb (cron: SPOTLIGHT_DATA_DIR=$PUBLISHED
#   python cli.py sync --quiet). Every PULL_SECONDS each replica runs `cli.py pull-extract`,
#   which copies a changed build in and swaps it atomically; the app reopens it on its next run.
#   With no warehouse configured the published extract is the demo one, built here once.
# - Keys: the replicas share SPOTLIGHT_KEY_DIR (demo mode) or the same secrets; Streamlit's own
#   cookie secret (XSRF and st.login cookies) is generated once into the key folder and given to
#   every replica, so a browser sent to another replica keeps working.
set -euo pipefail
cd "$(dirname "$0")/.."

replicas="${REPLICAS:-2}"
lb_port="${LB_PORT:-8500}"
base_port="${BASE_PORT:-8501}"
run_dir="${RUN_DIR:-var/replicas}"
published="${PUBLISHED:-$run_dir/published}"
pull_seconds="${PULL_SECONDS:-60}"
python=.venv/bin/python

die() { echo "replicas.sh: $*" >&2; exit 1; }
case "${SPOTLIGHT_APP_DB:-}" in
  postgresql://*|postgresql+psycopg://*) ;;
  *) die "set SPOTLIGHT_APP_DB=postgresql://user@host:5432/db: replicas share users, sessions and the audit log there (a SQLite file cannot be shared)" ;;
esac
[[ "$replicas" =~ ^[1-9][0-9]?$ ]] || die "REPLICAS must be a number from 1 to 99"
command -v haproxy >/dev/null || die "HAProxy is not installed: sudo apt-get install haproxy"
[ -x "$python" ] || die "no .venv: run scripts/start.sh once (it installs the app)"

export SPOTLIGHT_KEY_DIR="${SPOTLIGHT_KEY_DIR:-$HOME/.config/spotlight-analytics}"
export SPOTLIGHT_TRUSTED_PROXIES="${SPOTLIGHT_TRUSTED_PROXIES:-127.0.0.1}"
mkdir -p "$run_dir" "$published"
mkdir -p -m 700 "$SPOTLIGHT_KEY_DIR"
secret_file="$SPOTLIGHT_KEY_DIR/streamlit_cookie_secret.key"
if [ -z "${STREAMLIT_SERVER_COOKIE_SECRET:-}" ]; then
  [ -s "$secret_file" ] || (umask 077 && "$python" -c 'import secrets; print(secrets.token_urlsafe(48))' > "$secret_file")
  STREAMLIT_SERVER_COOKIE_SECRET="$(cat "$secret_file")"
  export STREAMLIT_SERVER_COOKIE_SECRET
fi

if [ ! -f "$published/extract.duckdb" ]; then
  if SPOTLIGHT_DATA_DIR="$published" "$python" -c 'from settings import load_settings; import sys; sys.exit(0 if load_settings().demo_mode else 1)'; then
    echo "replicas.sh: building the published demo extract in $published (first start only)" >&2
    SPOTLIGHT_DATA_DIR="$published" "$python" cli.py demo
  else
    die "no extract at $published/extract.duckdb: run SPOTLIGHT_DATA_DIR=$published python cli.py sync first"
  fi
fi

pids=()
stop() { trap - EXIT INT TERM; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM

servers=()
for i in $(seq 1 "$replicas"); do
  port=$((base_port + i - 1))
  data="$run_dir/replica$i"
  SPOTLIGHT_DATA_DIR="$data" "$python" cli.py pull-extract --from "$published/extract.duckdb"
  SPOTLIGHT_DATA_DIR="$data" "$python" -m streamlit run app.py --server.port "$port" \
    --server.address 127.0.0.1 --logger.hideWelcomeMessage true > "$run_dir/replica$i.log" 2>&1 &
  pids+=($!)
  # Pick up every new published build: a copy when it changed, nothing otherwise.
  ( while sleep "$pull_seconds"; do
      SPOTLIGHT_DATA_DIR="$data" "$python" cli.py pull-extract --from "$published/extract.duckdb" --quiet \
        || echo "replicas.sh: replica$i could not pull the extract (it keeps serving the last one)" >&2
    done ) >> "$run_dir/replica$i.log" 2>&1 &
  pids+=($!)
  servers+=(--server "127.0.0.1:$port")
done

"$python" -m deploy.haproxy --bind "0.0.0.0:$lb_port" "${servers[@]}" > "$run_dir/haproxy.cfg"
haproxy -c -q -f "$run_dir/haproxy.cfg"
echo "Spotlight Analytics: $replicas replicas behind HAProxy at http://localhost:$lb_port" \
     "(logs in $run_dir). Stop with Ctrl+C." >&2
haproxy -db -f "$run_dir/haproxy.cfg" &
pids+=($!)
wait -n "${pids[@]}"
