"""Access control below the UI: principal, roles & permissions, sessions, TOTP, audit, alerts.

This layer sits below the UI: streamlit may not be imported here (see ARCHITECTURE.md).
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
