"""The hostile review's findings, reproduced through the real app (AppTest): account changes
need a step-up, a tab restored from the cookie exports nothing without 2FA, the current-password
check locks and audits, and out-of-range links and saved views open clamped instead of crashing."""

from __future__ import annotations

import uuid

import pandas as pd
import pyotp
import pytest

from components import auth
from components.context import app_context
from components.export import export_for_session
from data.extract.store import store_from_settings
from data.queries.metrics import data_bounds
from security.permissions import AccessDenied
from security.service import ExportRefused
from settings import load_settings
from tests.app.conftest import (
    CLOCK,
    SECRETS,
    enter_code,
    has_widget,
    new_app,
    sign_in,
    texts,
    widget,
)

ADMIN_PAGE = "app_pages/admin.py"
ACCOUNT_PAGE = "app_pages/account.py"
OVERVIEW = "app_pages/overview.py"
PASSWORD = "correct horse battery staple"


def _admin_users_tab():
    at = sign_in(new_app().run(), "admin")
    at.switch_page(ADMIN_PAGE).run()
    assert not at.exception
    return at


def test_account_changes_wait_for_a_step_up_then_cite_it(clock):
    at = _admin_users_tab()
    # Before the step-up: the confirmation form, and no way to add or change an account.
    assert has_widget(at, "text_input", "Password", form="step-up-accounts")
    assert not has_widget(at, "button", "Add user", form="add-user")
    assert not has_widget(at, "button", "Reset 2FA")
    widget(at, "text_input", "Password", form="step-up-accounts").input("spotlight-demo")
    widget(at, "text_input", "6-digit code", form="step-up-accounts").input(
        pyotp.TOTP(SECRETS["admin"]).at(CLOCK())
    )
    widget(at, "button", "Confirm", form="step-up-accounts").click().run()
    CLOCK.advance(seconds=31)
    assert has_widget(at, "button", "Add user", form="add-user"), "confirmed: the forms appear"
    name = f"ops-{uuid.uuid4().hex[:6]}"
    widget(at, "text_input", "Username", form="add-user").input(name)
    widget(at, "multiselect", "Roles", form="add-user").select("admin")
    widget(at, "text_input", "Initial password (12+ characters)", form="add-user").input(PASSWORD)
    widget(at, "button", "Add user", form="add-user").click().run()
    assert not at.exception
    assert f"Added {name}." in texts(at, "success")
    sec = app_context().security
    step_up = sec.audit.list(action="stepup", actor="admin", limit=1)[0]
    added = sec.audit.list(action="user.add", limit=1)[0]
    assert added.target == name and added.details["step_up"] == step_up.id
    assert added.client.startswith("client-")


def test_an_expired_step_up_is_asked_for_again_and_changes_nothing(clock):
    at = _admin_users_tab()
    widget(at, "text_input", "Password", form="step-up-accounts").input("spotlight-demo")
    widget(at, "text_input", "6-digit code", form="step-up-accounts").input(
        pyotp.TOTP(SECRETS["admin"]).at(CLOCK())
    )
    widget(at, "button", "Confirm", form="step-up-accounts").click().run()
    CLOCK.advance(minutes=app_context().settings.stepup_minutes + 1)
    at.run()
    assert has_widget(at, "text_input", "Password", form="step-up-accounts")
    assert not has_widget(at, "button", "Add user", form="add-user")


def _restored_tab(username: str):
    """A second tab whose session came from the cookie: what current_principal() records."""
    first = sign_in(new_app().run(), username)
    restored = new_app()
    restored.session_state[auth.TOKEN_KEY] = first.session_state[auth.TOKEN_KEY]
    restored.session_state[auth.RESTORED_KEY] = True
    restored.session_state[auth.TAB_MFA_KEY] = False
    restored.run()
    return restored


def test_a_tab_restored_from_the_cookie_exports_nothing_without_2fa(clock):
    restored = _restored_tab("executive")
    assert restored.metric, "the aggregate Overview opens"
    assert not restored.get("download_button")
    assert "🔐 Downloads need two-factor confirmation in this tab." in texts(restored, "caption")
    # The file path itself refuses too: a button drawn earlier, or a crafted request, gets nothing.
    sec = app_context().security
    token = restored.session_state[auth.TOKEN_KEY]
    before = len(sec.audit.list(action="export", actor="executive", limit=10_000))
    with pytest.raises(ExportRefused) as refused:
        export_for_session(
            sec,
            token,
            pd.DataFrame({"a": [1]}),
            fmt="csv",
            target="t",
            client="c",
            tab_state=(True, False),
        )
    assert refused.value.reason == "mfa_required"
    denied = sec.audit.list(action="export", actor="executive", limit=10_000)
    assert len(denied) == before + 1 and denied[0].outcome == "denied"
    # The same session, in the tab where 2FA was passed, may export.
    assert export_for_session(
        sec,
        token,
        pd.DataFrame({"a": [1]}),
        fmt="csv",
        target="t",
        client="c",
        tab_state=(False, True),
    )


