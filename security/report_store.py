"""Saved reports of the report builder, with versions and share lists, kept in the app database.

Tables ``reports``, ``report_versions`` and ``report_shares`` (migration 6)
--------------------------------------------------------------------------
A report has an owner (the user who created it), a name, a description and a definition: a JSON
object that is opaque here (the report builder validates it field by field when it loads it, and
a definition that no longer validates is shown with the reason, never raised on the page). Every
save is a new version, numbered 1, 2, 3 ... per report without gaps, with who saved it and when
(UTC); a version is never changed or deleted (triggers refuse UPDATE, DELETE and TRUNCATE on
SQLite and PostgreSQL), so every older version stays viewable.

A report also has a **share list**: the users (by username) and roles it is shared with. It is
not versioned: :meth:`ReportStore.share` replaces the whole list in one transaction, and the
audit log keeps every list ever set.

**A shared report carries no rights.** What is stored is the definition (fields, shelves,
filters), never the author's scope, roles or money rights; whoever opens it runs it as
themselves, through ``data/`` with their own :class:`~security.permissions.Principal` — a
creator sees only their creators' rows, and money fields are shown only with ``see_money``.

Who may do what (the acting principal is every method's first argument)
-----------------------------------------------------------------------
- **read** (``list_shared``, ``get``, ``versions``): any signed-in principal, for the reports
  they may see: their own, those shared with their username or with any of their roles, and
  (admins) everyone's. This is how a role that does not build reports — a creator, a partner, a
  marketer, finance — opens a report shared with it: the page lists ``list_shared`` and opens
  the chosen one with ``get``, read-only, with the reader's own scope. Signed out: ``AccessDenied``
  (reason ``signed_out``). A report someone may not see is reported exactly as a missing or
  deleted one ("not found"), so ids reveal nothing.
- **list** (``list``): the reports page grant; the principal's own reports and those shared with
  them (admins: everyone's), each flagged ``shared`` when it is someone else's shared with them.
- **build** (``save``, ``duplicate``, ``share``, ``delete``): the ``build_reports`` action
  (executive, manager, analyst, admin) where the permission matrix has it, otherwise the reports
  page grant (the same four roles); anyone else is refused with ``AccessDenied`` before
  anything is read. A reader duplicates a report shared with them to change it (the copy is
  theirs, and starts unshared).
- **save a new version**: the owner only (not an admin, not someone it is shared with).
- **share**: the owner, or an admin. **delete**: the owner, or an admin. An admin whose session
  has not yet passed 2FA in this tab may share or delete only their own. A delete is soft: the
  report leaves every list (the owner's, admins' and everyone it was shared with) and ``get``;
  its versions and share rows stay in the database, and its name is free again.
- Share lists: usernames are normalised (trimmed, lower case) and must be accounts that exist
  (disabled accounts count: they may be enabled again); unknown ones are refused, named. Roles
  must be roles of the permission matrix. The owner is left out of their own list (they always
  see it). At most ``MAX_SHARED_USERS`` users.
- What a reader sees of the share list: the owner and admins the whole list; anyone else only
  the entries that reach them (their username, their roles), so a report shared with a creator
  does not show the creator who else has it.
- Names: 1-80 characters (runs of spaces collapse to one), unique per owner among live reports,
  compared ignoring case (NFKC-normalised and case-folded); descriptions up to 500 characters
  (line breaks allowed). Neither may hold control characters or bidi overrides. A definition is
  a dict that serialises to JSON in at most 64 KB. At most ``MAX_REPORTS_PER_OWNER`` live
  reports per owner.

Each save, duplicate, share and delete writes its audit record in the same transaction
(``report.save`` / ``report.duplicate`` / ``report.share`` / ``report.delete``, target
``report:<id>``; details the version and name, or the share lists — never the definition).

Thread- and process-safe: every write runs in one ``AppDB.transaction()`` (writes are serialised
by the database, security/db.py), so concurrent saves of one report get consecutive versions;
reads of several statements run on one snapshot.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from security.audit import AuditLog
from security.clock import Clock, as_utc, from_db, to_db, utcnow
from security.db import AppDB, Row, Tx
from security.permissions import (
    ACTION_ROLES,
    ADMIN,
    ROLES,
    AccessDenied,
    Principal,
    require,
)
from security.users import normalise_username
from security.versioned_documents import (
    MAX_DEFINITION_BYTES,
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    VersionedDocuments,
)
from security.versioned_documents import name_key as name_key  # re-exported: the name check
from security.versioned_documents import whole as _whole

__all__ = [
    "BUILD",
    "MAX_DEFINITION_BYTES",
    "MAX_DESCRIPTION_CHARS",
    "MAX_NAME_CHARS",
    "MAX_REPORTS_PER_OWNER",
    "MAX_SHARED_USERS",
    "PAGE",
    "ReportStore",
    "ReportStoreError",
    "ReportSummary",
    "ReportVersion",
]

PAGE = "reports"
# Building reports (save, duplicate, share, delete): the build_reports action where the
# permission matrix has it (the reports page then opens for every role, to read what is shared
# with them), else the reports page grant itself.
BUILD = "build_reports" if "build_reports" in ACTION_ROLES else PAGE
# Roles that see (and may share or delete) every user's reports.
ADMIN_ROLES: frozenset[str] = frozenset({ADMIN})

MAX_REPORTS_PER_OWNER = 500
MAX_SHARED_USERS = 200

USER = "user"
ROLE = "role"

NOT_FOUND = "That report was not found; it may have been deleted."
NOT_OWNER = "Only its owner can change this report."
NOT_SHARER = "Only its owner or an administrator can share this report."
NOT_DELETER = "Only its owner or an administrator can delete this report."


class ReportStoreError(ValueError):
    """A report that cannot be saved, found, shared or changed; the message is fit to show the
    user."""


# --- values ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportVersion:
    """One saved version of a report. ``latest_version``: the report's newest version number
    (equal to ``version`` when this is the newest). ``shared_with_users`` / ``shared_with_roles``:
    the report's current share list as the reader may see it (sorted). Equal and hashed by
    everything but the definition (a version never changes)."""

    report_id: int
    version: int
    name: str
    description: str
    definition: dict[str, Any] = field(compare=False)
    owner: str
    saved_by: str
    saved_at: datetime
    latest_version: int
    shared_with_users: tuple[str, ...] = ()
    shared_with_roles: tuple[str, ...] = ()

    @property
    def is_latest(self) -> bool:
        return self.version == self.latest_version


@dataclass(frozen=True)
class ReportSummary:
    """A live report as listed: its latest version's name and description, how many versions it
    has, when and by whom the latest was saved, and ``shared``: True when it is someone else's
    report shared with the reader (by username or role)."""

    report_id: int
    name: str
    description: str
    owner: str
    versions: int
    updated_at: datetime
    updated_by: str
    shared: bool = False
    shared_with_users: tuple[str, ...] = ()
    shared_with_roles: tuple[str, ...] = ()


# --- checks ----------------------------------------------------------------------------------
# The name, description and definition checks and the SQL shared with saved segments.
_DOCS = VersionedDocuments(
    "report", ReportStoreError, too_large=" Remove some fields or filter values."
)
clean_name = _DOCS.clean_name
clean_description = _DOCS.clean_description
definition_text = _DOCS.definition_text


def _entries(values: Iterable[str], what: str) -> builtins.list[str]:
    if isinstance(values, str | bytes):
        raise TypeError(f"{what} is a list of names, not a single string")
    entries = []
    for value in values:
        if not isinstance(value, str):
            raise ReportStoreError(f"Share with {what} given by name (text).")
        entries.append(value)
    return entries


def clean_roles(roles: Iterable[str]) -> tuple[str, ...]:
    """The roles (trimmed, lower case, without repeats), sorted; every one a role of the
    permission matrix."""
    cleaned = {value.strip().lower() for value in _entries(roles, "roles") if value.strip()}
    unknown = sorted(cleaned - set(ROLES))
    if unknown:
        raise ReportStoreError(
            f"{_quoted(unknown)} {'is not a role' if len(unknown) == 1 else 'are not roles'}; "
            f"roles: {', '.join(ROLES)}."
        )
    return tuple(sorted(cleaned))


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"“{name}”" for name in names)


def _builder(principal: Principal | None) -> Principal:
    """The principal if they may build reports (save, duplicate, share, delete); AccessDenied
    otherwise."""
    require(principal, BUILD)
    assert principal is not None  # require() lets no signed-out principal through
    return principal


def _lister(principal: Principal | None) -> Principal:
    """The principal if their roles grant the reports page; AccessDenied otherwise."""
    require(principal, PAGE)
    assert principal is not None
    return principal


def _reader(principal: Principal | None) -> Principal:
    """Any signed-in principal (they see only the reports visible to them)."""
    if principal is None:
        raise AccessDenied(PAGE, "signed_out")
    return principal


def _is_admin(principal: Principal) -> bool:
    return bool(principal.known_roles & ADMIN_ROLES)


# --- rows ------------------------------------------------------------------------------------
_LATEST = _DOCS.latest_sql


def _shared_with_clause(who: Principal) -> tuple[str, tuple[Any, ...]]:
    """SQL true for a report (alias ``r``) shared with the principal's username or roles."""
    roles = sorted(who.known_roles)
    condition = "(sh.kind = 'user' AND sh.name = ?)"
    params: tuple[Any, ...] = (who.username,)
    if roles:
        marks = ", ".join("?" * len(roles))
        condition += f" OR (sh.kind = 'role' AND sh.name IN ({marks}))"
        params += tuple(roles)
    return (
        f"EXISTS (SELECT 1 FROM report_shares sh WHERE sh.report_id = r.id AND ({condition}))",
        params,
    )


