"""Saved audience segments and the registry of fitted cluster models, kept in the app database.

Segments (tables ``segments`` and ``segment_versions``, migration 5)
--------------------------------------------------------------------
A segment has an owner (the user who created it), a name, a description and a definition: a JSON
object that is opaque here (``data/`` validates it when it is loaded, and a definition that no
longer validates is shown with the reason, never raised on the page). Every save is a new
version, numbered 1, 2, 3 ... per segment without gaps, with who saved it and when (UTC); a
version is never changed or deleted (triggers refuse UPDATE, DELETE and TRUNCATE on SQLite and
PostgreSQL), so every older version stays viewable.

Who may do what (the acting :class:`~security.permissions.Principal` is every method's first
argument; anyone whose roles do not grant the ``segments`` page — marketer, analyst, admin — is
refused with ``AccessDenied`` before anything is read):

- **see** (``list``, ``get``, ``versions``, ``duplicate``): marketers their own segments;
  analysts and admins everyone's. A segment someone may not see is reported exactly as a missing
  or deleted one ("not found"), so ids reveal nothing.
- **save a new version**: the owner only — not an analyst or an admin, who duplicate the segment
  instead (the copy is theirs), so nobody's audience changes under them.
- **delete**: the owner, or an admin (an admin whose session has not yet passed 2FA in this tab
  may delete only their own). A delete is soft: the segment leaves every list and ``get``, its
  versions stay in the database, and its name is free again.
- Names: 1-80 characters (runs of spaces collapse to one), unique per owner among live segments,
  compared ignoring case (NFKC-normalised and case-folded: "Lapsed fans" = "LAPSED FANS");
  descriptions up to 500 characters (line breaks allowed). Neither may hold control characters or
  bidi overrides. A definition is a dict that serialises to JSON in at most 64 KB.
- At most ``MAX_SEGMENTS_PER_OWNER`` live segments per owner.

Each save, duplicate and delete writes its audit record in the same transaction
(``segment.save`` / ``segment.duplicate`` / ``segment.delete``, target ``segment:<id>``, details
the version and name — never the definition).

Cluster models (tables ``cluster_models`` and ``cluster_model_uses``)
---------------------------------------------------------------------
Each fit is recorded (``record_model``) as a new version 1, 2, 3 ... with its parameters, the
fingerprint of the data build it was fitted on, its quality figures and its summary (the clusters
described: cluster-level figures only, never viewer keys), by whom and when; never changed.

The model **in use** is the one most recently fitted or chosen: a fit puts the new model in use,
and ``use_model`` puts an older (or newer) version back in use until the next fit or choice. Both
need ``change_models`` (analyst, admin) and are audited (``model.fit``, ``model.use``, target
``model:<version>``; parameters and quality are recorded as compact JSON text, so a parameter
named like a secret word — ``seed`` — is recorded rather than refused by the audit log's key
check). Reading the registry (``models``, ``model_in_use``) takes no principal: the page that
shows it is gated.

Thread- and process-safe: every write runs in one ``AppDB.transaction()`` (writes are serialised
by the database, security/db.py), so concurrent saves of one segment get consecutive versions.
"""

from __future__ import annotations

import builtins
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from security.audit import AuditLog
from security.clock import Clock, as_utc, from_db, to_db, utcnow
from security.db import AppDB, Row, Tx
from security.permissions import ADMIN, ANALYST, Principal, require
from security.versioned_documents import (
    MAX_DEFINITION_BYTES,
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    VersionedDocuments,
    json_object,
)
from security.versioned_documents import name_key as name_key  # re-exported: the name check
from security.versioned_documents import refused_char as _refused_char
from security.versioned_documents import whole as _whole

__all__ = [
    "CHANGE_MODELS",
    "MAX_DEFINITION_BYTES",
    "MAX_DESCRIPTION_CHARS",
    "MAX_NAME_CHARS",
    "MAX_SEGMENTS_PER_OWNER",
    "PAGE",
    "SEE_ALL_ROLES",
    "ClusterModelVersion",
    "SegmentStore",
    "SegmentStoreError",
    "SegmentSummary",
    "SegmentVersion",
]

