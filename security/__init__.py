"""Access control below the UI: principal, roles & permissions, sessions, TOTP, audit, alerts.

- ``permissions``: roles, pages, actions, the principal and the one ``require`` check.
- ``service``: the facade the app and the CLI call (``Security``), put together from
  ``signin``, ``sso_signin``, ``sessions``, ``second_factor``, ``export_checks`` and
  ``throttles``; ``sso`` maps an identity provider's claims to roles and scope.
- ``users``, ``passwords``, ``totp``, ``crypto``: accounts, bcrypt, TOTP codes, secrets at rest.
- ``audit``, ``alerts``: the hash-chained audit log and the alerts raised from it.
- ``db``: the app database; ``saved_views``, ``operations``, ``cli_commands``, ``demo``: the
  features built on it.

This layer sits below the UI: streamlit may not be imported here (see docs/architecture.md).
"""

from security.permissions import (
    ACTIONS,
    PAGES,
    ROLES,
    AccessDenied,
    CreatorScope,
    Principal,
    require,
)

__all__ = ["ACTIONS", "PAGES", "ROLES", "AccessDenied", "CreatorScope", "Principal", "require"]
