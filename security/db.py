"""The app database: users, sessions, throttles, used TOTP codes, trusted devices, the audit log,
alerts and saved views, on SQLite (the embedded default, a file in the data folder) or
PostgreSQL (``app_db = postgresql://user:pass@host:5432/db``, optionally ``?schema=name``), through
SQLAlchemy Core.

The callers write plain SQL with ``?`` placeholders and read rows as ``row["col"]`` or
``row[0]``: :class:`Tx` turns each statement into a :func:`sqlalchemy.text` with named binds, so
values are always bound, and SQLAlchemy brings the drivers, the connection pool and one set of
exceptions (``IntegrityError``, ``OperationalError``) for both databases. The SQL the callers
write is the subset both databases speak (``ON CONFLICT ... DO UPDATE``, ``RETURNING``, ``CASE``
rather than SQLite's two-argument ``MAX``); where the databases differ, this module says so once.

Transactions (the rules the security code relies on):

- Every write runs in :meth:`AppDB.transaction`, and write transactions run **one at a time**.
  SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock before the first read. PostgreSQL:
  the first statement is ``pg_advisory_xact_lock`` on a key of this app database (its schema),
  held until commit or rollback, in READ COMMITTED so that every later statement of the
  transaction sees what the previous writer committed. The security code reads, decides and
  writes (throttle counters, used TOTP codes, the step-up, the audit chain's head and next id)
  and relies on nothing changing in between; row locks or SERIALIZABLE retries would each need
  that logic rewritten per statement, one lock keeps it true as written. Writes are a few
  milliseconds (the slow bcrypt checks run outside them), so one writer at a time is not the
  bottleneck. A writer waits up to ``LOCK_TIMEOUT_SECONDS`` for the lock, then fails.
- Reads (:meth:`AppDB.query`) run outside any transaction, each statement on its own snapshot,
  and never wait for a writer. :meth:`AppDB.snapshot` gives several reads one snapshot (the audit
  chain check).
- Schema changes are numbered migrations in ``MIGRATIONS``, applied in order on start inside one
  write transaction (safe when several processes start at once) and recorded in the table
  ``schema_migrations``. SQLite databases written before that table existed kept their version in
  ``PRAGMA user_version``; it is adopted on first open. Append a migration, never edit one that
  has shipped: a statement written once runs on both databases, and the few that differ are
  spelled per dialect (:class:`PerDialect`, and the tokens in ``_TOKENS``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.sql.elements import TextClause

from settings import SettingsError

if TYPE_CHECKING:
    from settings import Settings

__all__ = [
    "MIGRATIONS",
    "AppDB",
    "AppDBError",
    "IntegrityError",
    "OperationalError",
    "PerDialect",
    "Result",
    "Row",
    "Tx",
    "app_db_target",
]

BUSY_TIMEOUT_MS = 30_000
LOCK_TIMEOUT_SECONDS = BUSY_TIMEOUT_MS // 1000
# A PostgreSQL session that sits inside a transaction this long is ended by the server, so a
# stuck process cannot hold the write lock of every replica for ever.
IDLE_IN_TRANSACTION_SECONDS = 120
# Connections per process: a page run holds one for a statement or a short transaction.
POOL_SIZE = 5
MAX_OVERFLOW = 20
# The advisory lock's first key: "SPOT". The second is a hash of the schema, so two app databases
# in one PostgreSQL database (schemas) do not wait for each other.
_PG_LOCK_CLASS = 0x53504F54
_PG_WRITE_LOCK = (
    f"SELECT pg_advisory_xact_lock({_PG_LOCK_CLASS}, hashtext(coalesce(current_schema(), '')))"
)
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class AppDBError(SettingsError):
    """The app database cannot be used as configured (a setting the app cannot read, or a
    database it cannot open); the message says what to fix and never holds the password."""


@dataclass(frozen=True)
class PerDialect:
    """A migration statement that SQLite and PostgreSQL spell differently; None: nothing to run
    on that database (e.g. what SQLite does by itself)."""

    sqlite: str | None
    postgresql: str | None


# Column types that differ, written as tokens in the migrations:
# - {autoincrement_pk}: an id the database assigns and never reuses;
# - {issued_pk}: an id the app assigns itself (the audit log's gapless ids), never reused after a
#   delete. SQLite's AUTOINCREMENT keeps the highest id ever used in sqlite_sequence; PostgreSQL
#   gets the same from the id_sequence table kept by a trigger (migration 1). Not a PostgreSQL
#   sequence: a sequence is not transactional, so an id drawn in a transaction that rolls back
#   would leave a gap that the chain check must report as tampering.
# - {bigint}: a column that holds such an id.
# On PostgreSQL every TEXT column is also declared COLLATE "C", so text compares byte by byte as
# SQLite's BINARY collation does (timestamps, usernames and view names sort the same on both).
_TOKENS = {
    "sqlite": {
        "{autoincrement_pk}": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "{issued_pk}": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "{bigint}": "INTEGER",
    },
    "postgresql": {
        "{autoincrement_pk}": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        "{issued_pk}": "BIGINT PRIMARY KEY",
        "{bigint}": "BIGINT",
    },
}
# Where each database remembers the highest id ever issued in an {issued_pk} table.
_SEQUENCE_TABLE = {"sqlite": "sqlite_sequence", "postgresql": "id_sequence"}

_APPEND_ONLY = "the audit log is append-only"

Migration = list[str | PerDialect]

# Each migration is a list of statements run in one transaction; append, never edit.
MIGRATIONS: list[Migration] = [
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
            id {issued_pk},
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
        # PostgreSQL's counterpart of sqlite_sequence for the audit log: the highest id ever
        # inserted, kept in the inserting transaction (so a rollback leaves no trace).
        PerDialect(
            sqlite=None,
            postgresql="CREATE TABLE id_sequence (name TEXT PRIMARY KEY, seq BIGINT NOT NULL)",
        ),
        PerDialect(
            sqlite=None,
            postgresql="""CREATE FUNCTION note_issued_id() RETURNS trigger LANGUAGE plpgsql
            SET search_path FROM CURRENT AS $$
            BEGIN
                INSERT INTO id_sequence (name, seq) VALUES (TG_TABLE_NAME, NEW.id)
                ON CONFLICT (name) DO UPDATE SET seq = GREATEST(id_sequence.seq, EXCLUDED.seq);
                RETURN NULL;
            END $$""",
        ),
        PerDialect(
            sqlite=None,
            postgresql="CREATE TRIGGER audit_issued_id AFTER INSERT ON audit "
            "FOR EACH ROW EXECUTE FUNCTION note_issued_id()",
        ),
        # Append-only in the database itself: the app never updates or deletes audit rows, and
        # a bug that tries is stopped here (a tamperer with file access is caught by the chain).
        PerDialect(
            sqlite=None,
            postgresql="""CREATE FUNCTION refuse_audit_change() RETURNS trigger LANGUAGE plpgsql
            AS $$
            BEGIN
                RAISE EXCEPTION 'the audit log is append-only'
                    USING ERRCODE = 'integrity_constraint_violation';
            END $$""",
        ),
        PerDialect(
            sqlite="""CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
            postgresql="CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
            "FOR EACH ROW EXECUTE FUNCTION refuse_audit_change()",
        ),
        PerDialect(
            sqlite="""CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
            postgresql="CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
            "FOR EACH ROW EXECUTE FUNCTION refuse_audit_change()",
        ),
        # TRUNCATE skips row triggers on PostgreSQL (SQLite has no TRUNCATE).
        PerDialect(
            sqlite=None,
            postgresql="CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
            "FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change()",
        ),
        """CREATE TABLE alerts (
            id {autoincrement_pk},
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
        "ALTER TABLE sessions ADD COLUMN step_up_audit_id {bigint}",
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
    [
        # The finance team's payout decisions (security/payout_ledger.py): an append-only ledger
        # beside the synced warehouse rows (which the app never writes), one row per decision,
        # numbered per payout line. A decision records the number it follows (seq = that + 1);
        # UNIQUE (payout_id, seq) refuses a second decision on the same state in the database
        # itself. Money is exact decimal text ('1234.50'): SQLite has no exact decimal type
        # (NUMERIC affinity keeps a float), and text reads back the same on both databases.
        """CREATE TABLE payout_decisions (
            id {autoincrement_pk},
            payout_id {bigint} NOT NULL,      -- fact_payout.payout_id, the warehouse's line
            seq INTEGER NOT NULL CHECK (seq >= 1),
            decision TEXT NOT NULL
                CHECK (decision IN ('approve', 'hold', 'release', 'adjust', 'export')),
            status_after TEXT NOT NULL,       -- the status shown once it was made
            amount_before TEXT NOT NULL,      -- the amount due before and after, exact decimals
            amount_after TEXT NOT NULL,
            reason TEXT,                      -- as typed; never interpreted
            creator_id {bigint} NOT NULL,     -- the warehouse line the decision was made on
            period TEXT NOT NULL,             -- first day of the month, YYYY-MM-DD
            warehouse_amount TEXT NOT NULL,
            currency TEXT NOT NULL,
            warehouse_status TEXT NOT NULL,
            batch_id TEXT,                    -- export: the payment batch
            decided_by TEXT NOT NULL,         -- username
            decided_by_name TEXT NOT NULL,
            decided_at TEXT NOT NULL,
            step_up_id {bigint},              -- the step-up audit record the decision cites
            audit_id {bigint} NOT NULL,       -- its own audit record, written in the same transaction
            UNIQUE (payout_id, seq)
        )""",
        PerDialect(
            sqlite=None,
            postgresql="""CREATE FUNCTION refuse_payout_decision_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the payout ledger is append-only'
                    USING ERRCODE = 'integrity_constraint_violation';
            END $$""",
        ),
        PerDialect(
            sqlite="""CREATE TRIGGER payout_decisions_no_update BEFORE UPDATE ON payout_decisions
           BEGIN SELECT RAISE(ABORT, 'the payout ledger is append-only'); END""",
            postgresql="CREATE TRIGGER payout_decisions_no_update BEFORE UPDATE ON "
            "payout_decisions FOR EACH ROW EXECUTE FUNCTION refuse_payout_decision_change()",
        ),
        PerDialect(
            sqlite="""CREATE TRIGGER payout_decisions_no_delete BEFORE DELETE ON payout_decisions
           BEGIN SELECT RAISE(ABORT, 'the payout ledger is append-only'); END""",
            postgresql="CREATE TRIGGER payout_decisions_no_delete BEFORE DELETE ON "
            "payout_decisions FOR EACH ROW EXECUTE FUNCTION refuse_payout_decision_change()",
        ),
        PerDialect(
            sqlite=None,
            postgresql="CREATE TRIGGER payout_decisions_no_truncate BEFORE TRUNCATE ON "
            "payout_decisions FOR EACH STATEMENT EXECUTE FUNCTION refuse_payout_decision_change()",
        ),
    ],
    [
        # Audience segments and the cluster-model registry (security/segment_store.py). A segment
        # is a row of ``segments`` (who owns it, its current name, a soft delete) and its saves,
        # one row each in ``segment_versions`` (1, 2, 3 ... per segment, never changed). Names
        # are unique per owner among live segments, compared case-folded (``name_key``, folded
        # by the app: SQLite's lower() folds ASCII only). Owners are usernames, not foreign keys,
        # as in the audit log: accounts are disabled, never deleted.
        """CREATE TABLE segments (
            id {autoincrement_pk},
            owner TEXT NOT NULL,              -- username
            name TEXT NOT NULL,               -- the latest version's name
            name_key TEXT NOT NULL,           -- the name NFKC-normalised and case-folded
            created_at TEXT NOT NULL,
            deleted_at TEXT,                  -- soft delete: the versions stay
            deleted_by TEXT
        )""",
        "CREATE UNIQUE INDEX segments_live_name ON segments(owner, name_key) "
        "WHERE deleted_at IS NULL",
        """CREATE TABLE segment_versions (
            segment_id {bigint} NOT NULL REFERENCES segments(id),
            version INTEGER NOT NULL CHECK (version >= 1),
            name TEXT NOT NULL,
            description TEXT NOT NULL,
            definition TEXT NOT NULL,         -- a JSON object; data/ validates it when loaded
            saved_by TEXT NOT NULL,           -- username
            saved_at TEXT NOT NULL,
            PRIMARY KEY (segment_id, version)
        )""",
        # Fitted clustering models: id is the version shown (1, 2, 3 ... issued by the app under
        # the write lock, so without gaps). The model in use is the one of the latest row of
        # cluster_model_uses: a fit adds one for the new model, choosing an older one adds one.
        """CREATE TABLE cluster_models (
            id INTEGER PRIMARY KEY CHECK (id >= 1),
            fitted_by TEXT NOT NULL,          -- username
            fitted_at TEXT NOT NULL,
            params TEXT NOT NULL,             -- JSON object
            data_build TEXT NOT NULL,         -- fingerprint of the data it was fitted on
            quality TEXT NOT NULL,            -- JSON object
            summary TEXT NOT NULL             -- JSON object: the clusters described
        )""",
        """CREATE TABLE cluster_model_uses (
            id {autoincrement_pk},
            model_id INTEGER NOT NULL REFERENCES cluster_models(id),
            chosen_by TEXT NOT NULL,          -- username
            chosen_at TEXT NOT NULL
        )""",
        PerDialect(
            sqlite=None,
            postgresql="""CREATE FUNCTION refuse_segment_store_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
                    USING ERRCODE = 'integrity_constraint_violation';
            END $$""",
        ),
        *(
            statement
            for table in ("segment_versions", "cluster_models", "cluster_model_uses")
            for statement in (
                PerDialect(
                    sqlite=f"""CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
           BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""",
                    postgresql=f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_segment_store_change()",
                ),
                PerDialect(
                    sqlite=f"""CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
           BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""",
                    postgresql=f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_segment_store_change()",
                ),
                PerDialect(
                    sqlite=None,
                    postgresql=f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION refuse_segment_store_change()",
                ),
            )
        ),
    ],
    [
        # Saved reports (security/report_store.py), shaped like segments (migration 5): a row of
        # ``reports`` (owner, current name, soft delete) and its saves in ``report_versions``
        # (1, 2, 3 ... per report, never changed). ``report_shares`` is the report's current
        # share list, one row per user or role it is shared with; a share replaces the report's
        # rows in one transaction (the audit log keeps every list ever set).
        """CREATE TABLE reports (
            id {autoincrement_pk},
            owner TEXT NOT NULL,              -- username
            name TEXT NOT NULL,               -- the latest version's name
            name_key TEXT NOT NULL,           -- the name NFKC-normalised and case-folded
            created_at TEXT NOT NULL,
            deleted_at TEXT,                  -- soft delete: versions and shares stay
            deleted_by TEXT
        )""",
        "CREATE UNIQUE INDEX reports_live_name ON reports(owner, name_key) "
        "WHERE deleted_at IS NULL",
        """CREATE TABLE report_versions (
            report_id {bigint} NOT NULL REFERENCES reports(id),
            version INTEGER NOT NULL CHECK (version >= 1),
            name TEXT NOT NULL,
            description TEXT NOT NULL,
            definition TEXT NOT NULL,         -- a JSON object; the report builder validates it
            saved_by TEXT NOT NULL,           -- username
            saved_at TEXT NOT NULL,
            PRIMARY KEY (report_id, version)
        )""",
        """CREATE TABLE report_shares (
            report_id {bigint} NOT NULL REFERENCES reports(id),
            kind TEXT NOT NULL CHECK (kind IN ('user', 'role')),
            name TEXT NOT NULL,               -- a username or a role
            shared_by TEXT NOT NULL,          -- username
            shared_at TEXT NOT NULL,
            PRIMARY KEY (report_id, kind, name)
        )""",
        "CREATE INDEX report_shares_name ON report_shares(kind, name)",
        PerDialect(
            sqlite=None,
            postgresql="""CREATE FUNCTION refuse_report_version_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'report_versions is append-only'
                    USING ERRCODE = 'integrity_constraint_violation';
            END $$""",
        ),
        PerDialect(
            sqlite="""CREATE TRIGGER report_versions_no_update BEFORE UPDATE ON report_versions
           BEGIN SELECT RAISE(ABORT, 'report_versions is append-only'); END""",
            postgresql="CREATE TRIGGER report_versions_no_update BEFORE UPDATE ON "
            "report_versions FOR EACH ROW EXECUTE FUNCTION refuse_report_version_change()",
        ),
        PerDialect(
            sqlite="""CREATE TRIGGER report_versions_no_delete BEFORE DELETE ON report_versions
           BEGIN SELECT RAISE(ABORT, 'report_versions is append-only'); END""",
            postgresql="CREATE TRIGGER report_versions_no_delete BEFORE DELETE ON "
            "report_versions FOR EACH ROW EXECUTE FUNCTION refuse_report_version_change()",
        ),
        PerDialect(
            sqlite=None,
            postgresql="CREATE TRIGGER report_versions_no_truncate BEFORE TRUNCATE ON "
            "report_versions FOR EACH STATEMENT EXECUTE FUNCTION refuse_report_version_change()",
        ),
    ],
    [
        # Single sign-on (security/sso.py, security/sso_signin.py). An account in sso_accounts
        # signs in through the identity provider: no password here (password_hash is empty and
        # never matches), roles re-read from the ID token at every sign-in, and bound to the
        # provider's (issuer, subject) so that an email address reassigned at the provider
        # does not inherit it. sso_sessions: the sessions a provider sign-in began.
        """CREATE TABLE sso_accounts (
            username TEXT PRIMARY KEY REFERENCES users(username) ON DELETE CASCADE,
            issuer TEXT NOT NULL,
            subject TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE sso_sessions (
            session_id TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE
        )""",
    ],
    [
        # One app account per provider identity (issuer, subject): a username claim that
        # changed at the provider opened a second account beside the first under migration 7.
        # Where that already happened, the most recently created account keeps the identity;
        # the older ones are disabled (which ends their sessions) and unbound, so neither a
        # password nor a provider sign-in opens them; an admin can delete them.
        """UPDATE users SET disabled = 1 WHERE username IN (
            SELECT a.username FROM sso_accounts a WHERE EXISTS (
                SELECT 1 FROM sso_accounts b
                WHERE b.issuer = a.issuer AND b.subject = a.subject
                  AND (b.created_at > a.created_at
                       OR (b.created_at = a.created_at AND b.username > a.username))))""",
        """DELETE FROM sso_accounts WHERE EXISTS (
            SELECT 1 FROM sso_accounts b
            WHERE b.issuer = sso_accounts.issuer AND b.subject = sso_accounts.subject
              AND (b.created_at > sso_accounts.created_at
                   OR (b.created_at = sso_accounts.created_at
                       AND b.username > sso_accounts.username)))""",
        "CREATE UNIQUE INDEX sso_accounts_identity ON sso_accounts(issuer, subject)",
    ],
]

_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL
)"""
_TEXT_TYPE = re.compile(r"\bTEXT\b")


def render(statement: str | PerDialect, dialect: str) -> str | None:
    """The statement as ``dialect`` ("sqlite" or "postgresql") runs it; None when it has none."""
    if isinstance(statement, PerDialect):
        return getattr(statement, dialect)
    sql = statement
    for token, spelled in _TOKENS[dialect].items():
        sql = sql.replace(token, spelled)
    if dialect == "postgresql" and sql.lstrip().startswith(("CREATE TABLE", "ALTER TABLE")):
        sql = _TEXT_TYPE.sub('TEXT COLLATE "C"', sql)
    return sql


# --- results ---------------------------------------------------------------------------------
class Row(tuple):
    """A result row, read by position (``row[0]``) or by column name (``row["username"]``)."""

    _index: dict[str, int]

    def __new__(cls, values: Iterable[Any], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


class Result:
    """The rows of one statement, already fetched (``fetchone``, ``fetchall``, iteration), and
    ``rowcount``: rows an UPDATE, DELETE or INSERT changed."""

    def __init__(self, rows: list[Row], rowcount: int):
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    def fetchone(self) -> Row | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Row]:
        rest = self._rows[self._next :]
        self._next = len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


@functools.lru_cache(maxsize=2048)
def _text(sql: str, positional: bool) -> TextClause:
    """``sql`` as a text() construct: each ``?`` outside quotes becomes ``:p1``, ``:p2`` ... (when
    ``positional``), and a colon inside a quoted string or comment is escaped so that text() does
    not take it for a bind."""
    out: list[str] = []
    n = 0
    i = 0
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"":
            end = sql.find(ch, i + 1)
            end = len(sql) if end < 0 else end + 1
            out.append(sql[i:end].replace(":", "\\:"))
            i = end
            continue
        if sql.startswith("--", i) or sql.startswith("$$", i):
            closing = "\n" if ch == "-" else "$$"
            end = sql.find(closing, i + 2)
            end = len(sql) if end < 0 else end + len(closing)
            out.append(sql[i:end].replace(":", "\\:"))
            i = end
            continue
        if ch == "?" and positional:
            n += 1
            out.append(f":p{n}")
        else:
            out.append(ch)
        i += 1
    return text("".join(out))


def _binds(params: Sequence[Any] | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(params, Mapping):
        return dict(params)
    return {f"p{i}": value for i, value in enumerate(params, start=1)}


def _run(conn: Connection, sql: str, params: Sequence[Any] | Mapping[str, Any]):
    # Always through text(), even without values: it escapes what the driver would take for a
    # placeholder (psycopg reads every % in a statement sent with parameters).
    return conn.execute(_text(sql, not isinstance(params, Mapping)), _binds(params))


def _buffer(result) -> Result:
    if not result.returns_rows:
        return Result([], result.rowcount)
    index = {name: i for i, name in enumerate(result.keys())}
    rows = [Row(r, index) for r in result]
    return Result(rows, result.rowcount if result.rowcount is not None else -1)


class Tx:
    """One connection inside a transaction (or a snapshot): ``execute(sql, params)`` with ``?``
    placeholders (or ``:name`` with a mapping) returns a :class:`Result`."""

    def __init__(self, conn: Connection, dialect: str):
        self._conn = conn
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Result:
        return _buffer(_run(self._conn, sql, params))

    def stream(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Iterator[Row]:
        """The rows one batch at a time (a server-side cursor on PostgreSQL), for large reads."""
        conn = self._conn.execution_options(stream_results=True, max_row_buffer=1000)
        result = _run(conn, sql, params)
        try:
            index = {name: i for i, name in enumerate(result.keys())}
            for row in result:
                yield Row(row, index)
        finally:
            result.close()

    def last_issued_id(self, table: str) -> int:
        """The highest id ever inserted into ``table`` (an ``{issued_pk}`` table), even if that
        row is gone: SQLite's sqlite_sequence, PostgreSQL's id_sequence; 0 before the first."""
        row = self.execute(
            f"SELECT seq FROM {_SEQUENCE_TABLE[self.dialect]} WHERE name = ?", (table,)
        ).fetchone()
        return int(row[0]) if row else 0


# --- the database ------------------------------------------------------------------------------
def app_db_target(settings: Settings) -> Path | str:
    """What the ``app_db`` setting names: a PostgreSQL URL as written, else the SQLite file's
    path (``data_dir/app.db`` when empty)."""
    value = str(settings.app_db or "").strip()
    return value if "://" in value else settings.app_db_path


def _url(target: Path | str) -> tuple[URL, str | None]:
    """The SQLAlchemy URL and the PostgreSQL schema (None: the server's search_path)."""
    if isinstance(target, Path) or "://" not in str(target):
        return URL.create("sqlite", database=str(target)), None
    try:
        url = make_url(str(target))
    except ArgumentError:
        raise AppDBError(
            "app_db (SPOTLIGHT_APP_DB) must be a file path or postgresql://user@host:5432/database"
        ) from None
    if url.drivername not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise AppDBError(
            f"app_db (SPOTLIGHT_APP_DB): {url.drivername}:// is not supported; use a file path "
            "(SQLite) or postgresql://user@host:5432/database[?schema=name]"
        )
    schema = url.query.get("schema")
    if isinstance(schema, tuple):
        schema = schema[-1]
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise AppDBError(
            "app_db (SPOTLIGHT_APP_DB): the schema is a lower-case name of letters, digits and _ "
            "(e.g. ?schema=spotlight)"
        )
    return url.set(drivername="postgresql+psycopg").difference_update_query(["schema"]), schema


class AppDB:
    """The app database at ``target``: a SQLite file path, or a ``postgresql://`` URL (with an
    optional ``?schema=name``). The schema is migrated on open.

    Thread-safe and multi-process-safe: connections come from a pool (one per statement or
    transaction), and write transactions are serialised by the database (module docstring).
    """

    def __init__(self, target: Path | str):
        url, self.schema = _url(target)
        self.dialect = "sqlite" if url.drivername == "sqlite" else "postgresql"
        self.path: Path | None = Path(url.database or "") if self.dialect == "sqlite" else None
        # Safe to print or log: the password is masked.
        self.url = url.render_as_string(hide_password=True)
        self._target = url
        self._local = threading.local()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                # Password hashes and the audit log are for the app's eyes only: the file is
                # created owner-only before SQLite opens it (SQLite gives -wal/-shm the same mode).
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
                os.chmod(self.path, 0o600)
        self._engine = self._create_engine()
        self._pid = os.getpid()
        # Close the pool's connections when this object goes (tests make many).
        self._finalizer = weakref.finalize(self, self._engine.dispose)
        try:
            self.migrate()
        except OperationalError as exc:
            self._engine.dispose()
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise AppDBError(
                f"app_db (SPOTLIGHT_APP_DB): cannot open the app database {self.url}: {reason}"
            ) from exc

    # --- connections -------------------------------------------------------------------------
    def _create_engine(self) -> Engine:
        common: dict[str, Any] = {
            # Every connection autocommits; transaction() issues BEGIN itself, so the first
            # statement of a write can be the dialect's write lock.
            "isolation_level": "AUTOCOMMIT",
            "pool_size": POOL_SIZE,
            "max_overflow": MAX_OVERFLOW,
            "pool_timeout": LOCK_TIMEOUT_SECONDS,
            # Error messages name the statement but never its values (hashes, tokens).
            "hide_parameters": True,
        }
        if self.dialect == "sqlite":
            engine = create_engine(
                self._target, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, **common
            )
            event.listen(engine, "connect", _sqlite_on_connect)
            return engine
        engine = create_engine(
            self._target,
            connect_args={"connect_timeout": 10},
            # A replica's pool outlives server restarts and fail-overs.
            pool_pre_ping=True,
            **common,
        )
        schema = self.schema

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection, _record) -> None:
            _pg_on_connect(dbapi_connection, schema)

        return engine

    def _connect(self) -> Connection:
        if os.getpid() != self._pid:
            # A forked child must not share the parent's sockets or file handles.
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        return self._engine.connect()

    def connect(self) -> Connection:
        """A pooled SQLAlchemy connection (autocommit), for tests and tools; close it after use."""
        return self._connect()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction: committed on success, rolled back on error.

        The database's write lock is taken by the first statement (SQLite ``BEGIN IMMEDIATE``,
        PostgreSQL ``pg_advisory_xact_lock``), so everything read inside is still true when the
        transaction writes; other writers wait up to ``LOCK_TIMEOUT_SECONDS``. Not re-entrant: a
        transaction opened inside another on the same thread would wait for itself, so it raises.
        """
        if getattr(self._local, "tx", None) is not None:
            raise RuntimeError("a write transaction is already open on this thread")
        with self._connect() as conn:
            began = False
            try:
                if self.dialect == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    began = True
                else:
                    conn.exec_driver_sql("BEGIN ISOLATION LEVEL READ COMMITTED")
                    began = True
                    conn.exec_driver_sql(_PG_WRITE_LOCK)
                tx = self._local.tx = Tx(conn, self.dialect)
                yield tx
                conn.exec_driver_sql("COMMIT")
            except BaseException:
                if began:
                    _end(conn, "ROLLBACK")
                raise
            finally:
                self._local.tx = None

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Tx]:
        """A read-only transaction whose statements all see the same snapshot (nothing committed
        meanwhile shows), without blocking or waiting for writers."""
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            yield tx
            return
        with self._connect() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql("BEGIN")  # WAL: the snapshot is taken at the first read
            else:
                conn.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield Tx(conn, self.dialect)
            finally:
                _end(conn, "COMMIT")

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]:
        """Rows of a read-only statement (a consistent snapshot of one statement). Inside this
        thread's write transaction, it reads through that transaction."""
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            return tx.execute(sql, params).fetchall()
        with self._connect() as conn:
            return _buffer(_run(conn, sql, params)).fetchall()

    # --- schema ------------------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply pending migrations (safe when several processes start at once); the version."""
        with self._connect() as conn:
            if inspect(conn).has_table("schema_migrations"):
                done = conn.exec_driver_sql("SELECT MAX(version) FROM schema_migrations").scalar()
                if (done or 0) >= len(MIGRATIONS):
                    return int(done)
        with self.transaction() as tx:
            if self.schema is not None:
                tx.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            tx.execute(_MIGRATIONS_TABLE)
            applied = {int(r[0]) for r in tx.execute("SELECT version FROM schema_migrations")}
            if not applied and self.dialect == "sqlite":
                # Written by the sqlite3 code before schema_migrations: its version was here.
                legacy = int(tx.execute("PRAGMA user_version").fetchone()[0])
                for number in range(1, min(legacy, len(MIGRATIONS)) + 1):
                    self._record(tx, number, adopted=True)
                    applied.add(number)
            for number, statements in enumerate(MIGRATIONS, start=1):
                if number in applied:
                    continue
                for statement in statements:
                    sql = render(statement, self.dialect)
                    if sql:
                        tx.execute(sql)
                self._record(tx, number)
                applied.add(number)
        return max(applied)

    @staticmethod
    def _record(tx: Tx, number: int, *, adopted: bool = False) -> None:
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
            (number, "adopted from user_version at " + when if adopted else when),
        )

    def migrations(self) -> list[tuple[int, str]]:
        """Applied migrations as (version, applied_at), oldest first."""
        rows = self.query("SELECT version, applied_at FROM schema_migrations ORDER BY version")
        return [(int(r[0]), str(r[1])) for r in rows]

    def close(self) -> None:
        """Close the pool's idle connections (the object stays usable; new ones open on use)."""
        self._engine.dispose()


def _end(conn: Connection, statement: str) -> None:
    """COMMIT or ROLLBACK; a connection that cannot is discarded rather than reused."""
    try:
        conn.exec_driver_sql(statement)
    except Exception:
        conn.invalidate()


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    # The sqlite3 module must not open transactions on its own: transaction() does.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    # FULL: a committed audit record or lock survives a power cut, at a small write cost.
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _pg_on_connect(dbapi_connection, schema: str | None) -> None:
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    with dbapi_connection.cursor() as cursor:
        if schema is not None:
            cursor.execute(f'SET search_path TO "{schema}"')
        cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'")
        cursor.execute(
            f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_SECONDS}s'"
        )
    dbapi_connection.autocommit = autocommit