PAGE = "segments"
CHANGE_MODELS = "change_models"
# Roles that see every user's segments; the others (marketers) see their own.
SEE_ALL_ROLES: frozenset[str] = frozenset({ANALYST, ADMIN})
# Roles that may delete someone else's segment.
DELETE_ANY_ROLES: frozenset[str] = frozenset({ADMIN})

MAX_SEGMENTS_PER_OWNER = 500
MAX_DATA_BUILD_CHARS = 200
# Model parameters and quality figures are a few numbers; the summary describes each cluster.
MAX_MODEL_FIELD_BYTES = {"params": 16 * 1024, "quality": 16 * 1024, "summary": 256 * 1024}
MAX_MODELS_LISTED = 1000

NOT_FOUND = "That segment was not found; it may have been deleted."
NOT_OWNER = "Only its owner can change this segment."
NOT_DELETER = "Only its owner or an administrator can delete this segment."


class SegmentStoreError(ValueError):
    """A segment or model that cannot be saved, found or changed; the message is fit to show the
    user."""


# --- values ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentVersion:
    """One saved version of a segment. ``latest_version``: the segment's newest version number
    (equal to ``version`` when this is the newest). Equal and hashed by everything but the
    definition (a version never changes)."""

    segment_id: int
    version: int
    name: str
    description: str
    definition: dict[str, Any] = field(compare=False)
    owner: str
    saved_by: str
    saved_at: datetime
    latest_version: int

    @property
    def is_latest(self) -> bool:
        return self.version == self.latest_version


@dataclass(frozen=True)
class SegmentSummary:
    """A live segment as listed: its latest version's name and description, how many versions it
    has, and when and by whom the latest was saved."""

    segment_id: int
    name: str
    description: str
    owner: str
    versions: int
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class ClusterModelVersion:
    """A fitted cluster model; ``id`` is its version number (1, 2, 3 ...). ``in_use``: whether
    it is the model in use now (as of the read that returned it)."""

    id: int
    fitted_by: str
    fitted_at: datetime
    params: dict[str, Any] = field(compare=False)
    data_build: str
    quality: dict[str, Any] = field(compare=False)
    summary: dict[str, Any] = field(compare=False)
    in_use: bool = False

    @property
    def version(self) -> int:
        return self.id


# --- checks ----------------------------------------------------------------------------------
# The name, description and definition checks and the SQL shared with saved reports.
_DOCS = VersionedDocuments(
    "segment", SegmentStoreError, too_large=" Remove some conditions or values."
)
clean_name = _DOCS.clean_name
clean_description = _DOCS.clean_description
definition_text = _DOCS.definition_text


def _json_object(value: object, what: str, limit: int) -> str:
    """``value`` (a dict) as compact JSON text of at most ``limit`` UTF-8 bytes."""
    return json_object(value, what, limit, error=SegmentStoreError)


