"""security/db.py on SQLite and PostgreSQL: migrations (and databases the sqlite3 code wrote
migrating forward), one writer at a time, gapless audit ids across rollbacks, the ``?`` adapter,
and the ``app_db`` setting."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from security import db as db_module
from security import totp
from security.clock import FakeClock
from security.db import (
    MIGRATIONS,
    AppDB,
    AppDBError,
    IntegrityError,
    app_db_target,
)
from security.saved_views import SavedViews
from security.service import Security
from settings import SettingsError
from tests.unit.security.conftest import drop_schema, pg_url
from tests.unit.security.security_support import (
    CLIENT,
    PASSWORD,
    TEST_ROUNDS,
    add_user,
    make_security,
    make_settings,
)
from tests.unit.security.security_support import (
    app_db_target as db_target,
)

LEGACY = Path(__file__).parent / "legacy"
# The keys make_dumps.py wrote the legacy databases with.
LEGACY_APP_KEY = "k-legacy-key-0123456789-ABCDEFGHIJ-klmnopqrst"
LEGACY_AUDIT_KEY = "u-legacy-key-0123456789-ABCDEFGHIJ-klmnopqrst"
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
POSTGRES_ONLY = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.integration)], indirect=True
)


# --- migrations --------------------------------------------------------------------------------
def test_migrations_run_once_and_are_recorded(tmp_path):
    target = db_target(tmp_path)
    first = AppDB(target)
    assert [v for v, _ in first.migrations()] == list(range(1, len(MIGRATIONS) + 1))
    recorded = first.migrations()
    assert AppDB(target).migrate() == len(MIGRATIONS)
    assert first.migrations() == recorded, "a second open applies nothing"


def test_processes_starting_at_once_migrate_once(tmp_path):
    target = db_target(tmp_path)
    with ThreadPoolExecutor(4) as pool:
        versions = list(pool.map(lambda _: AppDB(target).migrate(), range(4)))
    assert versions == [len(MIGRATIONS)] * 4
    assert len(AppDB(target).migrations()) == len(MIGRATIONS)


def test_migration_8_leaves_one_account_per_provider_identity(tmp_path, monkeypatch):
    target = db_target(tmp_path)
    # A database at version 7, where a changed username claim opened a second account.
    monkeypatch.setattr(db_module, "MIGRATIONS", MIGRATIONS[:7])
    old = AppDB(target)
    assert old.migrate() == 7
    accounts = [
        ("ana@example.com", "iss", "sub-ana", "2026-01-01T00:00:00.000000Z"),
        ("ana.b@example.com", "iss", "sub-ana", "2026-03-01T00:00:00.000000Z"),
        ("bo@example.com", "iss", "sub-bo", "2026-01-01T00:00:00.000000Z"),
        ("bo@other.example", "other-iss", "sub-bo", "2026-01-01T00:00:00.000000Z"),
    ]
    with old.transaction() as tx:
        for name, issuer, subject, created in accounts:
            tx.execute(
                "INSERT INTO users (username, display_name, password_hash, roles, created_at, "
                "updated_at) VALUES (?, ?, '', '[\"analyst\"]', ?, ?)",
                (name, name, created, created),
            )
            tx.execute(
                "INSERT INTO sso_accounts (username, issuer, subject, created_at) "
                "VALUES (?, ?, ?, ?)",
                (name, issuer, subject, created),
            )
    old.close()
    monkeypatch.undo()
    db = AppDB(target)
    assert db.migrate() == len(MIGRATIONS) >= 8
    bound = db.query("SELECT username FROM sso_accounts ORDER BY username")
    assert [r[0] for r in bound] == ["ana.b@example.com", "bo@example.com", "bo@other.example"]
    disabled = db.query("SELECT username FROM users WHERE disabled = 1")
    assert [r[0] for r in disabled] == ["ana@example.com"], "the older duplicate, disabled"
    with pytest.raises(IntegrityError), db.transaction() as tx:
        tx.execute(
            "INSERT INTO sso_accounts (username, issuer, subject, created_at) VALUES (?, ?, ?, ?)",
            ("ana@example.com", "iss", "sub-ana", "2026-04-01T00:00:00.000000Z"),
        )


def _legacy_file(tmp_path: Path, version: int) -> Path:
    """An app database as the sqlite3 code of that version wrote it (legacy/make_dumps.py)."""
    path = tmp_path / "data" / "app.db"
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.executescript((LEGACY / f"app_db_v{version}.sql").read_text())
    conn.close()
    return path


def _legacy_totp_secret(version: int) -> str:
    header = (LEGACY / f"app_db_v{version}.sql").read_text().splitlines()[1]
    match = re.search(r"secret of fin is ([A-Z2-7]+)", header)
    assert match
    return match.group(1)


def _contents(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    contents = {
        t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables
    }
    conn.close()
    return contents


def _open_legacy(tmp_path: Path) -> tuple[Security, FakeClock]:
    clock = FakeClock(datetime(2026, 3, 9, 9, 0, tzinfo=UTC))  # a week after it was written
    settings = make_settings(tmp_path, app_key=LEGACY_APP_KEY, audit_key=LEGACY_AUDIT_KEY)
    return Security(settings, clock=clock, bcrypt_rounds=TEST_ROUNDS), clock


@SQLITE_ONLY
def test_a_new_sqlite_database_has_the_schema_the_sqlite3_code_created(tmp_path):
    legacy = _legacy_file(tmp_path, 3)
    fresh = AppDB(tmp_path / "fresh.db").path
    query = (
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        # Migration 4 on: tables the sqlite3 code never had.
        "WHERE tbl_name NOT IN ('schema_migrations', 'payout_decisions', 'segments', "
        "'segment_versions', 'cluster_models', 'cluster_model_uses', 'reports', "
        "'report_versions', 'report_shares', 'sso_accounts', 'sso_sessions') ORDER BY type, name"
    )
    old, new = (sqlite3.connect(p).execute(query).fetchall() for p in (legacy, fresh))
    assert new == old


@SQLITE_ONLY
def test_a_version_3_database_migrates_forward_with_everything_in_it(tmp_path):
    path = _legacy_file(tmp_path, 3)
    before = _contents(path)
    sec, clock = _open_legacy(tmp_path)
    assert sec.db.path == path
    assert _contents(path) == {
        **before,
        "schema_migrations": sorted(sec.db.migrations()),
        "payout_decisions": [],
        "segments": [],
        "segment_versions": [],
        "cluster_models": [],
        "cluster_model_uses": [],
        "reports": [],
        "report_versions": [],
        "report_shares": [],
        "sso_accounts": [],
        "sso_sessions": [],
    }, "nothing lost or changed; versions 1-3 adopted from user_version"
    migrations = sec.db.migrations()
    assert [v for v, _ in migrations] == list(range(1, len(MIGRATIONS) + 1))
    assert [at.startswith("adopted") for _, at in migrations[:4]] == [True, True, True, False]
    # Accounts, 2FA, sessions, saved views, alerts and the keyed audit chain all still work.
    assert {u.username: sorted(u.roles) for u in sec.users.list()} == {
        "cora": ["creator"],
        "dana": ["analyst"],
        "fin": ["finance"],
    }
    assert sec.users.get("cora").creator_ids == {1, 2}
    assert sec.audit.verify_chain() == (True, None)
    assert sec.authenticate("dana", PASSWORD, CLIENT).ok
    assert sec.authenticate("fin", PASSWORD, CLIENT).ok
    token = sec.create_session("fin", CLIENT)
    assert sec.verify_totp(token, totp.code_at(_legacy_totp_secret(3), clock())).ok
    assert [v.name for v in SavedViews(sec.db).list("dana")] == ["My view"]
    assert [a.message for a in sec.alerts.list()] == ["second sync failed"]
    assert len(sec.sessions("fin")) == 2
    ids = [r.id for r in sec.audit.list(newest_first=False, limit=1000)]
    assert ids == list(range(1, len(ids) + 1)) and ids[14] == 15, "new ids follow on"
    assert sec.audit.verify_chain() == (True, None)
    with pytest.raises(IntegrityError, match="append-only"), sec.db.transaction() as tx:
        tx.execute("DELETE FROM audit WHERE id = 1")


@SQLITE_ONLY
def test_a_version_1_database_gets_the_later_migrations(tmp_path):
    path = _legacy_file(tmp_path, 1)
    before = _contents(path)
    sec, clock = _open_legacy(tmp_path)
    migrations = sec.db.migrations()
    assert [v for v, _ in migrations] == list(range(1, len(MIGRATIONS) + 1))
    assert migrations[0][1].startswith("adopted") and not migrations[1][1].startswith("adopted")
    after = _contents(path)
    for table in ("users", "throttles", "used_totp", "known_clients", "alerts"):
        assert after[table] == before[table], table
    assert [r[:-1] for r in after["audit"]] == before["audit"], "audit rows kept, mac = 0 added"
    assert {r[-1] for r in after["audit"]} == {0}
    # The unkeyed records of version 1 are accepted as a prefix of the now keyed chain.
    assert sec.audit.verify_chain() == (True, None)
    assert sec.authenticate("dana", PASSWORD, CLIENT).ok
    token = sec.create_session("fin", CLIENT)
    assert sec.verify_totp(token, totp.code_at(_legacy_totp_secret(1), clock())).ok
    assert sec.step_up(
        token, PASSWORD, totp.code_at(_legacy_totp_secret(1), clock.advance(seconds=30))
    ).ok
    assert sec.resolve(token).step_up_id is not None, "migration 3's column is in use"
    SavedViews(sec.db).save("dana", "First view", {"preset": "last_7_days"})
    assert sec.audit.verify_chain() == (True, None)
    assert sec.audit.list()[0].id > 15


# --- transactions ------------------------------------------------------------------------------
def _bump(db: AppDB, key: str) -> None:
    """A read-modify-write with a pause between the read and the write."""
    with db.transaction() as tx:
        row = tx.execute(
            "SELECT failures FROM throttles WHERE kind = 'test' AND key = ?", (key,)
        ).fetchone()
        time.sleep(0.002)
        tx.execute(
            "INSERT INTO throttles (kind, key, failures) VALUES ('test', ?, ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET failures = excluded.failures",
            (key, (row[0] if row else 0) + 1),
        )


def test_write_transactions_run_one_at_a_time(tmp_path):
    target = db_target(tmp_path)
    dbs = [AppDB(target) for _ in range(4)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: _bump(dbs[i % 4], "k"), range(80)))
    assert dbs[0].query("SELECT failures FROM throttles WHERE key = 'k'")[0][0] == 80


def test_a_writer_waits_for_the_one_in_progress(tmp_path):
    db = AppDB(db_target(tmp_path))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.transaction() as tx:
            tx.execute("INSERT INTO throttles (kind, key) VALUES ('test', 'first')")
            holding.set()
            release.wait(10)

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(hold)
        assert holding.wait(10)
        second = pool.submit(_bump, db, "second")
        time.sleep(0.3)
        assert not second.done(), "the second writer waits"
        assert db.query("SELECT COUNT(*) FROM throttles")[0][0] == 0, "reads do not wait"
        release.set()
        first.result(10)
        second.result(10)
    assert db.query("SELECT COUNT(*) FROM throttles")[0][0] == 2


@POSTGRES_ONLY
def test_app_databases_in_other_schemas_do_not_wait(tmp_path):
    db = AppDB(db_target(tmp_path))
    other_schema = f"sec_other_{uuid.uuid4().hex[:10]}"
    try:
        other = AppDB(pg_url(other_schema))
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with db.transaction():
                holding.set()
                release.wait(10)

        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(hold)
            assert holding.wait(10)
            pool.submit(_bump, other, "x").result(
                10
            )  # would wait for `first` if it shared the lock
            release.set()
            first.result(10)
        assert other.query("SELECT failures FROM throttles")[0][0] == 1
    finally:
        drop_schema(other_schema)


def test_a_rolled_back_audit_record_leaves_no_gap(tmp_path):
    sec, _ = make_security(tmp_path)
    sec.audit.record(actor="a", action="export")
    with pytest.raises(RuntimeError, match="changed my mind"), sec.db.transaction() as tx:
        assert sec.audit.append(tx, actor="b", action="export") == 2
        raise RuntimeError("changed my mind")
    assert sec.audit.record(actor="c", action="export") == 2, "id 2 was never issued"
    assert sec.audit.verify_chain() == (True, None)


def test_a_nested_write_transaction_is_refused(tmp_path):
    db = AppDB(db_target(tmp_path))
    with db.transaction() as tx:
        tx.execute("INSERT INTO throttles (kind, key) VALUES ('test', 'outer')")
        with pytest.raises(RuntimeError, match="already open"), db.transaction():
            pass
        assert db.query("SELECT key FROM throttles")[0]["key"] == "outer", "reads see the writes"
    assert [r[0] for r in db.query("SELECT key FROM throttles")] == ["outer"]


def test_statements_use_question_marks_and_rows_read_by_name_or_position(tmp_path):
    db = AppDB(db_target(tmp_path))
    with db.transaction() as tx:
        inserted = tx.execute(
            "INSERT INTO alerts (raised_at, kind, severity, message, details) "
            "VALUES (?, 'kind: a?', ?, ?, '{}') RETURNING id, kind",
            ("2026-01-01T00:00:00.000000Z", "info", "it's a '?' : :x"),
        ).fetchone()
        assert inserted["id"] == inserted[0] == 1 and inserted["kind"] == "kind: a?"
        changed = tx.execute("UPDATE alerts SET severity = ? WHERE id > ?", ("warning", 0))
        assert changed.rowcount == 1
    [row] = db.query("SELECT * FROM alerts WHERE message = ?", ("it's a '?' : :x",))
    assert dict(row)["severity"] == row["severity"] == "warning"
    assert db.query("SELECT id FROM alerts WHERE kind LIKE ?", ("kind: %",))[0][0] == 1
    assert db.query("SELECT id FROM alerts WHERE kind LIKE 'kind%'")[0][0] == 1, "a % as written"


# --- the setting -------------------------------------------------------------------------------
@SQLITE_ONLY  # no database is opened: once is enough
def test_the_app_db_setting_names_a_file_or_a_postgresql_url(tmp_path):
    settings = make_settings(tmp_path)
    assert app_db_target(settings.replace(app_db="")) == tmp_path / "data" / "app.db"
    assert app_db_target(settings.replace(app_db=str(tmp_path / "x.db"))) == tmp_path / "x.db"
    url = "postgresql://app:pw@db.internal:5432/spotlight?schema=spotlight"
    assert app_db_target(settings.replace(app_db=url)) == url
    with pytest.raises(AppDBError, match="not supported"):
        AppDB("mysql://app:pw@db.internal/spotlight")
    with pytest.raises(AppDBError, match="schema"):
        AppDB('postgresql://app@db.internal/spotlight?schema=x";DROP')


@POSTGRES_ONLY
def test_the_password_never_shows(tmp_path):
    schema = f"sec_pw_{uuid.uuid4().hex[:10]}"
    url = make_url(pg_url(schema)).set(password="not-shown-pw")
    try:
        # The test server trusts local connections, so the password is not checked.
        db = AppDB(url.render_as_string(hide_password=False))
        assert "not-shown-pw" not in db.url and "***" in db.url
        with pytest.raises(AppDBError, match="cannot open the app database") as failed:
            AppDB(url.set(port=1).render_as_string(hide_password=False))
        assert "not-shown-pw" not in str(failed.value), "the error names the server only"
        assert isinstance(failed.value, SettingsError), "the app and the CLI show it in one line"
    finally:
        drop_schema(schema)


def test_two_processes_over_one_database_see_each_others_writes(tmp_path):
    first, _ = make_security(tmp_path)
    second, _ = make_security(tmp_path)
    add_user(first, "dana")
    assert second.authenticate("dana", PASSWORD, CLIENT).ok
    token = second.create_session("dana", CLIENT)
    assert first.resolve(token).username == "dana"
    assert first.revoke(token) and second.resolve(token) is None
    assert second.audit.verify_chain() == (True, None)
