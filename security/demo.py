"""Demo accounts: one per role, created in demo mode, disabled once a warehouse is configured.

All demo accounts share the password ``DEMO_PASSWORD`` (documented in the README). The creator
account sees creators 1 and 2 of the demo catalog, the partner account creator 3. Accounts of 2FA
roles (admin, executive, finance, creator) enrol on their first sign-in: the app shows the QR code
and the secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from security.passwords import DEMO_MIN_LENGTH
from security.permissions import MFA_ROLES, ROLE_LABELS, ROLES
from security.service import Security
from security.users import UserError
from settings import Settings

DEMO_PASSWORD = "spotlight-demo"  # noqa: S105 - a published demo password, by design
DEMO_CREATOR_IDS: dict[str, tuple[int, ...]] = {"creator": (1, 2), "partner": (3,)}


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    display_name: str
    creator_ids: tuple[int, ...]

    @property
    def needs_mfa(self) -> bool:
        return self.role in MFA_ROLES


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = tuple(
    DemoAccount(
        username=role,
        role=role,
        display_name=f"Demo {ROLE_LABELS[role].lower()}",
        creator_ids=DEMO_CREATOR_IDS.get(role, ()),
    )
    for role in ROLES
)


def ensure_demo_accounts(
    settings: Settings, security: Security | None = None, *, now: datetime | None = None
) -> dict[str, list[str]]:
    """Make the demo accounts match the mode; ``{"created": [...], "disabled": [...]}``.

    Demo mode (no warehouse): create the missing demo accounts (existing ones are left as they
    are, so an admin's changes stick). A warehouse configured: disable every enabled demo account
    and end its sessions — a published password never guards real data. Safe to call on every
    start and from several processes at once.
    """
    sec = security or Security(settings)
    created: list[str] = []
    disabled: list[str] = []
    if settings.demo_mode:
        for account in DEMO_ACCOUNTS:
            if sec.users.get(account.username) is not None:
                continue
            try:
                sec.users.add(
                    account.username,
                    DEMO_PASSWORD,
                    [account.role],
                    display_name=account.display_name,
                    creator_ids=account.creator_ids,
                    actor="system",
                    is_demo=True,
                    min_password_length=DEMO_MIN_LENGTH,
                    now=now,
                )
                created.append(account.username)
            except UserError:
                # Another process created it between our check and our insert.
                continue
    else:
        for user in sec.users.list():
            if user.is_demo and not user.disabled:
                sec.users.disable(user.username, actor="system", now=now)
                disabled.append(user.username)
    return {"created": created, "disabled": disabled}


def demo_accounts_markdown() -> str:
    """The README's demo account table (kept in sync by a test)."""
    lines = [
        "| username | password | role | 2FA | sees |",
        "| --- | --- | --- | --- | --- |",
    ]
    for account in DEMO_ACCOUNTS:
        if account.creator_ids:
            noun = "creators" if len(account.creator_ids) > 1 else "creator"
            sees = f"rows of {noun} " + ", ".join(str(i) for i in account.creator_ids)
        else:
            sees = "every creator's rows"
        mfa = "yes — enrol on first sign-in" if account.needs_mfa else "no"
        lines.append(
            # The username is not in backticks: the settings test reads "| `name` |" rows as
            # settings.
            f"| {account.username} | `{DEMO_PASSWORD}` | {ROLE_LABELS[account.role]} "
            f"| {mfa} | {sees} |"
        )
    return "\n".join(lines)
