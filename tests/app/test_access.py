"""Every role × every page: allowed pages render without error, denied ones show "no access"
and run none of their queries (SECURITY.md #6)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from components.navigation import PAGE_SPECS, in_menu
from components.queries import QUERY_REQUESTS
from security.permissions import ROLES, Principal
from tests.app.conftest import new_app, sign_in, signed_in_app, texts

_SIGNED_IN: dict[str, AppTest] = {}


def _app_for(role: str) -> AppTest:
    # One signed-in app per role and worker: bcrypt and 2FA once, then every page in turn.
    if role not in _SIGNED_IN:
        _SIGNED_IN[role] = signed_in_app(role)
    return _SIGNED_IN[role]


def _granted(role: str, page_id: str) -> bool:
    return in_menu(
        Principal(username=role, display_name=role, roles={role}, mfa_verified=True), page_id
    )


@pytest.mark.parametrize("page", PAGE_SPECS, ids=lambda spec: spec.id)
@pytest.mark.parametrize("role", ROLES)
def test_role_page_pair(role, page):
    at = _app_for(role)
    before = sum(QUERY_REQUESTS.values())
    at.switch_page(page.path).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(texts(at, "error"))
    if _granted(role, page.id):
        assert "No access" not in errors
        assert any(page.title in t for t in texts(at, "title")), texts(at, "title")
    else:
        assert "No access" in errors
        assert sum(QUERY_REQUESTS.values()) == before, "a denied page ran a query"
        assert not at.metric and not at.dataframe, "a denied page drew data"


def test_every_role_can_open_the_overview():
    assert all(_granted(role, "overview") for role in ROLES)


def test_signed_out_deep_link_shows_sign_in_and_lands_on_the_asked_page():
    at = new_app()
    at.switch_page("app_pages/admin.py").run()
    assert "Sign in" in [b.label for b in at.button]
    assert not at.metric and not at.tabs
    sign_in(at, "admin")
    assert any("Administration" in t for t in texts(at, "title"))
    assert at.tabs, "the admin page itself, not a redirect, is shown after sign-in"


def test_signed_out_app_runs_no_data_query():
    before = sum(QUERY_REQUESTS.values())
    at = new_app().run()
    assert "Username" in [t.label for t in at.text_input]
    assert sum(QUERY_REQUESTS.values()) == before
