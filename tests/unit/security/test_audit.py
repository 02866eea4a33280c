"""The audit log: hash chain catches update, delete and insert; control characters are encoded;
secrets are refused."""

from __future__ import annotations

import itertools
import json

import pytest

from security.audit import AuditSecretError, canonical, encode_text, record_hash
from security.db import IntegrityError
from tests.unit.security.security_support import make_security, tamper


def log_with_records(tmp_path, n: int = 5):
    sec, clock = make_security(tmp_path)
    for i in range(n):
        sec.audit.record(actor=f"user{i}", action="export", target=f"page{i}", details={"rows": i})
        clock.advance(seconds=1)
    return sec


def test_an_untouched_chain_verifies(tmp_path):
    sec = log_with_records(tmp_path)
    assert sec.audit.verify_chain() == (True, None)
    records = sec.audit.list(newest_first=False)
    assert [r.id for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    assert all(r.ts.tzinfo is not None and r.ts.utcoffset().total_seconds() == 0 for r in records)


def test_the_database_refuses_updates_and_deletes(tmp_path):
    sec = log_with_records(tmp_path)
    refused = ["UPDATE audit SET actor = 'x' WHERE id = 2", "DELETE FROM audit WHERE id = 2"]
    if sec.db.dialect == "postgresql":
        refused.append("TRUNCATE audit")  # skips row triggers; its own trigger refuses it
    for statement in refused:
        with pytest.raises(IntegrityError, match="append-only"), sec.db.transaction() as tx:
            tx.execute(statement)
    assert len(sec.audit.list()) == 5
    assert sec.audit.verify_chain() == (True, None)


def test_an_updated_record_is_found(tmp_path):
    sec = log_with_records(tmp_path)
    tamper(sec).execute("UPDATE audit SET details = '{\"rows\":0}' WHERE id = 3")
    assert sec.audit.verify_chain() == (False, 3)


def _rewrite_actor(sec, record_id: int, key: bytes | None) -> None:
    """Change a record's actor and recompute its own hash, as a tamperer would."""
    conn = tamper(sec)
    rec = dict(conn.execute("SELECT * FROM audit WHERE id = ?", (record_id,)).fetchone())
    fields = {k: rec[k] for k in ("id", "ts", "actor", "action", "target", "client", "outcome")}
    fields["actor"] = "someone-else"
    fields["details"] = json.loads(rec["details"])
    conn.execute(
        "UPDATE audit SET actor = ?, hash = ? WHERE id = ?",
        ("someone-else", record_hash(rec["prev_hash"], fields, key), record_id),
    )


def test_a_record_rehashed_without_the_key_is_found_at_once(tmp_path):
    # Whoever can write the database but not read the audit key cannot forge a record's HMAC.
    sec = log_with_records(tmp_path)
    _rewrite_actor(sec, 3, key=None)
    assert sec.audit.verify_chain() == (False, 3)


def test_a_record_rehashed_with_the_key_breaks_the_next_link(tmp_path):
    sec = log_with_records(tmp_path)
    _rewrite_actor(sec, 3, key=sec.settings.secret("audit_key").encode())
    assert sec.audit.verify_chain() == (False, 4)


def test_a_deleted_record_is_found(tmp_path):
    sec = log_with_records(tmp_path)
    tamper(sec).execute("DELETE FROM audit WHERE id = 3")
    assert sec.audit.verify_chain() == (False, 4)


def test_a_record_inserted_in_the_middle_is_found(tmp_path):
    sec = log_with_records(tmp_path)
    conn = tamper(sec)
    for rid in (5, 4, 3):  # make room at id 3, highest first to keep ids unique
        conn.execute("UPDATE audit SET id = ? WHERE id = ?", (rid + 1, rid))
    prev = conn.execute("SELECT hash FROM audit WHERE id = 2").fetchone()[0]
    forged = {
        "id": 3,
        "ts": "2026-01-05T09:00:02.500000Z",
        "actor": "admin",
        "action": "user.roles",
        "target": "mallory",
        "client": "",
        "outcome": "ok",
        "details": {"after": ["admin"]},
    }
    conn.execute(
        "INSERT INTO audit (id, ts, actor, action, target, client, outcome, details, prev_hash, "
        "hash) VALUES (:id, :ts, :actor, :action, :target, :client, :outcome, :details, "
        ":prev, :hash)",
        {
            **forged,
            "details": canonical(forged["details"]),
            "prev": prev,
            "hash": record_hash(prev, forged),
        },
    )
    # Written without the key (mac = 0) after keyed records: refused where it stands.
    assert sec.audit.verify_chain() == (False, 3)


def test_deleting_the_newest_record_is_found_with_or_without_a_later_append(tmp_path):
    sec = log_with_records(tmp_path)
    tamper(sec).execute("DELETE FROM audit WHERE id = 5")
    assert sec.audit.verify_chain() == (False, 5), "the sequence says record 5 existed"
    sec.audit.record(actor="x", action="export")
    ids = [r.id for r in sec.audit.list(newest_first=False)]
    assert ids == [1, 2, 3, 4, 6], "ids are never reused"
    assert sec.audit.verify_chain() == (False, 6), "the gap before 6 is found"


def test_control_characters_cannot_forge_a_line(tmp_path):
    sec, _ = make_security(tmp_path)
    forged_actor = "eve\n2 2026-01-01T00:00:00.000000Z ok signin.ok actor=admin"
    sec.audit.record(
        actor=forged_actor,
        action="signin.failure",
        target="a\rb\tc\x1b[31m\u2028d\\n",
        details={"note": "x\ny"},
    )
    record = sec.audit.list()[0]
    line = record.line()
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u2028" not in line
    assert record.actor.startswith("eve\\n2 2026")
    assert record.target == "a\\rb\\tc\\x1b[31m\\u2028d\\\\n"
    assert record.details == {"note": "x\\ny"}
    assert sec.audit.verify_chain() == (True, None)


def test_encoding_is_unambiguous():
    assert encode_text("a\nb") != encode_text("a\\nb")
    assert encode_text("plain text, ünïcode ✓") == "plain text, ünïcode ✓"


@pytest.mark.parametrize(
    "details",
    [
        {"password": "hunter2hunter2"},
        {"new_password": "x"},
        {"totp_code": "123456"},
        {"code": "123456"},
        {"session_token": "abc"},
        {"cookie_key": "k"},
        {"nested": {"secret": "s"}},
        {"items": [{"api_key": "k"}]},
        {"note": "$2b$12$abcdefghijklmnopqrstuv"},
    ],
)
def test_secrets_are_refused(tmp_path, details):
    sec, _ = make_security(tmp_path)
    with pytest.raises(AuditSecretError):
        sec.audit.record(actor="a", action="user.add", details=details)
    assert sec.audit.list() == [], "nothing is written when a secret is refused"


def test_filters(tmp_path):
    sec, clock = make_security(tmp_path)
    start = clock()
    sec.audit.record(actor="ann", action="signin.ok")
    clock.advance(minutes=5)
    sec.audit.record(actor="bob", action="signin.failure", outcome="failure")
    clock.advance(minutes=5)
    sec.audit.record(actor="ann", action="export", details={"rows": 10})
    assert [r.action for r in sec.audit.list(actor="ann")] == ["export", "signin.ok"]
    assert {r.action for r in sec.audit.list(action="signin.")} == {"signin.ok", "signin.failure"}
    assert [r.actor for r in sec.audit.list(outcome="failure")] == ["bob"]
    window = sec.audit.list(since=start.replace(minute=4), until=start.replace(minute=9))
    assert [r.actor for r in window] == ["bob"]
    assert sec.audit.list(action="sign%") == []