def _visible_clause(who: Principal, *, everyone: bool) -> tuple[str, tuple[Any, ...]]:
    """SQL (alias ``r``) for the live reports the principal may see: their own and those shared
    with them; with ``everyone`` (admins), all."""
    if everyone:
        return "r.deleted_at IS NULL", ()
    shared, params = _shared_with_clause(who)
    return f"r.deleted_at IS NULL AND (r.owner = ? OR {shared})", (who.username, *params)


def _shares_seen(
    who: Principal, owner: str, shares: builtins.list[tuple[str, str]]
) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """(users, roles, shared-with-the-reader) of a report's share rows, as the reader may see
    them: the owner and admins the whole list, anyone else only the entries that reach them."""
    users = sorted(name for kind, name in shares if kind == USER)
    roles = sorted(name for kind, name in shares if kind == ROLE)
    reaches = who.username in users or bool(who.known_roles & set(roles))
    shared = owner != who.username and reaches
    if owner != who.username and not _is_admin(who):
        users = [name for name in users if name == who.username]
        roles = [name for name in roles if name in who.known_roles]
    return tuple(users), tuple(roles), shared


def _share_rows(tx: Tx, report_id: int) -> builtins.list[tuple[str, str]]:
    rows = tx.execute("SELECT kind, name FROM report_shares WHERE report_id = ?", (report_id,))
    return [(row["kind"], row["name"]) for row in rows]


