"""Roles, the permission matrix, the signed-in principal and the one ``require`` check.

Least privilege by default: a role, page or action that is not in the tables below is denied.
Every gated page calls :func:`require` at its top, before any query; navigation lists only the
pages :meth:`Principal.can_open` allows, but hiding a page is not the permission check.

Roles
-----
Internal roles (see every creator's rows): admin, executive, manager, analyst, marketer, finance.
External roles (see only the rows of ``Principal.creator_ids``): creator, partner. External
roles cannot be combined with internal ones on one account (:func:`validate_roles`), so a
principal is either wholly internal or wholly scoped — never a mix whose scope is ambiguous.

Pages (``PAGE_ROLES``)
----------------------
============  ===========================================================  =====
page          roles                                                        money
============  ===========================================================  =====
overview      every role (external roles see only their creators' rows)
account       every role (own password and 2FA)
engagement    manager, analyst, admin
compare       executive, manager, analyst, admin
segments      marketer, analyst, admin
forecast      executive, manager, analyst, finance, admin
revenue       executive, finance, admin                                    yes
earnings      creator (own creators), finance, admin (all creators)        yes
reports       every role (build: executive, manager, analyst, admin; the
              others read reports shared with them, with their own scope)
admin         admin
============  ===========================================================  =====

Money pages need the ``see_money`` action as well as the page grant, and (like every page for
a 2FA role) a session whose 2FA is verified.

Actions (``ACTION_ROLES``)
--------------------------
=====================  =========================================================  ========
action                 roles                                                      step-up
=====================  =========================================================  ========
see_money              executive, finance, creator (own), admin
export_csv             executive, manager, analyst, marketer, finance, creator,
                       admin
export_excel           executive, manager, analyst, finance, creator, admin
export_personal_data   admin                                                      yes
manage_users           admin (add, enable/disable, scope, password, 2FA, sessions)  yes
change_roles           admin                                                      yes
read_audit             admin
acknowledge_alerts     admin
run_sync               admin
erase_viewer           admin                                                      yes
approve_payout         finance (separation of duties: not admin)                  yes
change_models          analyst, admin
build_reports          executive, manager, analyst, admin
=====================  =========================================================  ========

2FA (``MFA_ROLES``): admin, executive, finance, creator — every role that sees money or can take
a step-up action. Signing in with a password does not finish until the code is entered. A tab
whose session was restored from the cookie (no password typed in it) has not passed 2FA: it may
open the aggregate dashboards in ``MFA_FREE_PAGES`` (money hidden: ``see_money`` is denied),
but every other page — money, personal data, administration — and every action asks for a
fresh code first (SECURITY.md #5: "a session restored from a cookie still needs 2FA before
money pages").

Export row caps (``EXPORT_ROW_CAPS``, enforced on the server by the export code): admin
1,000,000; analyst and finance 500,000; executive 100,000; manager and marketer 50,000; creator
10,000; partner 0 (no exports).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

# --- roles -----------------------------------------------------------------------------------
ADMIN = "admin"
EXECUTIVE = "executive"
MANAGER = "manager"
ANALYST = "analyst"
MARKETER = "marketer"
FINANCE = "finance"
CREATOR = "creator"
PARTNER = "partner"

ROLES: tuple[str, ...] = (ADMIN, EXECUTIVE, MANAGER, ANALYST, MARKETER, FINANCE, CREATOR, PARTNER)
INTERNAL_ROLES: frozenset[str] = frozenset({ADMIN, EXECUTIVE, MANAGER, ANALYST, MARKETER, FINANCE})
EXTERNAL_ROLES: frozenset[str] = frozenset({CREATOR, PARTNER})

ROLE_LABELS: dict[str, str] = {
    ADMIN: "Administrator",
    EXECUTIVE: "Executive",
    MANAGER: "Content manager",
    ANALYST: "Data analyst",
    MARKETER: "Marketer",
    FINANCE: "Finance",
    CREATOR: "Creator",
    PARTNER: "Partner (external)",
}

# Roles that see money or can take a step-up action; their sessions must pass TOTP.
MFA_ROLES: frozenset[str] = frozenset({ADMIN, EXECUTIVE, FINANCE, CREATOR})
# A sign-in from a client never seen before for one of these roles raises an alert.
PRIVILEGED_ROLES: frozenset[str] = frozenset({ADMIN, EXECUTIVE, FINANCE, CREATOR})

_ALL = frozenset(ROLES)

# --- pages -----------------------------------------------------------------------------------
PAGE_ROLES: dict[str, frozenset[str]] = {
    "overview": _ALL,
    "account": _ALL,
    "engagement": frozenset({MANAGER, ANALYST, ADMIN}),
    "compare": frozenset({EXECUTIVE, MANAGER, ANALYST, ADMIN}),
    "segments": frozenset({MARKETER, ANALYST, ADMIN}),
    "forecast": frozenset({EXECUTIVE, MANAGER, ANALYST, FINANCE, ADMIN}),
    "revenue": frozenset({EXECUTIVE, FINANCE, ADMIN}),
    "earnings": frozenset({CREATOR, FINANCE, ADMIN}),
    # Every role opens Reports to read reports shared with them (with their own scope and money
    # rights); building and saving reports is the build_reports action.
    "reports": _ALL,
    "admin": frozenset({ADMIN}),
}
PAGES: tuple[str, ...] = tuple(PAGE_ROLES)
# Pages whose content is money: they also need the see_money action.
MONEY_PAGES: frozenset[str] = frozenset({"revenue", "earnings"})
# Aggregate, money-free pages a 2FA role may open before 2FA is passed in a tab restored from
# the cookie. An allowlist: a page added later needs 2FA until it is listed here on purpose.
MFA_FREE_PAGES: frozenset[str] = frozenset(
    {"overview", "account", "engagement", "compare", "segments", "forecast", "reports"}
)

# --- actions ---------------------------------------------------------------------------------
ACTION_ROLES: dict[str, frozenset[str]] = {
    "see_money": frozenset({EXECUTIVE, FINANCE, CREATOR, ADMIN}),
    "export_csv": frozenset({EXECUTIVE, MANAGER, ANALYST, MARKETER, FINANCE, CREATOR, ADMIN}),
    "export_excel": frozenset({EXECUTIVE, MANAGER, ANALYST, FINANCE, CREATOR, ADMIN}),
    "export_personal_data": frozenset({ADMIN}),
    "manage_users": frozenset({ADMIN}),
    "change_roles": frozenset({ADMIN}),
    "read_audit": frozenset({ADMIN}),
    "acknowledge_alerts": frozenset({ADMIN}),
    "run_sync": frozenset({ADMIN}),
    "erase_viewer": frozenset({ADMIN}),
    "approve_payout": frozenset({FINANCE}),
    "change_models": frozenset({ANALYST, ADMIN}),
    "build_reports": frozenset({EXECUTIVE, MANAGER, ANALYST, ADMIN}),
}
ACTIONS: tuple[str, ...] = tuple(ACTION_ROLES)
# Actions that need a fresh password + code (see security.totp step-up), valid a few minutes.
STEP_UP_ACTIONS: frozenset[str] = frozenset(
    {"approve_payout", "export_personal_data", "manage_users", "change_roles", "erase_viewer"}
)

EXPORT_ROW_CAPS: dict[str, int] = {
    ADMIN: 1_000_000,
    EXECUTIVE: 100_000,
    MANAGER: 50_000,
    ANALYST: 500_000,
    MARKETER: 50_000,
    FINANCE: 500_000,
    CREATOR: 10_000,
    PARTNER: 0,
}


class AccessDenied(PermissionError):
    """The principal may not open this page or take this action.

    ``reason`` is one of ``signed_out``, ``not_permitted``, ``mfa_required``,
    ``step_up_required``; the UI can show a no-access page, the 2FA form or the step-up form.
    """

    def __init__(self, target: str, reason: str, username: str | None = None):
        self.target = target
        self.reason = reason
        self.username = username
        super().__init__(f"access to {target!r} denied: {reason}")


class RoleError(ValueError):
    """A role list cannot be assigned (unknown role, empty, or internal mixed with external)."""


def validate_roles(roles: Iterable[str]) -> frozenset[str]:
    """The roles as a frozenset, or RoleError with a message an operator can act on."""
    clean = frozenset(str(r).strip().lower() for r in roles if str(r).strip())
    if not clean:
        raise RoleError("at least one role is required; roles: " + ", ".join(ROLES))
    unknown = sorted(clean - _ALL)
    if unknown:
        raise RoleError(f"unknown role(s) {', '.join(unknown)}; roles: {', '.join(ROLES)}")
    if clean & EXTERNAL_ROLES and clean & INTERNAL_ROLES:
        raise RoleError(
            "external roles (creator, partner) cannot be combined with internal roles; "
            "use a separate account"
        )
    return clean


@dataclass(frozen=True)
class CreatorScope:
    """Which creators' rows a principal may see.

    ``all_creators`` True: every row (internal roles). Otherwise only rows whose creator_id is in
    ``creator_ids``; an empty set means no rows at all — never every row.
    """

    all_creators: bool
    creator_ids: frozenset[int] = frozenset()

    @property
    def key(self) -> str:
        """A stable string for cache keys: ``all`` or ``creators:1,2`` (``creators:`` = none)."""
        if self.all_creators:
            return "all"
        return "creators:" + ",".join(str(i) for i in sorted(self.creator_ids))

    def allows(self, creator_id: int | None) -> bool:
        """True when a row of this creator may be shown."""
        return self.all_creators or (creator_id is not None and creator_id in self.creator_ids)


NO_ROWS = CreatorScope(all_creators=False, creator_ids=frozenset())


@dataclass(frozen=True)
class Principal:
    """Who is signed in, resolved from the server-side session on every run.

    ``session_id`` is the session's public id (never the token). ``step_up_until`` is when the
    last step-up re-authentication stops counting (None: none); ``step_up_id`` is its audit
    record, cited by every change it permits. ``resolved_at`` is the (possibly
    injected) time the session was resolved; checks without an explicit ``now`` use it, so a test
    clock governs step-up expiry too.
    """

    username: str
    display_name: str
    roles: frozenset[str]
    creator_ids: frozenset[int] = frozenset()
    mfa_verified: bool = False
    session_id: str = ""
    step_up_until: datetime | None = field(default=None, compare=False)
    step_up_id: int | None = field(default=None, compare=False)
    resolved_at: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Accept any iterable but store frozensets so the principal stays hashable.
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "creator_ids", frozenset(int(i) for i in self.creator_ids))

    @property
    def known_roles(self) -> frozenset[str]:
        """Roles that are in the matrix; an unknown role string grants nothing."""
        return self.roles & _ALL

    @property
    def is_external(self) -> bool:
        """True when any role is external: then rows are limited to ``creator_ids``."""
        return bool(self.roles & EXTERNAL_ROLES) or not (self.roles & INTERNAL_ROLES)

    @property
    def scope(self) -> CreatorScope:
        """Row scope for data/: all creators for internal principals, else only creator_ids."""
        if self.is_external:
            return CreatorScope(all_creators=False, creator_ids=self.creator_ids)
        return CreatorScope(all_creators=True)

    @property
    def scope_key(self) -> str:
        """Stable, hashable cache-key part; two principals with equal keys see the same rows."""
        return self.scope.key

    @property
    def needs_mfa(self) -> bool:
        """True when a role of this principal requires TOTP."""
        return bool(self.roles & MFA_ROLES)

    @property
    def mfa_pending(self) -> bool:
        """True when 2FA is required and this session has not passed it yet."""
        return self.needs_mfa and not self.mfa_verified

    def _granted(self, table: dict[str, frozenset[str]], name: str) -> bool:
        return bool(self.known_roles & table.get(name, frozenset()))

    def can_open(self, page: str) -> bool:
        """True when this principal may open the page now (role grant and 2FA state)."""
        return _denial(self, page, None) is None

    def can(self, action: str, now: datetime | None = None) -> bool:
        """True when this principal may take the action now.

        Step-up actions count as allowed only with a step-up still valid at ``now`` (when
        omitted: ``resolved_at``, else the current time); use :meth:`may` to ask whether the
        role allows it at all.
        """
        return _denial(self, action, now) is None

    def may(self, action: str) -> bool:
        """True when a role grants the action, ignoring 2FA and step-up state (for showing a
        button that then asks for step-up)."""
        return self._granted(ACTION_ROLES, action)

    def needs_step_up(self, action: str) -> bool:
        """True when the action requires a fresh step-up re-authentication."""
        return action in STEP_UP_ACTIONS

    @property
    def export_row_cap(self) -> int:
        """Most rows one export may hold (0: no exports)."""
        if not (self.may("export_csv") or self.may("export_excel")):
            return 0
        return max((EXPORT_ROW_CAPS.get(r, 0) for r in self.known_roles), default=0)

    @property
    def allowed_pages(self) -> tuple[str, ...]:
        """Page ids this principal may open, in matrix order (for navigation)."""
        return tuple(p for p in PAGES if self.can_open(p))


def _denial(principal: Principal | None, target: str, now: datetime | None) -> str | None:
    """The reason the principal may not reach the target, or None when it may."""
    if principal is None:
        return "signed_out"
    if target in PAGE_ROLES:
        if not principal._granted(PAGE_ROLES, target):
            return "not_permitted"
        if target in MONEY_PAGES and not principal._granted(ACTION_ROLES, "see_money"):
            return "not_permitted"
    elif target in ACTION_ROLES:
        if not principal._granted(ACTION_ROLES, target):
            return "not_permitted"
    else:
        return "not_permitted"  # unknown pages and actions are denied
    if principal.mfa_pending and target not in MFA_FREE_PAGES:
        return "mfa_required"
    if target in STEP_UP_ACTIONS:
        now = now or principal.resolved_at or datetime.now(UTC)
        if principal.step_up_until is None or now >= principal.step_up_until:
            return "step_up_required"
    return None


def require(principal: Principal | None, page_or_action: str, now: datetime | None = None) -> None:
    """Return only if the principal may open the page / take the action; else AccessDenied.

    The one check every gated page calls at its top, before any query. A principal of a 2FA
    role whose session has not passed 2FA is denied everything; step-up actions also need a
    step-up still valid at ``now`` (when omitted: the principal's ``resolved_at``, else the
    current time).
    """
    reason = _denial(principal, page_or_action, now)
    if reason is not None:
        raise AccessDenied(
            page_or_action, reason, principal.username if principal is not None else None
        )
