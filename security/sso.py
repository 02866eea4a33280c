"""Single sign-on: an identity provider's ID-token claims turned into who the user is here.

Pure (no streamlit, no database): :func:`identity_from_claims` maps the claims Streamlit's
``st.user`` holds after an OpenID Connect sign-in to an :class:`SsoIdentity` (username, roles,
creator scope, whether the provider vouched for a second factor), or refuses with
:class:`SsoRefused`. A refusal is the only outcome when the claims do not say clearly what the
user may do: no mapped group, groups that map to roles that cannot be combined, a creator scope
that is not a list of creator ids. There is never a default role.

Roles come from the groups claim (``sso_groups_claim``, ``groups`` by default) through
``sso_role_map`` (group -> role); a user in several mapped groups gets every role they map to;
groups the map does not name are ignored. Group names in the claim match the map exactly (case
and spaces count: `` sp-analysts`` is not ``sp-analysts``): Entra ID sends object ids, Okta and
Cognito names. A claim that is a single string is one group.

The username comes from ``sso_username_claim``. When that claim is ``email``, the ID token must
also say ``email_verified: true``: many providers let users sign themselves up or edit their
address, and an unverified address would name (and be refused as, or provisioned as) whoever
owns it here. A stable claim such as ``sub`` or Entra ID's ``oid`` avoids the question.
The creator scope (``sso_creator_claim``) applies to the external roles only; missing, it is
empty: an external user then sees no rows, never all of them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from security.input import InputError, parse_creator_ids
from security.permissions import EXTERNAL_ROLES, ROLES, RoleError, validate_roles
from security.users import UserError, check_username
from settings import Settings, SettingsError

SIGN_IN_METHODS = ("local", "sso", "both")

# What a refused user is told; the reason goes to the audit log and the admin, not to them.
NO_ACCESS = (
    "No access — ask your administrator. You signed in with your organisation's account, but "
    "it has not been given access to Spotlight Analytics."
)


class SsoRefused(Exception):
    """The claims do not let this user in. ``reason`` is a short code for the audit log
    (``no_username``, ``unverified_email``, ``unmapped``, ``conflicting_roles``,
    ``bad_creator_scope``, ``stale_sign_in``, ``local_account``, ``subject_changed``,
    ``identity_has_account``, ``disabled``); ``detail`` says what to fix, for the
    administrator."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SsoConfig:
    """How claims map to a principal; from settings by :func:`sso_config`."""

    role_map: Mapping[str, frozenset[str]]
    groups_claim: str = "groups"
    username_claim: str = "email"
    name_claim: str = "name"
    creator_claim: str = "creator_ids"
    # amr values that count as a second factor done at the provider; empty: none counts.
    mfa_amr: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SsoIdentity:
    """Who the claims say the user is, mapped to this app's terms."""

    username: str
    display_name: str
    roles: frozenset[str]
    creator_ids: frozenset[int]
    provider_mfa: bool
    groups: tuple[str, ...]
    issuer: str
    subject: str


def parse_role_map(text: str) -> dict[str, frozenset[str]]:
    """``sso_role_map``: ``group=role`` pairs separated by commas or new lines (a group named
    twice gets both roles; spaces around each name are not part of it), or a JSON object
    ``{"group": "role" | ["role", ...]}`` for group names that hold commas, ``=`` or spaces at
    either end (its keys are taken exactly). SettingsError names the bad entry."""
    text = (text or "").strip()
    if not text:
        return {}
    pairs: list[tuple[str, str]] = []
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"SPOTLIGHT_SSO_ROLE_MAP is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise SettingsError("SPOTLIGHT_SSO_ROLE_MAP must be a JSON object")
        for group, roles in raw.items():
            if not group:
                raise SettingsError("SPOTLIGHT_SSO_ROLE_MAP: a group name is empty")
            for role in [roles] if isinstance(roles, str) else roles:
                if not isinstance(role, str):
                    raise SettingsError(
                        f"SPOTLIGHT_SSO_ROLE_MAP: the role of group {group!r} must be a name"
                    )
                pairs.append((group, role))
    else:
        for entry in text.replace("\n", ",").split(","):
            if not entry.strip():
                continue
            group, sep, role = entry.partition("=")
            if not sep or not group.strip() or not role.strip():
                raise SettingsError(
                    f"SPOTLIGHT_SSO_ROLE_MAP: {entry.strip()!r} is not group=role "
                    "(e.g. spotlight-finance=finance)"
                )
            pairs.append((group.strip(), role))
    mapping: dict[str, set[str]] = {}
    for group, role in pairs:
        name = role.strip().lower()
        if name not in ROLES:
            raise SettingsError(
                f"SPOTLIGHT_SSO_ROLE_MAP: unknown role {role.strip()!r} for group "
                f"{group!r}; roles: {', '.join(ROLES)}"
            )
        mapping.setdefault(group, set()).add(name)
    return {group: frozenset(roles) for group, roles in mapping.items()}


