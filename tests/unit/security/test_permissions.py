"""The permission matrix: least privilege, known pages only, creator scope never "all"."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from security import permissions as perm
from security.permissions import (
    ACTION_ROLES,
    ACTIONS,
    EXTERNAL_ROLES,
    INTERNAL_ROLES,
    MFA_FREE_PAGES,
    MFA_ROLES,
    MONEY_PAGES,
    PAGE_ROLES,
    PAGES,
    ROLES,
    STEP_UP_ACTIONS,
    AccessDenied,
    Principal,
    RoleError,
    require,
    validate_roles,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def principal(*roles: str, ids=(), mfa: bool = True, step_up_until=None) -> Principal:
    return Principal(
        username="u",
        display_name="U",
        roles=frozenset(roles),
        creator_ids=frozenset(ids),
        mfa_verified=mfa,
        session_id="s1",
        step_up_until=step_up_until,
    )


def test_every_role_opens_overview_and_only_admin_opens_admin():
    for role in ROLES:
        p = principal(role)
        assert p.can_open("overview"), role
        assert p.can_open("admin") == (role == "admin"), role


@pytest.mark.parametrize(
    ("page", "roles"),
    [
        ("engagement", {"manager", "analyst", "admin"}),
        ("compare", {"executive", "manager", "analyst", "admin"}),
        ("segments", {"marketer", "analyst", "admin"}),
        ("revenue", {"finance", "executive", "admin"}),
        ("earnings", {"creator", "finance", "admin"}),
    ],
)
def test_page_grants_match_the_brief(page, roles):
    assert {r for r in ROLES if principal(r).can_open(page)} == roles


def test_unknown_pages_actions_and_roles_are_denied():
    admin = principal("admin")
    assert not admin.can_open("nonexistent")
    assert not admin.can("launch_rockets")
    ghost = principal("superuser")
    assert ghost.allowed_pages == ()
    assert not any(ghost.can(a, NOW) for a in ACTIONS)
    with pytest.raises(AccessDenied) as info:
        require(admin, "nonexistent")
    assert info.value.reason == "not_permitted"


def test_nobody_without_roles_gets_anything():
    empty = principal()
    assert empty.allowed_pages == ()
    assert empty.export_row_cap == 0


def test_least_privilege_the_matrix_never_grants_everything_to_a_non_admin():
    for role in ROLES:
        if role == "admin":
            continue
        pages = {p for p in PAGES if principal(role).can_open(p)}
        assert pages != set(PAGES), role
        assert not principal(role).may("manage_users"), role


def test_roles_that_see_money_or_take_step_up_actions_all_need_2fa():
    for role in ROLES:
        p = principal(role)
        sensitive = p.may("see_money") or any(p.may(a) for a in STEP_UP_ACTIONS)
        if sensitive:
            assert role in MFA_ROLES, role
    for page in perm.MONEY_PAGES:
        assert PAGE_ROLES[page] <= ACTION_ROLES["see_money"]


def test_matrix_only_names_known_roles_and_the_docstring_documents_every_page_and_action():
    for table in (PAGE_ROLES, ACTION_ROLES):
        for name, roles in table.items():
            assert roles <= set(ROLES), name
    doc = perm.__doc__ or ""
    for name in (*PAGES, *ACTIONS, *ROLES):
        assert name in doc, name


def test_2fa_roles_reach_only_money_free_pages_until_verified():
    for role in MFA_ROLES:
        pending = principal(role, mfa=False)
        assert pending.needs_mfa and pending.mfa_pending
        assert set(pending.allowed_pages) <= MFA_FREE_PAGES
        assert not set(pending.allowed_pages) & (MONEY_PAGES | {"admin"})
        for page in (MONEY_PAGES | {"admin"}) & set(principal(role).allowed_pages):
            with pytest.raises(AccessDenied) as info:
                require(pending, page)
            assert info.value.reason == "mfa_required"
        for action in ACTIONS:
            assert not pending.can(action, NOW), f"{role} may not {action} before 2FA"
    # Roles without 2FA are not held back by it.
    assert principal("analyst", mfa=False).can_open("engagement")


def test_money_free_pages_hold_no_money_page():
    assert not MFA_FREE_PAGES & MONEY_PAGES
    assert "admin" not in MFA_FREE_PAGES
    assert set(PAGES) >= MFA_FREE_PAGES


def test_step_up_actions_need_a_fresh_step_up():
    stale = principal("finance")
    with pytest.raises(AccessDenied) as info:
        require(stale, "approve_payout", NOW)
    assert info.value.reason == "step_up_required"
    fresh = principal("finance", step_up_until=NOW + timedelta(minutes=5))
    require(fresh, "approve_payout", NOW)
    assert not fresh.can("approve_payout", NOW + timedelta(minutes=5))
    assert fresh.may("approve_payout") and not principal("admin").may("approve_payout")


def test_resolved_at_is_the_default_clock_for_step_up():
    p = Principal(
        "f",
        "F",
        {"finance"},
        mfa_verified=True,
        step_up_until=NOW + timedelta(minutes=1),
        resolved_at=NOW,
    )
    assert p.can("approve_payout")
    later = Principal(
        "f",
        "F",
        {"finance"},
        mfa_verified=True,
        step_up_until=NOW + timedelta(minutes=1),
        resolved_at=NOW + timedelta(minutes=2),
    )
    assert not later.can("approve_payout")


def test_signed_out_is_denied():
    with pytest.raises(AccessDenied) as info:
        require(None, "overview")
    assert info.value.reason == "signed_out"


def test_creator_scope_is_never_all():
    for size in range(1, len(EXTERNAL_ROLES) + 1):
        for roles in itertools.combinations(sorted(EXTERNAL_ROLES), size):
            for ids in ((), (1,), (1, 2)):
                scope = principal(*roles, ids=ids).scope
                assert not scope.all_creators
                assert scope.creator_ids == frozenset(ids)
                assert not scope.allows(99)
                assert not scope.allows(None)
    nothing = principal("creator").scope
    assert nothing.key == "creators:" and not nothing.allows(1)


def test_internal_roles_see_every_creator():
    for role in INTERNAL_ROLES:
        assert principal(role).scope.all_creators
        assert principal(role).scope_key == "all"


def test_scope_key_is_stable_and_distinguishes_scopes():
    a = principal("creator", ids=(2, 1))
    b = Principal("other", "O", frozenset({"creator"}), frozenset({1, 2}))
    c = principal("creator", ids=(1,))
    assert a.scope_key == b.scope_key == "creators:1,2"
    assert a.scope_key != c.scope_key
    assert hash(a) == hash(principal("creator", ids=(1, 2)))
    assert {a.scope_key, c.scope_key, principal("analyst").scope_key} == {
        "creators:1,2",
        "creators:1",
        "all",
    }


def test_validate_roles_errors_are_actionable():
    assert validate_roles([" Analyst ", "manager"]) == {"analyst", "manager"}
    with pytest.raises(RoleError, match="unknown role"):
        validate_roles(["wizard"])
    with pytest.raises(RoleError, match="at least one role"):
        validate_roles([])
    with pytest.raises(RoleError, match="cannot be combined"):
        validate_roles(["creator", "admin"])


def test_export_caps_follow_the_roles():
    assert principal("partner").export_row_cap == 0
    assert principal("creator").export_row_cap == perm.EXPORT_ROW_CAPS["creator"]
    assert principal("admin").export_row_cap >= principal("analyst").export_row_cap
    assert principal("manager", "analyst").export_row_cap == perm.EXPORT_ROW_CAPS["analyst"]
