"""Account administration on behalf of a signed-in admin: every change that grants access or
resets a credential needs a fresh step-up, checked here, and cites it in the audit log.

The Administration page calls this, never ``UserStore`` directly, so an admin tab left open
cannot add an administrator, reset someone's password and 2FA, widen a creator's scope, enable
an account or end sessions without the password and a fresh code (SECURITY.md #18). The CLI
(an operator with shell access to the server) calls ``UserStore`` itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from security.permissions import Principal, require
from security.service import Security
from security.users import User

# The action each change needs; both are step-up actions (security.permissions).
_ROLES = "change_roles"
_ACCOUNTS = "manage_users"


class AccountAdmin:
    """User changes made by ``principal`` from ``client``; AccessDenied (reason
    ``step_up_required`` when only the step-up is missing) before anything changes."""

    def __init__(self, security: Security, principal: Principal | None, client: str = ""):
        self._security = security
        self._users = security.users
        self._principal = principal
        self._client = client

    def _by(self, action: str) -> dict:
        require(self._principal, action)
        assert self._principal is not None  # require() lets no signed-out principal through
        return {
            "actor": self._principal.username,
            "client": self._client,
            "step_up": self._principal.step_up_id,
        }

    def add(
        self,
        username: str,
        password: str,
        roles: Iterable[str],
        *,
        display_name: str | None = None,
        creator_ids: Iterable[int] = (),
    ) -> User:
        """A new account; granting roles needs ``change_roles`` as well as ``manage_users``."""
        self._by(_ROLES)
        return self._users.add(
            username,
            password,
            roles,
            display_name=display_name,
            creator_ids=creator_ids,
            **self._by(_ACCOUNTS),
        )

    def set_roles(self, username: str, roles: Iterable[str]) -> User:
        return self._users.set_roles(username, roles, **self._by(_ROLES))

    def set_creator_scope(self, username: str, creator_ids: Iterable[int]) -> User:
        return self._users.set_creator_scope(username, creator_ids, **self._by(_ACCOUNTS))

    def enable(self, username: str) -> User:
        return self._users.enable(username, **self._by(_ACCOUNTS))

    def disable(self, username: str) -> User:
        return self._users.disable(username, **self._by(_ACCOUNTS))

    def reset_password(self, username: str, new_password: str) -> User:
        return self._users.reset_password(username, new_password, **self._by(_ACCOUNTS))

    def reset_2fa(self, username: str) -> User:
        return self._users.reset_2fa(username, **self._by(_ACCOUNTS))

    def end_sessions(self, username: str) -> int:
        return self._security.revoke_all(username, **self._by(_ACCOUNTS))
