"""Local accounts: add, disable/enable, roles, creator scope, password and 2FA resets.

Every change is one write transaction together with its audit record. Changes that should end
existing sign-ins (disable, password reset, 2FA reset) revoke the account's sessions in the same
transaction. Permission to make a change (``manage_users`` / ``change_roles``) is the caller's
check; ``actor`` says who made it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from security.audit import AuditLog
from security.clock import Clock, from_db, to_db, utcnow
from security.db import AppDB, Row, Tx
from security.input import InputError, parse_creator_ids
from security.passwords import (
    DEFAULT_ROUNDS,
    MIN_LENGTH,
    check_policy,
    dummy_hash,
    hash_password,
    verify_password,
)
from security.permissions import EXTERNAL_ROLES, validate_roles

# Every column of users, and sso = 1 for an account that signs in through the identity provider.
SELECT_USERS = (
    "SELECT users.*, CASE WHEN EXISTS (SELECT 1 FROM sso_accounts s "
    "WHERE s.username = users.username) THEN 1 ELSE 0 END AS sso FROM users"
)
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{1,63}$")


class UserError(ValueError):
    """An account operation cannot be done (unknown user, duplicate, bad username or scope)."""


@dataclass(frozen=True)
class User:
    """An account as the app and CLI see it; the password hash and TOTP secret stay inside."""

    username: str
    display_name: str
    roles: frozenset[str]
    creator_ids: frozenset[int]
    disabled: bool
    is_demo: bool
    totp_enrolled: bool
    created_at: datetime
    updated_at: datetime
    # Signs in through the identity provider (no password here; roles from its claims).
    sso: bool = False


def normalise_username(username: str) -> str:
    """The canonical form (trimmed, lower case) used as the key everywhere."""
    return str(username or "").strip().lower()


def check_username(username: str) -> str:
    """The normalised username, or UserError saying what is allowed."""
    name = normalise_username(username)
    if not _USERNAME.match(name):
        raise UserError(
            "a username is 2-64 characters: letters, digits and . _ @ + - "
            "(starting with a letter or digit)"
        )
    return name


def _ids(values: Iterable[int | str]) -> frozenset[int]:
    ids: set[int] = set()
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            ids.add(value)
            continue
        try:
            ids.update(parse_creator_ids([str(value)]))
        except InputError as exc:
            raise UserError(str(exc)) from None
    if any(i <= 0 for i in ids):
        raise UserError("creator ids are positive whole numbers")
    return ids


def row_to_user(row: Row) -> User:
    created = from_db(row["created_at"])
    updated = from_db(row["updated_at"])
    assert created is not None and updated is not None
    return User(
        username=row["username"],
        display_name=row["display_name"],
        roles=frozenset(json.loads(row["roles"])),
        creator_ids=frozenset(json.loads(row["creator_ids"])),
        disabled=bool(row["disabled"]),
        is_demo=bool(row["is_demo"]),
        totp_enrolled=bool(row["totp_enrolled"]),
        created_at=created,
        updated_at=updated,
        # Row is a tuple: ``in row`` would search its values, not its column names.
        sso="sso" in row.keys() and bool(row["sso"]),  # noqa: SIM118
    )


def revoke_user_sessions(conn: Tx, username: str, reason: str, now: datetime) -> int:
    """Revoke every live session of the user inside the caller's transaction; how many.

    The account's trusted devices are forgotten too: after a password or 2FA reset, or while
    disabled, no browser keeps the lockout exemption a completed sign-in gave it.
    """
    cursor = conn.execute(
        "UPDATE sessions SET revoked_at = ?, revoke_reason = ? "
        "WHERE username = ? AND revoked_at IS NULL",
        (to_db(now), reason, username),
    )
    conn.execute(
        "UPDATE trusted_devices SET revoked_at = ? WHERE username = ? AND revoked_at IS NULL",
        (to_db(now), username),
    )
    return cursor.rowcount


class UserStore:
    """Accounts in an :class:`AppDB`."""

    def __init__(
        self,
        db: AppDB,
        audit: AuditLog,
        clock: Clock = utcnow,
        bcrypt_rounds: int = DEFAULT_ROUNDS,
    ):
        self.db = db
        self.audit = audit
        self.clock = clock
        self.bcrypt_rounds = bcrypt_rounds
        self._dummy_hash: str | None = None

    # --- reading -----------------------------------------------------------------------------
    def get(self, username: str) -> User | None:
        """The account, or None when there is none with that name."""
        rows = self.db.query(f"{SELECT_USERS} WHERE username = ?", (normalise_username(username),))
        return row_to_user(rows[0]) if rows else None

    def require(self, username: str) -> User:
        """The account, or UserError naming the unknown user."""
        user = self.get(username)
        if user is None:
            raise UserError(f"no user named {normalise_username(username)!r}")
        return user

    def list(self) -> list[User]:
        """Every account, by username."""
        return [row_to_user(r) for r in self.db.query(f"{SELECT_USERS} ORDER BY username")]

    def verify_password(self, username: str, password: str) -> bool:
        """True when the account exists, is enabled and the password matches.

        An unknown or disabled account still costs one bcrypt check, so timing does not tell
        which usernames exist.
        """
        rows = self.db.query(
            "SELECT password_hash, disabled FROM users WHERE username = ?",
            (normalise_username(username),),
        )
        if not rows:
            verify_password(password, self.dummy_hash)
            return False
        matches = verify_password(password, rows[0]["password_hash"])
        return matches and not rows[0]["disabled"]

    @property
    def dummy_hash(self) -> str:
        """A hash at the configured cost for timing-equal checks of unknown users."""
        if self._dummy_hash is None:
            self._dummy_hash = dummy_hash(self.bcrypt_rounds)
        return self._dummy_hash

    # --- changing ----------------------------------------------------------------------------
    def add(
        self,
        username: str,
        password: str,
        roles: Iterable[str],
        *,
        display_name: str | None = None,
        creator_ids: Iterable[int | str] = (),
        actor: str = "system",
        client: str = "",
        is_demo: bool = False,
        min_password_length: int = MIN_LENGTH,
        step_up: int | None = None,
        now: datetime | None = None,
    ) -> User:
        """Create an account (audited ``user.add``); UserError / RoleError /
        PasswordPolicyError with a message an operator can act on."""
        name = check_username(username)
        role_set = validate_roles(roles)
        ids = _ids(creator_ids)
        if ids and not role_set & EXTERNAL_ROLES:
            raise UserError("a creator scope applies only to creator or partner accounts")
        check_policy(password, name, min_length=min_password_length)
        shown = (display_name or name).strip()[:100] or name
        password_hash = hash_password(password, self.bcrypt_rounds)
        now = now or self.clock()
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM users WHERE username = ?", (name,)).fetchone():
                raise UserError(f"a user named {name!r} already exists")
            conn.execute(
                "INSERT INTO users (username, display_name, password_hash, roles, creator_ids, "
                "is_demo, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    shown,
                    password_hash,
                    json.dumps(sorted(role_set)),
                    json.dumps(sorted(ids)),
                    int(is_demo),
                    to_db(now),
                    to_db(now),
                ),
            )
            self.audit.append(
                conn,
                actor=actor,
                action="user.add",
                target=name,
                client=client,
                details={
                    "roles": sorted(role_set),
                    "creator_ids": sorted(ids),
                    "demo": is_demo,
                    **({"step_up": step_up} if step_up is not None else {}),
                },
                now=now,
            )
        return self.require(name)

    def _update(
        self,
        username: str,
        sql_set: str,
        params: tuple,
        *,
        action: str,
        actor: str,
        client: str,
        details: dict,
        now: datetime | None,
        revoke_reason: str | None = None,
        step_up: int | None = None,
    ) -> User:
        name = normalise_username(username)
        if step_up is not None:
            details = {**details, "step_up": step_up}
        now = now or self.clock()
        with self.db.transaction() as conn:
            if not conn.execute("SELECT 1 FROM users WHERE username = ?", (name,)).fetchone():
                raise UserError(f"no user named {name!r}")
            conn.execute(
                f"UPDATE users SET {sql_set}, updated_at = ? WHERE username = ?",
                (*params, to_db(now), name),
            )
            if revoke_reason:
                details = {
                    **details,
                    "sessions_revoked": revoke_user_sessions(conn, name, revoke_reason, now),
                }
            self.audit.append(
                conn,
                actor=actor,
                action=action,
                target=name,
                client=client,
                details=details,
                now=now,
            )
        return self.require(name)

    def disable(
        self,
        username: str,
        *,
        actor: str = "system",
        client: str = "",
        step_up: int | None = None,
        now: datetime | None = None,
    ) -> User:
        """Disable the account and end its sessions everywhere (audited ``user.disable``)."""
        return self._update(
            username,
            "disabled = 1",
            (),
            action="user.disable",
            actor=actor,
            client=client,
            details={},
            now=now,
            revoke_reason="disabled",
            step_up=step_up,
        )

    def enable(
        self,
        username: str,
        *,
        actor: str = "system",
        client: str = "",
        step_up: int | None = None,
        now: datetime | None = None,
    ) -> User:
        """Enable a disabled account (audited ``user.enable``)."""
        return self._update(
            username,
            "disabled = 0",
            (),
            action="user.enable",
            actor=actor,
            client=client,
            details={},
            now=now,
            step_up=step_up,
        )

    def set_roles(
        self,
        username: str,
        roles: Iterable[str],
        *,
        actor: str = "system",
        client: str = "",
        step_up: int | None = None,
        now: datetime | None = None,
    ) -> User:
        """Replace the account's roles (audited ``user.roles`` with before and after). Takes
        effect on the account's next page run: sessions resolve roles from here every time."""
        role_set = validate_roles(roles)
        before = self.require(username)
        if before.creator_ids and not role_set & EXTERNAL_ROLES:
            raise UserError(
                "this account has a creator scope; clear it (set-scope with no ids) before "
                "giving it internal roles"
            )
        return self._update(
            username,
            "roles = ?",
            (json.dumps(sorted(role_set)),),
            action="user.roles",
            actor=actor,
            client=client,
            details={"before": sorted(before.roles), "after": sorted(role_set)},
            now=now,
            step_up=step_up,
        )

    def set_creator_scope(
        self,
        username: str,
        creator_ids: Iterable[int | str],
        *,
        actor: str = "system",
        client: str = "",
        step_up: int | None = None,
        now: datetime | None = None,
    ) -> User:
        """Set which creators' rows a creator/partner account sees (empty: none at all)."""
        ids = _ids(creator_ids)
        before = self.require(username)
        if ids and not before.roles & EXTERNAL_ROLES:
            raise UserError("a creator scope applies only to creator or partner accounts")
        return self._update(
            username,
            "creator_ids = ?",
            (json.dumps(sorted(ids)),),
            action="user.scope",
            actor=actor,
            client=client,
            details={"before": sorted(before.creator_ids), "after": sorted(ids)},
            now=now,
            step_up=step_up,
        )

    def set_display_name(
        self,
        username: str,
        display_name: str,
        *,
        actor: str = "system",
        client: str = "",
        now: datetime | None = None,
    ) -> User:
        """Change the name shown in the app (audited ``user.display_name``)."""
        shown = str(display_name).strip()[:100]
        if not shown:
            raise UserError("a display name is required")
        return self._update(
            username,
            "display_name = ?",
            (shown,),
            action="user.display_name",
            actor=actor,
            client=client,
            details={"display_name": shown},
            now=now,
        )

    def reset_password(
        self,
        username: str,
        new_password: str,
        *,
        actor: str = "system",
        client: str = "",
        min_password_length: int = MIN_LENGTH,
        step_up: int | None = None,
        now: datetime | None = None,
    ) -> User:
        """Set a new password (policy checked) and end the account's sessions everywhere."""
        user = self.require(username)
        if user.sso:
            raise UserError(
                f"{user.username} signs in through the identity provider and has no password "
                "here; change it at the provider"
            )
        name = user.username
        check_policy(new_password, name, min_length=min_password_length)
        password_hash = hash_password(new_password, self.bcrypt_rounds)
        return self._update(
            name,
            "password_hash = ?",
            (password_hash,),
            action="user.password_reset",
            actor=actor,
            client=client,
            details={},
            now=now,
            revoke_reason="password reset",
            step_up=step_up,
        )

    def reset_2fa(
        self,
        username: str,
        *,
        actor: str = "system",
        client: str = "",
        step_up: int | None = None,
        now: datetime | None = None,
    ) -> User:
        """Forget the TOTP secret so the next sign-in enrols again; sessions end everywhere."""
        return self._update(
            username,
            "totp_secret_enc = NULL, totp_enrolled = 0",
            (),
            action="2fa.reset",
            actor=actor,
            client=client,
            details={},
            now=now,
            revoke_reason="2fa reset",
            step_up=step_up,
        )