def sso_config(settings: Settings) -> SsoConfig:
    """The claim mapping the settings describe; SettingsError when one is unusable."""
    method = str(settings.sign_in_methods).strip().lower()
    if method not in SIGN_IN_METHODS:
        raise SettingsError(
            f"SPOTLIGHT_SIGN_IN_METHODS must be one of {', '.join(SIGN_IN_METHODS)}, got "
            f"{settings.sign_in_methods!r}."
        )
    role_map = parse_role_map(settings.sso_role_map)
    if method != "local" and not role_map:
        raise SettingsError(
            "Single sign-on is on (SPOTLIGHT_SIGN_IN_METHODS) but SPOTLIGHT_SSO_ROLE_MAP is "
            "empty, so nobody could be given a role: map your provider's groups to roles, e.g. "
            "spotlight-analysts=analyst, spotlight-finance=finance."
        )
    claims = {
        "SPOTLIGHT_SSO_GROUPS_CLAIM": settings.sso_groups_claim,
        "SPOTLIGHT_SSO_USERNAME_CLAIM": settings.sso_username_claim,
        "SPOTLIGHT_SSO_CREATOR_CLAIM": settings.sso_creator_claim,
    }
    for var, value in claims.items():
        if not str(value).strip():
            raise SettingsError(f"{var} must name an ID-token claim.")
    return SsoConfig(
        role_map=role_map,
        groups_claim=settings.sso_groups_claim.strip(),
        username_claim=settings.sso_username_claim.strip(),
        creator_claim=settings.sso_creator_claim.strip(),
        mfa_amr=frozenset(
            v.strip().lower() for v in str(settings.sso_mfa_amr).split(",") if v.strip()
        ),
    )


def _strings(value: Any) -> list[str]:
    """A claim that may be one string or a list of them, each kept exactly as sent (group names
    match exactly); empty strings and other items are ignored."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str) and v]
    return []


def _creator_ids(value: Any, claim: str) -> frozenset[int]:
    if value is None:
        return frozenset()
    if isinstance(value, bool | dict):
        parts: list[Any] = [value]
    elif isinstance(value, int):
        parts = [str(value)]
    elif isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        parts = [value]
    texts = []
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, int | str):
            raise SsoRefused(
                "bad_creator_scope",
                f"the {claim!r} claim must be a list of creator ids (whole numbers), got "
                f"{json.dumps(value, default=str)[:80]}",
            )
        texts.append(str(part))
    try:
        return frozenset(parse_creator_ids(texts))
    except InputError as exc:
        raise SsoRefused("bad_creator_scope", f"the {claim!r} claim: {exc}") from None


def identity_from_claims(claims: Mapping[str, Any], config: SsoConfig) -> SsoIdentity:
    """The identity the claims describe, or SsoRefused saying why the user may not enter."""
    raw_name = claims.get(config.username_claim)
    if not isinstance(raw_name, str) or not raw_name.strip():
        raise SsoRefused(
            "no_username",
            f"the ID token has no {config.username_claim!r} claim to use as the username "
            "(setting sso_username_claim)",
        )
    if config.username_claim == "email" and claims.get("email_verified") is not True:
        raise SsoRefused(
            "unverified_email",
            f"the ID token's email {raw_name[:80]!r} is not verified (email_verified is "
            f"{json.dumps(claims.get('email_verified'), default=str)[:20]}, not true): an "
            "unverified address cannot name an account. Have the provider verify addresses, or "
            "set sso_username_claim to a stable claim such as sub (or oid for Entra ID)",
        )
    try:
        username = check_username(raw_name)
    except UserError as exc:
        raise SsoRefused(
            "no_username", f"the {config.username_claim!r} claim {raw_name[:80]!r}: {exc}"
        ) from None
    groups = _strings(claims.get(config.groups_claim))
    roles = frozenset(r for g in groups for r in config.role_map.get(g, ()))
    if not roles:
        missing = config.groups_claim not in claims
        raise SsoRefused(
            "unmapped",
            f"the ID token has no {config.groups_claim!r} claim"
            if missing
            else f"none of the groups {groups[:10]} is mapped to a role (setting sso_role_map)",
        )
    try:
        roles = validate_roles(roles)
    except RoleError as exc:
        raise SsoRefused("conflicting_roles", f"groups {groups[:10]}: {exc}") from None
    creator_ids: frozenset[int] = frozenset()
    if roles & EXTERNAL_ROLES:
        creator_ids = _creator_ids(claims.get(config.creator_claim), config.creator_claim)
    amr = {a.strip().lower() for a in _strings(claims.get("amr"))}
    shown = claims.get(config.name_claim)
    display = shown.strip()[:100] if isinstance(shown, str) and shown.strip() else username
    return SsoIdentity(
        username=username,
        display_name=display,
        roles=roles,
        creator_ids=creator_ids,
        provider_mfa=bool(amr & config.mfa_amr),
        groups=tuple(groups),
        issuer=str(claims.get("iss") or ""),
        subject=str(claims.get("sub") or ""),
    )


def session_token(claims: Mapping[str, Any], key: str) -> str | None:
    """The registry session token bound to one provider sign-in: an HMAC, under a server key, of
    the issuer, subject, nonce and issue time of the ID token Streamlit's identity cookie holds.

    Each ``st.login`` gets a new nonce, so each sign-in has its own session, and every page load
    carrying that cookie finds the same one: revoked, idle or expired, it stays ended, so the
    cookie replayed after sign-out gets the sign-in page. None when the claims lack the parts
    (no nonce and no issue time): such a cookie cannot be bound and is refused.
    """
    parts = [claims.get("iss"), claims.get("sub"), claims.get("nonce"), claims.get("iat")]
    if not parts[1] or (not parts[2] and not parts[3]):
        return None
    message = json.dumps([str(p) if p is not None else "" for p in parts])
    return "sso-" + hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()
