"""Helpers shared by the security unit tests: a Security over a fresh database with a fake clock
and a low bcrypt cost (the production default stays 12).

The database is the test's backend (``conftest.py``): a SQLite file in ``tmp_path``, or the
PostgreSQL schema named by ``SPOTLIGHT_APP_DB``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from security.clock import FakeClock
from security.db import Result
from security.service import Security
from settings import Settings, load_settings

TEST_ROUNDS = 4
PASSWORD = "correct horse battery"
CLIENT = "198.51.100.7"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    env = {
        "SPOTLIGHT_DATA_DIR": str(tmp_path / "data"),
        "SPOTLIGHT_KEY_DIR": str(tmp_path / "keys"),
    }
    if os.environ.get("SPOTLIGHT_APP_DB"):
        env["SPOTLIGHT_APP_DB"] = os.environ["SPOTLIGHT_APP_DB"]
    settings = load_settings(env=env, secrets_path=tmp_path / "no-secrets.toml")
    return settings.replace(**overrides) if overrides else settings


def make_security(tmp_path: Path, **overrides: Any) -> tuple[Security, FakeClock]:
    clock = FakeClock()
    sec = Security(make_settings(tmp_path, **overrides), clock=clock, bcrypt_rounds=TEST_ROUNDS)
    return sec, clock


def add_user(sec: Security, username: str = "dana", roles=("analyst",), **kwargs: Any):
    return sec.users.add(username, PASSWORD, list(roles), **kwargs)


def app_db_target(tmp_path: Path) -> Path | str:
    """What an ``AppDB`` of this test opens: the backend's PostgreSQL URL, or a file in tmp_path."""
    return os.environ.get("SPOTLIGHT_APP_DB") or tmp_path / "app.db"


def db_bytes(sec: Security) -> bytes:
    """Everything the database holds: on SQLite every byte of the file, its WAL and
    shared-memory files; on PostgreSQL every row of every table of the schema, as text."""
    if sec.db.path is None:
        tables = sec.db.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        )
        assert tables, "the schema has tables"
        rows = [r[0] for t in tables for r in sec.db.query(f'SELECT t::text FROM "{t[0]}" t')]
        return "\n".join(rows).encode()
    with sec.db.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
    data = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(str(sec.db.path) + suffix)
        if path.exists():
            data += path.read_bytes()
    return data


class RawSQL:
    """SQL run as someone with direct write access to the database (the file, or the server),
    each statement committed on its own; rows come back as from ``Tx.execute``."""

    def __init__(self, sec: Security):
        self.db = sec.db

    def execute(self, sql: str, params: Any = ()) -> Result:
        with self.db.transaction() as tx:
            return tx.execute(sql, params)


def tamper(sec: Security, *triggers: str) -> RawSQL:
    """Raw access with the audit log's append-only triggers dropped (both by default), as a
    tamperer with access to the file or the server has."""
    raw = RawSQL(sec)
    on_table = "" if sec.db.dialect == "sqlite" else " ON audit"
    for name in triggers or ("audit_no_update", "audit_no_delete"):
        raw.execute(f"DROP TRIGGER {name}{on_table}")
    return raw


def rewind_audit_sequence(sec: Security, seq: int) -> None:
    """Set the database's record of the highest audit id ever issued, as a tamperer would after
    deleting the newest records (SQLite's sqlite_sequence, PostgreSQL's id_sequence)."""
    table = "sqlite_sequence" if sec.db.dialect == "sqlite" else "id_sequence"
    RawSQL(sec).execute(f"UPDATE {table} SET seq = ? WHERE name = 'audit'", (seq,))


def hammer_failed_signins(
    tmp_path: str, overrides: dict[str, Any], username: str, attempts: int, client: str
) -> list[str]:
    """Make ``attempts`` wrong-password sign-ins from a fresh Security over the database of
    ``make_security(tmp_path, **overrides)``; the statuses. Module-level and built from plain
    arguments so that a spawned process can run it."""
    sec = Security(make_settings(Path(tmp_path), **overrides), bcrypt_rounds=TEST_ROUNDS)
    return [sec.authenticate(username, "wrong password!", client).status for _ in range(attempts)]