def _finite(value: Any) -> Any:
    """``value`` with every float that is not a finite number (NaN, infinity) as None: a model's
    figure that could not be computed is recorded as null rather than failing the fit."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(inner) for inner in value]
    return value


def _allowed(principal: Principal | None) -> Principal:
    """The principal if their roles grant the segments page; AccessDenied otherwise."""
    require(principal, PAGE)
    assert principal is not None  # require() lets no signed-out principal through
    return principal


def _sees_all(principal: Principal) -> bool:
    return bool(principal.known_roles & SEE_ALL_ROLES)


# --- rows ------------------------------------------------------------------------------------
_LATEST = _DOCS.latest_sql


def _to_version(row: Row) -> SegmentVersion:
    saved_at = from_db(row["saved_at"])
    assert saved_at is not None
    return SegmentVersion(
        segment_id=int(row["segment_id"]),
        version=int(row["version"]),
        name=row["name"],
        description=row["description"],
        definition=json.loads(row["definition"]),
        owner=row["owner"],
        saved_by=row["saved_by"],
        saved_at=saved_at,
        latest_version=int(row["latest_version"]),
    )


_MODEL_SELECT = (
    "SELECT c.id, c.fitted_by, c.fitted_at, c.params, c.data_build, c.quality, c.summary "
    "FROM cluster_models c"
)
_IN_USE = "SELECT model_id FROM cluster_model_uses ORDER BY id DESC LIMIT 1"


def _to_model(row: Row, in_use: int | None) -> ClusterModelVersion:
    fitted_at = from_db(row["fitted_at"])
    assert fitted_at is not None
    return ClusterModelVersion(
        id=int(row["id"]),
        fitted_by=row["fitted_by"],
        fitted_at=fitted_at,
        params=json.loads(row["params"]),
        data_build=row["data_build"],
        quality=json.loads(row["quality"]),
        summary=json.loads(row["summary"]),
        in_use=in_use is not None and int(row["id"]) == in_use,
    )


def _in_use(tx: Tx) -> int | None:
    row = tx.execute(_IN_USE).fetchone()
    return None if row is None else int(row[0])


# --- the store ---------------------------------------------------------------------------------
class SegmentStore:
    """Saved segments and fitted cluster models over an :class:`AppDB` (no streamlit; safe
    across threads and processes). See the module docstring for the rules."""

    def __init__(self, db: AppDB, audit: AuditLog, clock: Clock = utcnow):
        self.db = db
        self.audit = audit
        self.clock = clock

    # --- reading segments --------------------------------------------------------------------
    def list(self, principal: Principal | None) -> builtins.list[SegmentSummary]:
        """The live segments the principal may see (marketers: their own; analysts and admins:
        everyone's), the most recently saved first."""
        who = _allowed(principal)
        sql = (
            "SELECT s.id, s.owner, v.name, v.description, v.version, v.saved_by, v.saved_at "
            "FROM segments s JOIN segment_versions v ON v.segment_id = s.id "
            f"WHERE s.deleted_at IS NULL AND v.version = {_LATEST}"
        )
        params: tuple[Any, ...] = ()
        if not _sees_all(who):
            sql += " AND s.owner = ?"
            params = (who.username,)
        rows = self.db.query(sql + " ORDER BY v.saved_at DESC, s.id DESC", params)
        summaries = []
        for row in rows:
            updated_at = from_db(row["saved_at"])
            assert updated_at is not None
            summaries.append(
                SegmentSummary(
                    segment_id=int(row["id"]),
                    name=row["name"],
                    description=row["description"],
                    owner=row["owner"],
                    versions=int(row["version"]),
                    updated_at=updated_at,
                    updated_by=row["saved_by"],
                )
            )
        return summaries

    def get(
        self, principal: Principal | None, segment_id: int, version: int | None = None
    ) -> SegmentVersion:
        """A version of a segment the principal may see (the latest when ``version`` is None);
        SegmentStoreError "not found" for a segment that is missing, deleted or not theirs."""
        who = _allowed(principal)
        segment_id = _whole(segment_id, "segment_id")
        with self.db.snapshot() as tx:
            segment = self._visible(tx, who, segment_id)
            row = _DOCS.version_row(tx, segment_id, version, segment["name"])
        return _to_version(row)

    def versions(
        self, principal: Principal | None, segment_id: int
    ) -> builtins.list[SegmentVersion]:
        """Every version of a segment the principal may see, newest first."""
        who = _allowed(principal)
        segment_id = _whole(segment_id, "segment_id")
        with self.db.snapshot() as tx:
            self._visible(tx, who, segment_id)
            return [_to_version(row) for row in _DOCS.version_rows(tx, segment_id)]

    # --- writing segments --------------------------------------------------------------------
    def save(
        self,
        principal: Principal | None,
        *,
        name: str,
        description: str | None,
        definition: dict[str, Any],
        segment_id: int | None = None,
    ) -> SegmentVersion:
        """Save a new segment (``segment_id`` None: version 1, owned by the principal) or a new
        version of one of the principal's own segments; the version saved."""
        who = _allowed(principal)
        name = clean_name(name)
        description = clean_description(description)
        text = definition_text(definition)
        if segment_id is not None:
            segment_id = _whole(segment_id, "segment_id")
        now = as_utc(self.clock())
        with self.db.transaction() as tx:
            _, row = _DOCS.save(
                tx,
                self.audit,
                who,
                segment_id,
                name=name,
                description=description,
                definition=text,
                now=now,
                limit=MAX_SEGMENTS_PER_OWNER,
                visible=self._visible,
                refusal=NOT_OWNER,
            )
        return _to_version(row)

    def duplicate(
        self, principal: Principal | None, segment_id: int, *, name: str
    ) -> SegmentVersion:
        """A new segment owned by the principal, from the latest version of one they may see
        (its description and definition), called ``name``; its version 1."""
        who = _allowed(principal)
        segment_id = _whole(segment_id, "segment_id")
        name = clean_name(name)
        now = as_utc(self.clock())
        with self.db.transaction() as tx:
            _, row = _DOCS.duplicate(
                tx,
                self.audit,
                who,
                segment_id,
                name=name,
                now=now,
                limit=MAX_SEGMENTS_PER_OWNER,
                visible=self._visible,
            )
        return _to_version(row)

    def delete(self, principal: Principal | None, segment_id: int) -> None:
        """Delete a segment (its owner, or an admin): it leaves every list, its versions stay,
        and its name is free again."""
        who = _allowed(principal)
        segment_id = _whole(segment_id, "segment_id")
        now = as_utc(self.clock())
        with self.db.transaction() as tx:
            segment = self._visible(tx, who, segment_id)
            _DOCS.check_may_change(who, segment["owner"], NOT_DELETER, "deleting", DELETE_ANY_ROLES)
            _DOCS.soft_delete(tx, segment_id, who, now)
            versions = _DOCS.latest_version(tx, segment_id)
            self.audit.append(
                tx,
                actor=who.username,
                action="segment.delete",
                target=f"segment:{segment_id}",
                details={
                    "name": segment["name"],
                    "owner": segment["owner"],
                    "versions": versions,
                },
                now=now,
            )

    # --- cluster models ----------------------------------------------------------------------
    def record_model(
        self,
        principal: Principal | None,
        *,
        params: dict[str, Any],
        data_build: str,
        quality: dict[str, Any],
        summary: dict[str, Any],
    ) -> ClusterModelVersion:
        """Record a fitted model as the next version and put it in use (``change_models``,
        audited as ``model.fit``). ``params``, ``quality`` and ``summary`` are JSON objects (a
        float that is not a finite number is recorded as null); ``data_build`` the fingerprint
        of the data it was fitted on."""
        now = as_utc(self.clock())
        require(principal, CHANGE_MODELS, now)
        assert principal is not None  # require() lets no signed-out principal through
        texts = {
            "params": _json_object(
                _finite(params), "The model parameters", MAX_MODEL_FIELD_BYTES["params"]
            ),
            "quality": _json_object(
                _finite(quality), "The model quality figures", MAX_MODEL_FIELD_BYTES["quality"]
            ),
            "summary": _json_object(
                _finite(summary), "The model summary", MAX_MODEL_FIELD_BYTES["summary"]
            ),
        }
        build = _data_build(data_build)
        with self.db.transaction() as tx:
            previous = _in_use(tx)
            # The next version, without gaps: the write lock makes it this transaction's alone.
            last = tx.execute("SELECT COALESCE(MAX(id), 0) FROM cluster_models").fetchone()
            model_id = int(last[0]) + 1
            tx.execute(
                "INSERT INTO cluster_models (id, fitted_by, fitted_at, params, data_build, "
                "quality, summary) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    model_id,
                    principal.username,
                    to_db(now),
                    texts["params"],
                    build,
                    texts["quality"],
                    texts["summary"],
                ),
            )
            self._use(tx, model_id, principal, now)
            self.audit.append(
                tx,
                actor=principal.username,
                action="model.fit",
                target=f"model:{model_id}",
                details={
                    "version": model_id,
                    "data_build": build,
                    "params": texts["params"],
                    "quality": texts["quality"],
                    "previous": previous,
                },
                now=now,
            )
            row = tx.execute(f"{_MODEL_SELECT} WHERE c.id = ?", (model_id,)).fetchone()
        assert row is not None
        return _to_model(row, model_id)

    def use_model(self, principal: Principal | None, model_id: int) -> ClusterModelVersion:
        """Put a recorded model version in use (``change_models``, audited as ``model.use``);
        the model. Choosing the one already in use changes nothing."""
        now = as_utc(self.clock())
        require(principal, CHANGE_MODELS, now)
        assert principal is not None  # require() lets no signed-out principal through
        model_id = _whole(model_id, "model_id")
        with self.db.transaction() as tx:
            row = tx.execute(f"{_MODEL_SELECT} WHERE c.id = ?", (model_id,)).fetchone()
            if row is None:
                raise SegmentStoreError(f"There is no model version {model_id}.")
            previous = _in_use(tx)
            if previous != model_id:
                self._use(tx, model_id, principal, now)
                self.audit.append(
                    tx,
                    actor=principal.username,
                    action="model.use",
                    target=f"model:{model_id}",
                    details={"version": model_id, "previous": previous},
                    now=now,
                )
        return _to_model(row, model_id)

    def models(self, limit: int = 20) -> builtins.list[ClusterModelVersion]:
        """The recorded model versions, newest first (at most ``limit``)."""
        limit = max(0, min(_whole(limit, "limit"), MAX_MODELS_LISTED))
        with self.db.snapshot() as tx:
            in_use = _in_use(tx)
            rows = tx.execute(f"{_MODEL_SELECT} ORDER BY c.id DESC LIMIT ?", (limit,)).fetchall()
        return [_to_model(row, in_use) for row in rows]

    def model_in_use(self) -> ClusterModelVersion | None:
        """The model in use: the one most recently fitted or chosen; None before the first fit."""
        with self.db.snapshot() as tx:
            in_use = _in_use(tx)
            if in_use is None:
                return None
            row = tx.execute(f"{_MODEL_SELECT} WHERE c.id = ?", (in_use,)).fetchone()
        assert row is not None  # cluster_model_uses references cluster_models
        return _to_model(row, in_use)

    # --- helpers -----------------------------------------------------------------------------
    def _visible(self, tx: Tx, who: Principal, segment_id: int) -> Row:
        """The live segment's row (id, owner, name) if the principal may see it; else "not
        found", the same for a segment that does not exist, is deleted or is someone else's."""
        row = tx.execute(
            "SELECT id, owner, name FROM segments WHERE id = ? AND deleted_at IS NULL",
            (segment_id,),
        ).fetchone()
        if row is None or (row["owner"] != who.username and not _sees_all(who)):
            raise SegmentStoreError(NOT_FOUND)
        return row

    def _use(self, tx: Tx, model_id: int, who: Principal, now: datetime) -> None:
        tx.execute(
            "INSERT INTO cluster_model_uses (model_id, chosen_by, chosen_at) VALUES (?, ?, ?)",
            (model_id, who.username, to_db(now)),
        )


def _data_build(value: object) -> str:
    if not isinstance(value, str):
        raise SegmentStoreError("The data build is text (a fingerprint of the data fitted on).")
    text = value.strip()
    if not text:
        raise SegmentStoreError("Name the data build the model was fitted on.")
    if len(text) > MAX_DATA_BUILD_CHARS or any(_refused_char(ch) for ch in text):
        raise SegmentStoreError(
            f"The data build is at most {MAX_DATA_BUILD_CHARS} characters, without control "
            "characters."
        )
    return text
