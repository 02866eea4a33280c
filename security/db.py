"""The app database: SQLite (WAL) holding users, sessions, throttles, used TOTP codes, the audit
log and alerts.

Safe under concurrent Streamlit sessions (threads) and processes (several app servers, the CLI):
each thread gets its own connection, every write runs in ``BEGIN IMMEDIATE`` (the write lock is
taken before the first read, so read-modify-write counters stay exact), and a busy database is
waited for (``busy_timeout``) rather than failed. Schema changes are numbered migrations tracked in
``PRAGMA user_version``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000

# Each migration is a list of statements run in one transaction; append, never edit.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE users (
            username TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            roles TEXT NOT NULL,              -- JSON list of role names
            creator_ids TEXT NOT NULL DEFAULT '[]',  -- JSON list of ints (external roles' scope)
            disabled INTEGER NOT NULL DEFAULT 0,
            is_demo INTEGER NOT NULL DEFAULT 0,
            totp_secret_enc TEXT,             -- AES-GCM under the app key, never plaintext
            totp_enrolled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY,              -- public id, safe to show and log
            token_hash TEXT NOT NULL UNIQUE,  -- SHA-256 of the bearer token; the token is never stored
            username TEXT NOT NULL REFERENCES users(username),
            client_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            mfa_verified_at TEXT,
            step_up_at TEXT,
            revoked_at TEXT,
            revoke_reason TEXT
        )""",
        "CREATE INDEX sessions_user ON sessions(username, revoked_at)",
        """CREATE TABLE throttles (
            kind TEXT NOT NULL,               -- signin_user | signin_client | totp
            key TEXT NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,
            window_start TEXT,
            locked_until TEXT,
            PRIMARY KEY (kind, key)
        )""",
        """CREATE TABLE used_totp (
            username TEXT NOT NULL,
            timestep INTEGER NOT NULL,
            used_at TEXT NOT NULL,
            PRIMARY KEY (username, timestep)
        )""",
        """CREATE TABLE known_clients (
            username TEXT NOT NULL,
            client_id TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            PRIMARY KEY (username, client_id)
        )""",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            client TEXT NOT NULL,
            outcome TEXT NOT NULL,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX audit_action_ts ON audit(action, ts)",
        "CREATE INDEX audit_actor_ts ON audit(actor, ts)",
        # Append-only in the database itself: the app never updates or deletes audit rows, and
        # a bug that tries is stopped here (a tamperer with file access is caught by the chain).
        """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        """CREATE TABLE alerts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            raised_at TEXT NOT NULL,
            kind TEXT NOT NULL,
            severity TEXT NOT NULL,
            message TEXT NOT NULL,
            details TEXT NOT NULL,
            dedupe_key TEXT,
            acknowledged_by TEXT,
            acknowledged_at TEXT
        )""",
        "CREATE INDEX alerts_open ON alerts(acknowledged_at, raised_at)",
    ],
    [
        # Saved dashboard views (security/saved_views.py): a user's named filter sets.
        """CREATE TABLE saved_views (
            username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
            name TEXT NOT NULL,
            params TEXT NOT NULL,             -- JSON object of URL filter parameters
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (username, name)
        )""",
    ],
    [
        # Hardening (SECURITY.md #12, #17, #18): the step-up record a privileged change cites,
        # devices that signed in before (not locked out by failures from elsewhere), and audit
        # records whose hash is an HMAC under the audit key (mac = 1; 0: an older, unkeyed prefix).
        "ALTER TABLE sessions ADD COLUMN step_up_audit_id INTEGER",
        """CREATE TABLE trusted_devices (
            id TEXT PRIMARY KEY,              -- public id, used as the device's throttle key
            token_hash TEXT NOT NULL UNIQUE,  -- SHA-256 of the device cookie's token
            username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            last_used_at TEXT NOT NULL,
            revoked_at TEXT
        )""",
        "CREATE INDEX trusted_devices_user ON trusted_devices(username, revoked_at)",
        "ALTER TABLE audit ADD COLUMN mac INTEGER NOT NULL DEFAULT 0",
    ],
]


class AppDB:
    """Connections to the app database at ``path``, one per thread, schema migrated on open."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.migrate()

    def connect(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; transactions are explicit)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = self._open()
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    def _open(self) -> sqlite3.Connection:
        existed = self.path.exists()
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed audit record or lock survives a power cut, at a small write cost.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        if not existed:
            # Password hashes and the audit log are for the app's eyes only.
            os.chmod(self.path, 0o600)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): committed on success, rolled back on error.

        The write lock is held from the start, so everything read inside is still true when the
        transaction writes; other writers wait up to BUSY_TIMEOUT_MS.
        """
        conn = self.connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Rows of a read-only statement (a consistent snapshot of one statement)."""
        return self.connect().execute(sql, params).fetchall()

    def migrate(self) -> int:
        """Apply pending migrations (safe when several processes start at once); the version."""
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, statements in enumerate(MIGRATIONS, start=1):
                if number <= version:
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                version = number
        return version

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
