"""The audit log: append-only, hash-chained, UTC, and never holding a secret.

Each record stores ``prev_hash`` (the previous record's hash; 64 zeros for the first) and
``hash`` = HMAC-SHA256 under the audit key (setting ``audit_key``, kept outside the database)
over ``prev_hash`` and a canonical JSON serialisation of its own fields (id included). Changing a
record breaks its hash; deleting or inserting one breaks the next record's ``prev_hash``; ids run
without gaps, so a deleted record is also a missing id. Without the key nobody can write a chain
that verifies, so someone who can write the database file but not read the key cannot delete the
tail and recompute it. Against someone holding both, anchor the head elsewhere: ``cli.py audit
anchor`` appends the head's id and hash to a file outside the data folder (or syslog), and
``cli.py audit verify --anchor FILE`` checks every anchored head is still in the chain.

Records written before the chain was keyed (``mac`` = 0, plain SHA-256) are accepted only as a
prefix: once a keyed record appears, every later one must be keyed too.

Every text field is encoded so that control characters cannot forge a line in any log view:
``\\`` -> ``\\\\``, newline -> ``\\n``, CR -> ``\\r``, tab -> ``\\t``, others -> ``\\xNN`` /
``\\uNNNN``. Details are a flat-ish JSON object whose key names are checked: keys that name a
secret (password, code, token, secret, cookie, key, ...) are refused, and there is no parameter
for one.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from security.clock import Clock, from_db, to_db, utcnow
from security.db import AppDB, Row, Tx

GENESIS_HASH = "0" * 64
MAX_FIELD = 500

# Outcomes used across the app.
OK = "ok"
FAILURE = "failure"
DENIED = "denied"
LOCKED = "locked"

# Event names (``action``); callers may use others, these are the ones security/ writes.
EVENTS = (
    "signin.ok",
    "signin.failure",
    "signin.lock",
    "signin.unlock",
    "signout",
    "session.revoke_all",
    "2fa.enrol_start",
    "2fa.enrol",
    "2fa.ok",
    "2fa.failure",
    "2fa.lock",
    "2fa.reset",
    "stepup",
    "export",
    "user.add",
    "user.disable",
    "user.enable",
    "user.roles",
    "user.scope",
    "user.password_reset",
    "user.display_name",
    "alert.raise",
    "alert.ack",
    "payout.approve",
    "viewer.erase",
    "sync",
    "model.change",
)

_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "token",
        "otp",
        "totp",
        "code",
        "cookie",
        "credential",
        "credentials",
        "authorization",
        "hash",
        "seed",
    }
)
_SECRET_NAMES = frozenset(
    {"key", "api_key", "app_key", "cookie_key", "extract_key", "pseudonym_key", "private_key"}
)
_SECRET_VALUE = re.compile(r"^\$2[aby]\$\d\d\$|-----BEGIN [A-Z ]*PRIVATE KEY-----")


class AuditSecretError(ValueError):
    """Details named or shaped like a secret were refused; the audit log never stores one."""


def encode_text(value: object, limit: int = MAX_FIELD) -> str:
    """The value as text with backslash and every control character escaped, cut to ``limit``."""
    text = str(value)
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif code in (0x2028, 0x2029) or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069:
            # Line/paragraph separators and bidi overrides can also fake a line or reorder text.
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    encoded = "".join(out)
    return encoded if len(encoded) <= limit else encoded[: limit - 1] + "…"


def _is_secret_key(name: str) -> bool:
    lowered = name.lower()
    words = set(re.split(r"[^a-z0-9]+", lowered))
    return lowered in _SECRET_NAMES or bool(words & _SECRET_WORDS)


def clean_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Details with keys checked and strings encoded; AuditSecretError for anything secret."""

    def clean(value: Any, path: str) -> Any:
        if isinstance(value, Mapping):
            result = {}
            for key, inner in value.items():
                key_text = str(key)
                if _is_secret_key(key_text):
                    raise AuditSecretError(
                        f"audit details may not hold {path + key_text!r}: secrets are never logged"
                    )
                result[encode_text(key_text, 100)] = clean(inner, f"{path}{key_text}.")
            return result
        if isinstance(value, (list, tuple, set, frozenset)):
            items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
            return [clean(v, path) for v in items]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str) and _SECRET_VALUE.search(value):
            raise AuditSecretError(f"audit detail {path!r} looks like a password hash or key")
        return encode_text(value)

    return clean(dict(details or {}), "")


