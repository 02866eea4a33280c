"""What saved segments (security/segment_store.py) and saved reports (security/report_store.py)
have in common: owned, named documents whose every save is a new, never-changed version.

Both keep a document table (``segments`` / ``reports``: id, owner, name, name_key, created_at,
deleted_at, deleted_by) and a version table (``segment_versions`` / ``report_versions``: the
document's id, version, name, description, definition, saved_by, saved_at). A
:class:`VersionedDocuments` holds the checks and the SQL for one kind; the kind picks its tables
from a fixed allowlist (``KINDS``), never from input. The stores keep who may do what, the audit
records and their own values.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from numbers import Integral
from typing import TYPE_CHECKING

from security.clock import to_db
from security.db import IntegrityError, Row, Tx
from security.permissions import Principal

if TYPE_CHECKING:
    from security.audit import AuditLog

__all__ = [
    "KINDS",
    "MAX_DEFINITION_BYTES",
    "MAX_DESCRIPTION_CHARS",
    "MAX_NAME_CHARS",
    "VersionedDocuments",
    "json_object",
    "name_key",
    "refused_char",
    "whole",
]

MAX_NAME_CHARS = 80
MAX_DESCRIPTION_CHARS = 500
MAX_DEFINITION_BYTES = 64 * 1024

# Not control characters by category, but they can fake a line break or reorder shown text.
_LINE_AND_BIDI = frozenset(
    "\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
)


@dataclass(frozen=True)
class _Tables:
    documents: str
    versions: str
    id_column: str
    alias: str


# The only tables a VersionedDocuments may name: its SQL is built from these, never from input.
KINDS: dict[str, _Tables] = {
    "segment": _Tables("segments", "segment_versions", "segment_id", "s"),
    "report": _Tables("reports", "report_versions", "report_id", "r"),
}


# --- checks ----------------------------------------------------------------------------------
def refused_char(ch: str, *, line_breaks: bool = False) -> bool:
    """Whether ``ch`` is refused in names and descriptions: a control or surrogate character, or
    a line separator or bidi override (a line break ``\\n`` passes with ``line_breaks``)."""
    if line_breaks and ch == "\n":
        return False
    return unicodedata.category(ch) in ("Cc", "Cs") or ch in _LINE_AND_BIDI


def name_key(name: str) -> str:
    """What names are compared by: NFKC-normalised and case-folded."""
    return unicodedata.normalize("NFKC", name).casefold()


def whole(value: object, what: str) -> int:
    """``value`` as an int; TypeError for anything but a whole number (bool included)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{what} must be a whole number, not {type(value).__name__}")
    return int(value)


def json_object(
    value: object,
    what: str,
    limit: int,
    *,
    error: type[Exception],
    too_large: str = "",
) -> str:
    """``value`` (a dict) as compact JSON text of at most ``limit`` UTF-8 bytes; ``error`` with a
    message fit to show the user otherwise."""
    if not isinstance(value, dict):
        raise error(f"{what} must be a JSON object (a dict), not {type(value).__name__}.")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise error(f"{what} cannot be saved: it holds a value JSON cannot hold ({exc}).") from None
    if size > limit:
        raise error(
            f"{what} is too large to save ({math.ceil(size / 1024):,} KB; at most "
            f"{limit // 1024} KB).{too_large}"
        )
    return text


