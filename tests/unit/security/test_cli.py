"""``cli.py users|audit|alerts`` (through typer's CliRunner), accounts, demo accounts, database."""

from __future__ import annotations

import os
import re
import stat
import time

import pytest
from typer.testing import CliRunner

import security.cli_commands as cli_commands
from cli import app
from security.db import MIGRATIONS, AppDB
from security.demo import DEMO_ACCOUNTS, DEMO_PASSWORD, demo_accounts_markdown, ensure_demo_accounts
from security.passwords import DEFAULT_ROUNDS, PasswordPolicyError, check_policy, hash_password
from security.service import Security
from security.users import UserError
from settings import PROJECT_ROOT
from tests.unit.security.security_support import (
    TEST_ROUNDS,
    make_security,
    make_settings,
    rewind_audit_sequence,
    tamper,
)

NEW_PASSWORD = "a perfectly long phrase"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run the CLI against a fresh database; returns (invoke, security-for-inspection)."""
    monkeypatch.setattr(cli_commands, "BCRYPT_ROUNDS", TEST_ROUNDS)
    env = {
        "SPOTLIGHT_DATA_DIR": str(tmp_path / "data"),
        "SPOTLIGHT_KEY_DIR": str(tmp_path / "keys"),
        "SPOTLIGHT_APP_KEY": "k-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
        "SPOTLIGHT_AUDIT_KEY": "u-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SPOTLIGHT_WAREHOUSE_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input)

    def security() -> Security:
        return Security(
            make_settings(
                tmp_path,
                app_key="k-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
                audit_key="u-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
            ),
            bcrypt_rounds=TEST_ROUNDS,
        )

    return invoke, security


def add(invoke, username="dana", *roles_and_flags: str):
    args = roles_and_flags or ("-r", "analyst")
    return invoke("users", "add", username, *args, input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")


def test_users_add_list_and_sign_in(cli):
    invoke, security = cli
    result = add(invoke, "dana", "-r", "analyst,manager", "--name", "Dana Scully")
    assert result.exit_code == 0, result.output
    listing = invoke("users", "list")
    assert re.search(r"dana\s+Dana Scully\s+analyst,manager\s+-\s+-\s+active", listing.output)
    sec = security()
    assert sec.authenticate("dana", NEW_PASSWORD, "c").ok
    assert NEW_PASSWORD not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("users", "add", "eve", "-r", "wizard"), "unknown role"),
        (("users", "set-role", "ghost", "analyst"), "no user named 'ghost'"),
        (("users", "disable", "ghost"), "no user named"),
        (("users", "reset-2fa", "ghost"), "no user named"),
        (("users", "set-scope", "dana", "1,2"), "only to creator or partner"),
        (("users", "set-scope", "dana"), "--clear"),
        (("users", "set-role", "dana", "creator,admin"), "cannot be combined"),
        (
            ("users", "set-scope", "dana", "one"),
            "must be a whole number written with the digits 0-9",
        ),
        (("users", "set-scope", "dana", "１"), "digits 0-9"),
        (("users", "set-scope", "dana", "1; DROP TABLE users"), "digits 0-9"),
    ],
)
def test_bad_input_exits_non_zero_with_a_clear_message(cli, args, message):
    invoke, _ = cli
    assert add(invoke).exit_code == 0
    result = invoke(*args, input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert result.exit_code == 1
    assert message in result.output


def test_weak_password_and_duplicate_user_are_refused(cli):
    invoke, _ = cli
    weak = invoke("users", "add", "eve", "-r", "analyst", input="short\nshort\n")
    assert weak.exit_code == 1 and "too short" in weak.output
    assert add(invoke, "eve").exit_code == 0
    again = add(invoke, "eve")
    assert again.exit_code == 1 and "already exists" in again.output


def test_role_and_scope_changes_are_audited(cli):
    invoke, security = cli
    assert add(invoke, "cora", "-r", "creator", "-c", "1").exit_code == 0
    assert invoke("users", "set-scope", "cora", "1,2").exit_code == 0
    assert invoke("users", "set-role", "cora", "partner").exit_code == 0
    sec = security()
    user = sec.users.get("cora")
    assert user.roles == {"partner"} and user.creator_ids == {1, 2}
    roles_record = sec.audit.list(action="user.roles")[0]
    assert roles_record.actor.startswith("cli")
    assert roles_record.details == {"before": ["creator"], "after": ["partner"]}
    assert sec.audit.list(action="user.scope")[0].details == {"before": [1], "after": [1, 2]}
    cleared = invoke("users", "set-scope", "cora", "--clear")
    assert cleared.exit_code == 0 and "none (sees no rows)" in cleared.output


def test_disable_enable_reset_password_and_2fa(cli):
    invoke, security = cli
    assert add(invoke).exit_code == 0
    token = security().create_session("dana", "c")
    assert invoke("users", "disable", "dana").exit_code == 0
    assert security().resolve(token) is None
    assert not security().authenticate("dana", NEW_PASSWORD, "c").ok
    assert invoke("users", "enable", "dana").exit_code == 0
    assert security().authenticate("dana", NEW_PASSWORD, "c").ok
    changed = invoke(
        "users", "reset-password", "dana", "--password-stdin", input="another long phrase\n"
    )
    assert changed.exit_code == 0, changed.output
    assert security().authenticate("dana", "another long phrase", "c").ok
    assert invoke("users", "reset-2fa", "dana").exit_code == 0
    actions = [r.action for r in security().audit.list(newest_first=False)]
    for expected in ("user.add", "user.disable", "user.enable", "user.password_reset", "2fa.reset"):
        assert expected in actions


def test_audit_verify_and_tail(cli):
    invoke, security = cli
    assert add(invoke).exit_code == 0
    assert invoke("users", "set-role", "dana", "manager").exit_code == 0
    ok = invoke("audit", "verify")
    assert ok.exit_code == 0 and "audit chain ok: 2 record(s)" in ok.output
    tail = invoke("audit", "tail", "-n", "1")
    assert tail.output.count("\n") == 1 and "user.roles" in tail.output

    tamper(security(), "audit_no_update").execute(
        "UPDATE audit SET target = 'mallory' WHERE id = 1"
    )
    broken = invoke("audit", "verify")
    assert broken.exit_code == 1
    assert "broken at record 1" in broken.output


def test_audit_anchor_then_verify_catches_a_rewritten_history(cli, tmp_path):
    invoke, security = cli
    assert add(invoke).exit_code == 0
    anchors = tmp_path / "elsewhere" / "audit-anchors.txt"
    anchors.parent.mkdir()
    first = invoke("audit", "anchor", "--file", str(anchors))
    assert first.exit_code == 0 and " 1 " in first.output
    assert invoke("users", "set-role", "dana", "manager").exit_code == 0
    assert invoke("audit", "anchor", "--file", str(anchors)).exit_code == 0
    assert len(anchors.read_text().splitlines()) == 2
    ok = invoke("audit", "verify", "--anchor", str(anchors))
    assert ok.exit_code == 0 and "2 anchor(s) hold" in ok.output, ok.output
    # Someone with the file and the key replaces the last record and re-chains it: the chain
    # verifies, the anchor does not.
    sec = security()
    tamper(sec, "audit_no_delete").execute("DELETE FROM audit WHERE id = 2")
    rewind_audit_sequence(sec, 1)
    sec.audit.record(actor="cli", action="user.roles", target="dana", details={"after": ["x"]})
    assert invoke("audit", "verify").exit_code == 0
    caught = invoke("audit", "verify", "--anchor", str(anchors))
    assert caught.exit_code == 1 and "anchored record 2" in caught.output


def test_audit_anchor_refuses_the_data_folder(cli, tmp_path):
    invoke, _ = cli
    inside = invoke("audit", "anchor", "--file", str(tmp_path / "data" / "anchors.txt"))
    assert inside.exit_code == 2 and "inside the data folder" in inside.output


def test_users_locks_and_unlock(cli):
    invoke, security = cli
    assert add(invoke).exit_code == 0
    sec = security()
    for attempt in range(6):
        sec.authenticate("dana", "wrong password!", f"client-{attempt}")
    listed = invoke("users", "locks")
    assert "signin_user  dana  user=dana" in listed.output
    assert invoke("users", "unlock", "dana").exit_code == 0
    assert invoke("users", "locks").output.strip() == "nothing is locked"
    again = invoke("users", "unlock", "dana")
    assert again.exit_code == 1 and "no signin_user lock" in again.output
    assert sec.audit.list(action="signin.unlock")[0].actor.startswith("cli")


def test_alerts_commands(cli):
    invoke, _ = cli
    raised = invoke(
        "alerts", "raise", "sync_failed", "nightly sync failed", "--severity", "critical"
    )
    assert raised.exit_code == 0
    alert_id = raised.output.split()[-1]
    assert "nightly sync failed" in invoke("alerts", "list").output
    assert invoke("alerts", "ack", alert_id).exit_code == 0
    assert invoke("alerts", "list").output == ""
    assert invoke("alerts", "ack", "999").exit_code == 1
    assert invoke("alerts", "raise", "x", "y", "--severity", "meh").exit_code == 1


# --- accounts and policy ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "too short"),
        ("dana-is-my-password", "username"),
        ("aaaaaaaaaaaaaa", "too few different"),
        ("password1234", "too common"),
        (" leading space here", "space"),
        ("x" * 73, "too long"),
    ],
)
def test_password_policy_messages(password, message):
    with pytest.raises(PasswordPolicyError, match=message):
        check_policy(password, "dana")


def test_production_bcrypt_cost_is_at_least_12():
    assert DEFAULT_ROUNDS >= 12
    assert cli_commands.DEFAULT_ROUNDS >= 12
    assert hash_password("x" * 12, rounds=4).startswith("$2b$04$")


def test_bad_usernames_are_refused(tmp_path):
    sec, _ = make_security(tmp_path)
    for bad in ("", "a", "has space", "-dash", "x" * 65, "new\nline"):
        with pytest.raises(UserError):
            sec.users.add(bad, NEW_PASSWORD, ["analyst"])


# --- demo accounts ---------------------------------------------------------------------------
def test_demo_accounts_one_per_role_with_the_creator_scoped(tmp_path):
    sec, _ = make_security(tmp_path)
    created = ensure_demo_accounts(sec.settings, sec)["created"]
    assert sorted(created) == sorted(a.username for a in DEMO_ACCOUNTS)
    roles = {u.username: u.roles for u in sec.users.list()}
    assert {r for rs in roles.values() for r in rs} == {a.role for a in DEMO_ACCOUNTS}
    assert sec.users.get("creator").creator_ids == {1, 2}
    assert sec.authenticate("creator", DEMO_PASSWORD, "c").ok
    assert ensure_demo_accounts(sec.settings, sec) == {"created": [], "disabled": []}


def test_demo_accounts_are_disabled_when_a_warehouse_is_configured(tmp_path):
    sec, _ = make_security(tmp_path)
    ensure_demo_accounts(sec.settings, sec)
    token = sec.create_session("admin", "c")
    add_real = sec.users.add("realuser", NEW_PASSWORD, ["analyst"])
    warehouse = Security(
        make_settings(
            tmp_path,
            warehouse_url="postgresql://u@h/db",
            app_key=sec.settings.secret("app_key"),
            audit_key=sec.settings.secret("audit_key"),
        ),
        bcrypt_rounds=TEST_ROUNDS,
    )
    result = ensure_demo_accounts(warehouse.settings, warehouse)
    assert sorted(result["disabled"]) == sorted(a.username for a in DEMO_ACCOUNTS)
    assert warehouse.resolve(token) is None
    assert not warehouse.authenticate("admin", DEMO_PASSWORD, "c").ok
    assert not warehouse.users.get(add_real.username).disabled


def test_readme_lists_the_demo_accounts():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert demo_accounts_markdown() in readme


# --- the database ----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_database_is_wal_owner_only_and_migrations_are_idempotent(tmp_path):
    path = tmp_path / "app.db"
    first = AppDB(path)
    assert AppDB(path).migrate() == len(MIGRATIONS)
    with first.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_users_list_marks_single_sign_on_accounts(cli, tmp_path):
    invoke, _ = cli
    sec = Security(
        make_settings(
            tmp_path,
            app_key="k-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
            audit_key="u-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
            sign_in_methods="sso",
            sso_role_map="sp-analysts=analyst",
        ),
        bcrypt_rounds=TEST_ROUNDS,
    )
    claims = {"iss": "https://idp", "sub": "s1", "email": "ana@example.com", "nonce": "n"}
    claims |= {"groups": ["sp-analysts"], "iat": int(time.time()), "email_verified": True}
    assert sec.sso_sign_in(claims, "c").status == "new"
    listing = invoke("users", "list").output
    assert re.search(
        r"ana@example\.com\s+ana@example\.com\s+analyst\s+-\s+-\s+active \(sso\)", listing
    )