def canonical(record: Mapping[str, Any]) -> str:
    """The canonical serialisation hashed into the chain (sorted keys, no spaces, ASCII)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def record_hash(prev_hash: str, fields: Mapping[str, Any], key: bytes | None = None) -> str:
    """HMAC-SHA256 hex under ``key`` of ``prev_hash`` + canonical(fields); plain SHA-256 hex
    without a key (the records written before the chain was keyed)."""
    message = (prev_hash + canonical(fields)).encode()
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


_HASHED_FIELDS = ("id", "ts", "actor", "action", "target", "client", "outcome", "details")


@dataclass(frozen=True)
class AuditRecord:
    id: int
    ts: datetime
    actor: str
    action: str
    target: str
    client: str
    outcome: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def line(self) -> str:
        """One log line; every field is already control-character encoded."""
        details = canonical(self.details) if self.details else ""
        return (
            f"{self.id} {to_db(self.ts)} {self.outcome} {self.action} actor={self.actor} "
            f"target={self.target} client={self.client} {details}".rstrip()
        )


class AuditLog:
    """Appends to and reads the hash-chained audit table of an :class:`AppDB`.

    ``key`` keys the chain (HMAC); without one, records are chained with plain SHA-256 and
    :meth:`verify_chain` cannot tell a recomputed chain from the original.
    """

    def __init__(self, db: AppDB, clock: Clock = utcnow, key: str | bytes | None = None):
        self.db = db
        self.clock = clock
        self._key = key.encode() if isinstance(key, str) else key

    def append(
        self,
        conn: Tx,
        *,
        actor: str,
        action: str,
        target: str = "",
        client: str = "",
        outcome: str = OK,
        details: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> int:
        """Append one record inside the caller's open write transaction; its id.

        Used by other security/ code so that the event and the state change it describes commit
        together (or not at all).
        """
        fields: dict[str, Any] = {
            "ts": to_db(now or self.clock()),
            "actor": encode_text(actor or "-", 200),
            "action": encode_text(action, 100),
            "target": encode_text(target, 300),
            "client": encode_text(client, 300),
            "outcome": encode_text(outcome, 50),
            "details": clean_details(details),
        }
        last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        # The next id: never reused, even after a (tampering) delete (the database remembers the
        # highest id ever inserted; see security/db.py). The write lock makes it ours alone.
        next_id = max(conn.last_issued_id("audit"), last["id"] if last else 0) + 1
        prev_hash = last["hash"] if last else GENESIS_HASH
        fields["id"] = next_id
        digest = record_hash(prev_hash, fields, self._key)
        conn.execute(
            "INSERT INTO audit (id, ts, actor, action, target, client, outcome, details, "
            "prev_hash, hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                next_id,
                fields["ts"],
                fields["actor"],
                fields["action"],
                fields["target"],
                fields["client"],
                fields["outcome"],
                canonical(fields["details"]),
                prev_hash,
                digest,
                int(self._key is not None),
            ),
        )
        return next_id

    def record(
        self,
        *,
        actor: str,
        action: str,
        target: str = "",
        client: str = "",
        outcome: str = OK,
        details: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> int:
        """Append one record in its own transaction; its id. Written before the caller acts on
        it (e.g. before an export file is handed over)."""
        with self.db.transaction() as conn:
            return self.append(
                conn,
                actor=actor,
                action=action,
                target=target,
                client=client,
                outcome=outcome,
                details=details,
                now=now,
            )

    def verify_chain(self) -> tuple[bool, int | None]:
        """(True, None) when every record's hashes hold; else (False, id of the first bad one).

        Besides the hashes, ids must run 1, 2, 3 ... without gaps (the app never deletes and
        never reuses an id), and none may be missing after the highest id the database has
        recorded as issued (SQLite's sqlite_sequence, PostgreSQL's id_sequence); so a deleted
        last record is found too, unless the tamperer also rewinds that record (which the
        anchors of :meth:`verify_anchors` catch). With a key, keyed records are checked with it,
        and an unkeyed record after a keyed one is refused. The records and the highest issued
        id are read in one snapshot, so records appended meanwhile are not taken for a gap.
        """
        with (
            self.db.snapshot() as conn,
            contextlib.closing(conn.stream("SELECT * FROM audit ORDER BY id")) as rows,
        ):
            return self._verify_rows(rows, conn)

    def _verify_rows(self, rows: Iterable[Row], conn: Tx) -> tuple[bool, int | None]:
        prev_hash = GENESIS_HASH
        expected_id = 1
        keyed_seen = False
        for row in rows:
            try:
                details = json.loads(row["details"])
            except ValueError:
                return False, row["id"]
            fields = {name: row[name] for name in _HASHED_FIELDS if name != "details"}
            fields["details"] = details
            keyed = bool(row["mac"])
            if keyed and self._key is None:
                # Without the key a keyed record cannot be checked; say so rather than pass it.
                return False, row["id"]
            if keyed_seen and not keyed:
                return False, row["id"]
            keyed_seen = keyed_seen or keyed
            if (
                row["id"] != expected_id
                or row["prev_hash"] != prev_hash
                or record_hash(prev_hash, fields, self._key if keyed else None) != row["hash"]
            ):
                return False, row["id"]
            prev_hash = row["hash"]
            expected_id += 1
        if conn.last_issued_id("audit") >= expected_id:
            return False, expected_id
        return True, None

    def head(self) -> tuple[int, str]:
        """The newest record's (id, hash); (0, genesis) for an empty log: what an anchor keeps."""
        rows = self.db.query("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
        return (rows[0]["id"], rows[0]["hash"]) if rows else (0, GENESIS_HASH)

    def verify_anchors(self, anchors: list[tuple[int, str]]) -> int | None:
        """The first anchored id whose record is gone or has another hash, or None when every
        anchor still holds (the log may have grown since)."""
        for record_id, digest in anchors:
            if record_id == 0:
                continue
            rows = self.db.query("SELECT hash FROM audit WHERE id = ?", (record_id,))
            if not rows or not hmac.compare_digest(rows[0]["hash"], digest):
                return record_id
        return None

    def list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 500,
        newest_first: bool = True,
    ) -> list[AuditRecord]:
        """Records matching every given filter (``action`` ending in ``.`` or ``*`` matches a
        prefix, e.g. ``signin.``); ``since`` inclusive, ``until`` exclusive."""
        clauses: list[str] = []
        params: list[Any] = []
        if actor:
            clauses.append("actor = ?")
            params.append(actor)
        if action:
            if action.endswith(("*", ".")):
                clauses.append("action LIKE ? ESCAPE '\\'")
                prefix = action.rstrip("*").replace("\\", "\\\\").replace("%", "\\%")
                params.append(prefix.replace("_", "\\_") + "%")
            else:
                clauses.append("action = ?")
                params.append(action)
        if outcome:
            clauses.append("outcome = ?")
            params.append(outcome)
        if since:
            clauses.append("ts >= ?")
            params.append(to_db(since))
        if until:
            clauses.append("ts < ?")
            params.append(to_db(until))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if newest_first else "ASC"
        rows = self.db.query(
            f"SELECT * FROM audit {where} ORDER BY id {order} LIMIT ?", (*params, int(limit))
        )
        return [_to_record(r) for r in rows]

    def count(self, action: str, since: datetime, *, actor: str | None = None) -> int:
        """How many records of ``action`` (optionally by ``actor``) since ``since``."""
        sql = "SELECT COUNT(*) FROM audit WHERE action = ? AND ts >= ?"
        params: list[Any] = [action, to_db(since)]
        if actor is not None:
            sql += " AND actor = ?"
            params.append(actor)
        return int(self.db.query(sql, tuple(params))[0][0])


def _to_record(row: Row) -> AuditRecord:

    ts = from_db(row["ts"])
    assert ts is not None
    return AuditRecord(
        id=row["id"],
        ts=ts,
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        client=row["client"],
        outcome=row["outcome"],
        details=json.loads(row["details"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