def _to_version(row: Row, who: Principal, shares: builtins.list[tuple[str, str]]) -> ReportVersion:
    saved_at = from_db(row["saved_at"])
    assert saved_at is not None
    users, roles, _ = _shares_seen(who, row["owner"], shares)
    return ReportVersion(
        report_id=int(row["report_id"]),
        version=int(row["version"]),
        name=row["name"],
        description=row["description"],
        definition=json.loads(row["definition"]),
        owner=row["owner"],
        saved_by=row["saved_by"],
        saved_at=saved_at,
        latest_version=int(row["latest_version"]),
        shared_with_users=users,
        shared_with_roles=roles,
    )


# --- the store ---------------------------------------------------------------------------------
class ReportStore:
    """Saved reports over an :class:`AppDB` (no streamlit; safe across threads and processes).
    See the module docstring for the rules."""

    def __init__(self, db: AppDB, audit: AuditLog, clock: Clock = utcnow):
        self.db = db
        self.audit = audit
        self.clock = clock

    # --- reading -----------------------------------------------------------------------------
    def list(self, principal: Principal | None) -> builtins.list[ReportSummary]:
        """The live reports on the principal's reports page: their own and those shared with
        their username or roles (admins: everyone's), the most recently saved first. Needs the
        reports page grant."""
        who = _lister(principal)
        return self._summaries(who, everyone=_is_admin(who), shared_only=False)

    def list_shared(self, principal: Principal | None) -> builtins.list[ReportSummary]:
        """The live reports of others shared with the principal's username or any of their
        roles, the most recently saved first. Any signed-in principal: this is how a role that
        does not build reports finds the reports shared with it."""
        who = _reader(principal)
        return self._summaries(who, everyone=False, shared_only=True)

    def get(
        self, principal: Principal | None, report_id: int, version: int | None = None
    ) -> ReportVersion:
        """A version of a report the principal may see (the latest when ``version`` is None);
        ReportStoreError "not found" for a report that is missing, deleted or not visible to
        them. Any signed-in principal (see the module docstring)."""
        who = _reader(principal)
        report_id = _whole(report_id, "report_id")
        with self.db.snapshot() as tx:
            report = self._visible(tx, who, report_id)
            row = _DOCS.version_row(tx, report_id, version, report["name"])
            shares = _share_rows(tx, report_id)
        return _to_version(row, who, shares)

    def versions(self, principal: Principal | None, report_id: int) -> builtins.list[ReportVersion]:
        """Every version of a report the principal may see, newest first."""
        who = _reader(principal)
        report_id = _whole(report_id, "report_id")
        with self.db.snapshot() as tx:
            self._visible(tx, who, report_id)
            rows = _DOCS.version_rows(tx, report_id)
            shares = _share_rows(tx, report_id)
            return [_to_version(row, who, shares) for row in rows]

    # --- writing -----------------------------------------------------------------------------
    def save(
        self,
        principal: Principal | None,
        *,
        name: str,
        description: str | None,
        definition: dict[str, Any],
        report_id: int | None = None,
    ) -> ReportVersion:
        """Save a new report (``report_id`` None: version 1, owned by the principal, shared with
        nobody) or a new version of one of the principal's own reports; the version saved."""
        who = _builder(principal)
        name = clean_name(name)
        description = clean_description(description)
        text = definition_text(definition)
        if report_id is not None:
            report_id = _whole(report_id, "report_id")
        now = as_utc(self.clock())
        with self.db.transaction() as tx:
            report_id, row = _DOCS.save(
                tx,
                self.audit,
                who,
                report_id,
                name=name,
                description=description,
                definition=text,
                now=now,
                limit=MAX_REPORTS_PER_OWNER,
                visible=self._visible,
                refusal=NOT_OWNER,
            )
            return _to_version(row, who, _share_rows(tx, report_id))

    def duplicate(self, principal: Principal | None, report_id: int, *, name: str) -> ReportVersion:
        """A new report owned by the principal, from the latest version of one they may see (its
        description and definition, not its share list), called ``name``; its version 1."""
        who = _builder(principal)
        report_id = _whole(report_id, "report_id")
        name = clean_name(name)
        now = as_utc(self.clock())
        with self.db.transaction() as tx:
            copy_id, row = _DOCS.duplicate(
                tx,
                self.audit,
                who,
                report_id,
                name=name,
                now=now,
                limit=MAX_REPORTS_PER_OWNER,
                visible=self._visible,
            )
            return _to_version(row, who, _share_rows(tx, copy_id))

    def share(
        self,
        principal: Principal | None,
        report_id: int,
        *,
        users: Iterable[str] = (),
        roles: Iterable[str] = (),
    ) -> ReportVersion:
        """Set the report's whole share list (replacing the previous one; empty lists: shared
        with nobody). The owner, or an admin. Unknown usernames and roles are refused, named; the
        owner is left out of their own list. The latest version, with the new list."""
        who = _builder(principal)
        report_id = _whole(report_id, "report_id")
        wanted_users = sorted(
            {normalise_username(value) for value in _entries(users, "users") if value.strip()}
        )
        wanted_roles = clean_roles(roles)
        now = as_utc(self.clock())
        with self.db.transaction() as tx:
            report = self._visible(tx, who, report_id)
            owner = report["owner"]
            self._check_may_change(who, owner, NOT_SHARER, "sharing")
            wanted_users = [name for name in wanted_users if name != owner]
            if len(wanted_users) > MAX_SHARED_USERS:
                raise ReportStoreError(
                    f"A report can be shared with at most {MAX_SHARED_USERS} people by name "
                    f"(this list has {len(wanted_users)}); share it with a role instead."
                )
            if wanted_users:
                marks = ", ".join("?" * len(wanted_users))
                known = {
                    row[0]
                    for row in tx.execute(
                        f"SELECT username FROM users WHERE username IN ({marks})",
                        tuple(wanted_users),
                    )
                }
                unknown = [name for name in wanted_users if name not in known]
                if unknown:
                    raise ReportStoreError(
                        f"There {'is no user' if len(unknown) == 1 else 'are no users'} called "
                        f"{_quoted(unknown)}."
                    )
            before = _share_rows(tx, report_id)
            tx.execute("DELETE FROM report_shares WHERE report_id = ?", (report_id,))
            for kind, names in ((USER, wanted_users), (ROLE, wanted_roles)):
                for entry in names:
                    tx.execute(
                        "INSERT INTO report_shares (report_id, kind, name, shared_by, shared_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (report_id, kind, entry, who.username, to_db(now)),
                    )
            self.audit.append(
                tx,
                actor=who.username,
                action="report.share",
                target=f"report:{report_id}",
                details={
                    "name": report["name"],
                    "owner": owner,
                    "users": list(wanted_users),
                    "roles": list(wanted_roles),
                    "previous_users": sorted(name for kind, name in before if kind == USER),
                    "previous_roles": sorted(name for kind, name in before if kind == ROLE),
                },
                now=now,
            )
            row = _DOCS.latest_row(tx, report_id)
            assert row is not None
            return _to_version(row, who, _share_rows(tx, report_id))

    def delete(self, principal: Principal | None, report_id: int) -> None:
        """Delete a report (its owner, or an admin): it leaves every list, including the lists of
        those it was shared with; its versions stay, and its name is free again."""
        who = _builder(principal)
        report_id = _whole(report_id, "report_id")
        now = as_utc(self.clock())
        with self.db.transaction() as tx:
            report = self._visible(tx, who, report_id)
            self._check_may_change(who, report["owner"], NOT_DELETER, "deleting")
            _DOCS.soft_delete(tx, report_id, who, now)
            shares = _share_rows(tx, report_id)
            self.audit.append(
                tx,
                actor=who.username,
                action="report.delete",
                target=f"report:{report_id}",
                details={
                    "name": report["name"],
                    "owner": report["owner"],
                    "versions": _DOCS.latest_version(tx, report_id),
                    "shared_with_users": sorted(name for kind, name in shares if kind == USER),
                    "shared_with_roles": sorted(name for kind, name in shares if kind == ROLE),
                },
                now=now,
            )

    # --- helpers -----------------------------------------------------------------------------
    def _summaries(
        self, who: Principal, *, everyone: bool, shared_only: bool
    ) -> builtins.list[ReportSummary]:
        visible, params = _visible_clause(who, everyone=everyone)
        if shared_only:
            shared, shared_params = _shared_with_clause(who)
            visible = f"r.deleted_at IS NULL AND r.owner <> ? AND {shared}"
            params = (who.username, *shared_params)
        sql = (
            "SELECT r.id, r.owner, v.name, v.description, v.version, v.saved_by, v.saved_at "
            "FROM reports r JOIN report_versions v ON v.report_id = r.id "
            f"WHERE {visible} AND v.version = {_LATEST} ORDER BY v.saved_at DESC, r.id DESC"
        )
        shares_sql = (
            "SELECT sh.report_id, sh.kind, sh.name FROM report_shares sh "
            f"WHERE sh.report_id IN (SELECT r.id FROM reports r WHERE {visible})"
        )
        with self.db.snapshot() as tx:
            rows = tx.execute(sql, params).fetchall()
            share_rows = tx.execute(shares_sql, params).fetchall()
        shares: dict[int, builtins.list[tuple[str, str]]] = {}
        for row in share_rows:
            shares.setdefault(int(row["report_id"]), []).append((row["kind"], row["name"]))
        summaries = []
        for row in rows:
            updated_at = from_db(row["saved_at"])
            assert updated_at is not None
            report_id = int(row["id"])
            users, roles, shared = _shares_seen(who, row["owner"], shares.get(report_id, []))
            summaries.append(
                ReportSummary(
                    report_id=report_id,
                    name=row["name"],
                    description=row["description"],
                    owner=row["owner"],
                    versions=int(row["version"]),
                    updated_at=updated_at,
                    updated_by=row["saved_by"],
                    shared=shared,
                    shared_with_users=users,
                    shared_with_roles=roles,
                )
            )
        return summaries

    def _visible(self, tx: Tx, who: Principal, report_id: int) -> Row:
        """The live report's row (id, owner, name) if the principal may see it; else "not
        found", the same for a report that does not exist, is deleted or is not visible."""
        visible, params = _visible_clause(who, everyone=_is_admin(who))
        row = tx.execute(
            f"SELECT r.id, r.owner, r.name FROM reports r WHERE r.id = ? AND {visible}",
            (report_id, *params),
        ).fetchone()
        if row is None:
            raise ReportStoreError(NOT_FOUND)
        return row

    @staticmethod
    def _check_may_change(who: Principal, owner: str, refusal: str, doing: str) -> None:
        """Sharing and deleting: the owner, or an admin whose session has passed 2FA."""
        _DOCS.check_may_change(who, owner, refusal, doing, ADMIN_ROLES)