# --- one kind of document ----------------------------------------------------------------------
class VersionedDocuments:
    """The checks and SQL shared by one kind of versioned document (``kind``: a key of
    ``KINDS``). ``error`` is the store's error class (messages fit to show the user);
    ``too_large`` the hint added when a definition is too large."""

    def __init__(self, kind: str, error: type[Exception], *, too_large: str) -> None:
        tables = KINDS[kind]
        self.noun = kind
        self.error = error
        self.too_large = too_large
        self._documents = tables.documents
        self._versions = tables.versions
        self._id = tables.id_column
        a = tables.alias
        # The document's newest version number, for a row of the document table aliased ``a``.
        self.latest_sql = (
            f"(SELECT MAX(m.version) FROM {self._versions} m WHERE m.{self._id} = {a}.id)"
        )
        # A live document's versions (one parameter: its id), with its owner and latest version.
        self.version_select = (
            f"SELECT {a}.id AS {self._id}, {a}.owner, v.version, v.name, v.description, "
            f"v.definition, v.saved_by, v.saved_at, {self.latest_sql} AS latest_version "
            f"FROM {self._documents} {a} JOIN {self._versions} v ON v.{self._id} = {a}.id "
            f"WHERE {a}.id = ? AND {a}.deleted_at IS NULL"
        )

    # --- checks --------------------------------------------------------------------------------
    def clean_name(self, name: object) -> str:
        """The name with surrounding spaces removed and runs of spaces collapsed: 1-80
        characters, no control characters, line breaks or bidi overrides."""
        noun = self.noun
        if not isinstance(name, str):
            raise self.error(f"A {noun} name is text.")
        if any(refused_char(ch) for ch in name):
            raise self.error(f"A {noun} name cannot contain line breaks or control characters.")
        cleaned = " ".join(name.split())
        if not cleaned:
            raise self.error(f"Give the {noun} a name.")
        if len(cleaned) > MAX_NAME_CHARS:
            raise self.error(
                f"A {noun} name has at most {MAX_NAME_CHARS} characters (this one has "
                f"{len(cleaned)})."
            )
        return cleaned

    def clean_description(self, description: object) -> str:
        """The description with surrounding spaces removed (None: empty): at most 500
        characters; line breaks allowed, no other control characters, no bidi overrides."""
        if description is None:
            return ""
        if not isinstance(description, str):
            raise self.error(f"A {self.noun} description is text.")
        text = description.replace("\r\n", "\n").replace("\r", "\n").strip()
        if any(refused_char(ch, line_breaks=True) for ch in text):
            raise self.error("A description cannot contain control characters.")
        if len(text) > MAX_DESCRIPTION_CHARS:
            raise self.error(
                f"A description has at most {MAX_DESCRIPTION_CHARS} characters (this one has "
                f"{len(text)})."
            )
        return text

    def definition_text(self, definition: object) -> str:
        """The definition (a dict) as the compact JSON text stored, at most 64 KB of UTF-8."""
        return json_object(
            definition,
            f"A {self.noun} definition",
            MAX_DEFINITION_BYTES,
            error=self.error,
            too_large=self.too_large,
        )

    def check_may_change(
        self, who: Principal, owner: str, refusal: str, doing: str, any_roles: frozenset[str]
    ) -> None:
        """Changing someone's document (sharing, deleting): the owner, or a principal with one of
        ``any_roles`` whose session has passed 2FA; ``refusal`` for anyone else."""
        if owner == who.username:
            return
        if not who.known_roles & any_roles:
            raise self.error(refusal)
        if who.mfa_pending:
            raise self.error(
                f"Confirm it is you with your two-factor code before {doing} someone else's "
                f"{self.noun}."
            )

    # --- reading ---------------------------------------------------------------------------------
    def latest_version(self, tx: Tx, doc_id: int) -> int:
        """The document's newest version number (versions run 1, 2, 3 ... without gaps)."""
        row = tx.execute(
            f"SELECT MAX(version) FROM {self._versions} WHERE {self._id} = ?", (doc_id,)
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def latest_row(self, tx: Tx, doc_id: int) -> Row | None:
        """The live document's latest version row (None when it is missing or deleted)."""
        return tx.execute(
            f"{self.version_select} AND v.version = {self.latest_sql}", (doc_id,)
        ).fetchone()

    def version_row(self, tx: Tx, doc_id: int, version: object, name: str) -> Row:
        """A version row of a live document the caller has checked (``name``: its name): the
        latest when ``version`` is None; the error "no version" for a version it does not
        have."""
        if version is None:
            row = self.latest_row(tx, doc_id)
        else:
            wanted = whole(version, "version")
            sql = f"{self.version_select} AND v.version = ?"
            row = tx.execute(sql, (doc_id, wanted)).fetchone()
            if row is None:
                raise self.error(f"“{name}” has no version {wanted}.")
        assert row is not None  # a live document has at least version 1
        return row

    def version_rows(self, tx: Tx, doc_id: int) -> list[Row]:
        """Every version row of a live document, newest first."""
        rows = tx.execute(f"{self.version_select} ORDER BY v.version DESC", (doc_id,))
        return list(rows)

    # --- writing ---------------------------------------------------------------------------------
    def check_name_free(self, tx: Tx, owner: str, name: str, doc_id: int | None) -> None:
        """The error when the owner has another live document called ``name`` (ignoring case)."""
        row = tx.execute(
            f"SELECT id, name FROM {self._documents} "
            "WHERE owner = ? AND name_key = ? AND deleted_at IS NULL",
            (owner, name_key(name)),
        ).fetchone()
        if row is not None and int(row["id"]) != doc_id:
            raise self.error(f"You already have a {self.noun} called “{row['name']}”.")

    def create(self, tx: Tx, who: Principal, name: str, now: datetime, *, limit: int) -> int:
        """Insert a new live document owned by the principal (at most ``limit`` live ones per
        owner); its id."""
        live = tx.execute(
            f"SELECT COUNT(*) FROM {self._documents} WHERE owner = ? AND deleted_at IS NULL",
            (who.username,),
        ).fetchone()[0]
        if int(live) >= limit:
            raise self.error(f"You have {limit} saved {self._documents}; delete one first.")
        self.check_name_free(tx, who.username, name, None)
        try:
            row = tx.execute(
                f"INSERT INTO {self._documents} (owner, name, name_key, created_at) "
                "VALUES (?, ?, ?, ?) RETURNING id",
                (who.username, name, name_key(name), to_db(now)),
            ).fetchone()
        except IntegrityError:
            # The unique index on live names; the write lock makes this unreachable from here.
            raise self.error(f"You already have a {self.noun} called “{name}”.") from None
        assert row is not None
        return int(row[0])

    def next_version(self, tx: Tx, who: Principal, document: Row, name: str, refusal: str) -> int:
        """For a new version of a live document (``document``: its id, owner, name) saved by its
        owner (``refusal`` for anyone else): checks the name is free, renames the document when
        the name changed, and returns the version number to save."""
        doc_id = int(document["id"])
        if document["owner"] != who.username:
            raise self.error(refusal)
        self.check_name_free(tx, who.username, name, doc_id)
        version = self.latest_version(tx, doc_id) + 1
        if document["name"] != name:
            tx.execute(
                f"UPDATE {self._documents} SET name = ?, name_key = ? WHERE id = ?",
                (name, name_key(name), doc_id),
            )
        return version

    def add_version(
        self,
        tx: Tx,
        doc_id: int,
        version: int,
        name: str,
        description: str,
        definition: str,
        who: Principal,
        now: datetime,
    ) -> Row:
        """Insert a version (``definition``: JSON text); its row as ``version_select`` reads it."""
        tx.execute(
            f"INSERT INTO {self._versions} ({self._id}, version, name, description, definition, "
            "saved_by, saved_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (doc_id, version, name, description, definition, who.username, to_db(now)),
        )
        sql = f"{self.version_select} AND v.version = ?"
        row = tx.execute(sql, (doc_id, version)).fetchone()
        assert row is not None
        return row

    def soft_delete(self, tx: Tx, doc_id: int, who: Principal, now: datetime) -> None:
        """Mark a live document deleted (its versions stay; its name is free again)."""
        tx.execute(
            f"UPDATE {self._documents} SET deleted_at = ?, deleted_by = ? "
            "WHERE id = ? AND deleted_at IS NULL",
            (to_db(now), who.username, doc_id),
        )

    # --- saving and duplicating, audited -------------------------------------------------------
    def save(
        self,
        tx: Tx,
        audit: AuditLog,
        who: Principal,
        doc_id: int | None,
        *,
        name: str,
        description: str,
        definition: str,
        now: datetime,
        limit: int,
        visible: Callable[[Tx, Principal, int], Row],
        refusal: str,
    ) -> tuple[int, Row]:
        """In ``tx``: a new document (``doc_id`` None: version 1, owned by the principal) or a new
        version of one the principal owns (``visible``: the store's "may see" check;
        ``refusal`` for a non-owner), audited as ``<noun>.save``. The id and the version row."""
        if doc_id is None:
            doc_id = self.create(tx, who, name, now, limit=limit)
            version = 1
        else:
            document = visible(tx, who, doc_id)
            version = self.next_version(tx, who, document, name, refusal)
        row = self.add_version(tx, doc_id, version, name, description, definition, who, now)
        audit.append(
            tx,
            actor=who.username,
            action=f"{self.noun}.save",
            target=f"{self.noun}:{doc_id}",
            details={"version": version, "name": name},
            now=now,
        )
        return doc_id, row

    def duplicate(
        self,
        tx: Tx,
        audit: AuditLog,
        who: Principal,
        doc_id: int,
        *,
        name: str,
        now: datetime,
        limit: int,
        visible: Callable[[Tx, Principal, int], Row],
    ) -> tuple[int, Row]:
        """In ``tx``: a new document owned by the principal, called ``name``, from the latest
        version of one they may see (its description and definition), audited as
        ``<noun>.duplicate``. The copy's id and its version 1 row."""
        visible(tx, who, doc_id)
        source = self.latest_row(tx, doc_id)
        assert source is not None  # a live document has at least version 1
        copy_id = self.create(tx, who, name, now, limit=limit)
        row = self.add_version(
            tx, copy_id, 1, name, source["description"], source["definition"], who, now
        )
        audit.append(
            tx,
            actor=who.username,
            action=f"{self.noun}.duplicate",
            target=f"{self.noun}:{copy_id}",
            details={
                "version": 1,
                "name": name,
                f"from_{self.noun}": doc_id,
                "from_version": int(source["version"]),
            },
            now=now,
        )
        return copy_id, row