def test_a_restored_tab_offers_downloads_once_a_code_is_entered_in_it(clock):
    restored = _restored_tab("admin")
    restored.switch_page(OVERVIEW).run()
    assert not restored.get("download_button")
    restored.switch_page(ADMIN_PAGE).run()
    enter_code(restored, "admin")
    CLOCK.advance(seconds=31)
    assert restored.tabs, "the code opens the admin page"
    restored.switch_page(OVERVIEW).run()
    assert restored.get("download_button"), "and the same tab may now download"


def test_wrong_current_passwords_lock_the_check_and_are_audited(clock):
    name = f"ana-{uuid.uuid4().hex[:6]}"
    sec = app_context().security
    sec.users.add(name, PASSWORD, ["analyst"])
    at = sign_in(new_app().run(), name, PASSWORD)
    at.switch_page(ACCOUNT_PAGE).run()
    limit = app_context().settings.login_max_failures
    for _ in range(limit):
        widget(at, "text_input", "Current password").input("not my password 1")
        widget(at, "text_input", "New password (12+ characters)").input("a new long password 7")
        widget(at, "text_input", "New password again").input("a new long password 7")
        widget(at, "button", "Change password").click().run()
        assert "The current password is not right." in texts(at, "error")
    widget(at, "text_input", "Current password").input(PASSWORD)
    widget(at, "text_input", "New password (12+ characters)").input("a new long password 7")
    widget(at, "text_input", "New password again").input("a new long password 7")
    widget(at, "button", "Change password").click().run()
    assert any("Too many wrong passwords" in e for e in texts(at, "error"))
    assert sec.users.verify_password(name, PASSWORD), "the password did not change"
    failures = sec.audit.list(action="signin.failure", actor=name, limit=100)
    assert len(failures) == limit + 1
    assert any(r.details.get("reason") == "re-authentication locked" for r in failures)


def _bounds():
    return data_bounds(store_from_settings(load_settings()).cursor())


@pytest.mark.parametrize("page", [OVERVIEW, "app_pages/engagement.py", "app_pages/compare.py"])
def test_a_link_reaching_outside_the_data_opens_clamped(clock, page):
    first, last = _bounds()
    at = new_app()
    params = {"preset": "custom", "start": "2020-01-01", "end": str(last)}
    at.query_params = dict(params)
    at.run()
    sign_in(at, "admin")
    at.query_params = dict(params)
    at.switch_page(page).run()
    assert not at.exception, at.exception
    warnings = " ".join(texts(at, "warning"))
    assert "reach outside the data" in warnings and f"{first:%Y-%m-%d}" in warnings
    assert at.query_params.get("start") == str(first)


def test_a_link_wholly_outside_the_data_falls_back_to_the_default(clock):
    at = new_app()
    params = {"preset": "custom", "start": "2001-01-01", "end": "2001-02-01"}
    at.query_params = dict(params)
    at.run()
    sign_in(at, "analyst")
    at.query_params = dict(params)
    at.switch_page(OVERVIEW).run()
    assert not at.exception
    assert any("hold no data" in w for w in texts(at, "warning"))
    assert at.query_params.get("preset") == "last_28_days"


def test_a_saved_view_outside_the_data_opens_clamped(clock):
    first, last = _bounds()
    name = f"old-{uuid.uuid4().hex[:6]}"
    from security.saved_views import SavedViews

    SavedViews(app_context().security.db).save(
        "analyst", name, {"preset": "custom", "start": "2019-05-01", "end": str(last)}
    )
    at = sign_in(new_app().run(), "analyst")
    at.switch_page(OVERVIEW).run()
    at.selectbox(key="filters-view").set_value(name).run()
    at.button(key="filters-view-open").click().run()
    assert not at.exception, at.exception
    assert at.query_params.get("start") == str(first)


def test_account_admin_refuses_without_step_up_even_if_called_directly(clock):
    from security.account_admin import AccountAdmin

    at = _admin_users_tab()
    principal = app_context().security.resolve(at.session_state[auth.TOKEN_KEY])
    with pytest.raises(AccessDenied):
        AccountAdmin(app_context().security, principal, "c").reset_2fa("analyst")


def test_a_denied_page_is_audited_with_the_client(clock):
    at = sign_in(new_app().run(), "analyst")
    at.switch_page(ADMIN_PAGE).run()
    assert any("No access" in e for e in texts(at, "error"))
    [record] = app_context().security.audit.list(action="access.denied", actor="analyst", limit=1)
    assert record.target == "admin" and record.client.startswith("client-")
