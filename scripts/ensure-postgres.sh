#!/usr/bin/env bash
# Make sure a PostgreSQL server answers at SPOTLIGHT_TEST_PG_DSN's host (default 127.0.0.1:5432),
# starting the machine's cluster, or installing PostgreSQL from Debian, when it does not.
set -euo pipefail
if [ -z "${SUDO+x}" ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
fi
host=${SPOTLIGHT_TEST_PG_HOST:-127.0.0.1}
port=${SPOTLIGHT_TEST_PG_PORT:-5432}
ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }
ready && exit 0
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "ensure-postgres: installing PostgreSQL from Debian's packages" >&2
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq postgresql >/dev/null
fi
for version in $(ls /etc/postgresql 2>/dev/null); do
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
done
for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
echo "ensure-postgres: no PostgreSQL server answers at $host:$port" >&2
exit 1
