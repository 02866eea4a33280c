"""2FA without dead ends: a tab restored from the cookie confirms 2FA where money is hidden, the
enrolment key is readable text, and My account explains 2FA to roles that do not need it."""

from __future__ import annotations

import uuid

from components import auth
from components.context import app_context
from tests.app.conftest import (
    enrolment_key,
    enter_code,
    has_widget,
    new_app,
    sign_in,
    signed_in_app,
    submit_password,
    texts,
)

PASSWORD = "correct horse battery staple"


def _new_user(role: str) -> str:
    """A fresh account of this role, not yet enrolled in 2FA."""
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    app_context().security.users.add(name, PASSWORD, [role])
    return name


def test_a_restored_finance_tab_confirms_2fa_on_the_overview_and_then_sees_revenue(clock):
    name = _new_user("finance")
    first = sign_in(new_app().run(), name, PASSWORD)
    restored = new_app()
    # What current_principal() records when it restores a session from the cookie.
    restored.session_state[auth.TOKEN_KEY] = first.session_state[auth.TOKEN_KEY]
    restored.session_state[auth.RESTORED_KEY] = True
    restored.session_state[auth.TAB_MFA_KEY] = False
    restored.run()
    assert not restored.exception, restored.exception
    assert restored.metric, "the aggregate Overview opens"
    assert "Net revenue" not in [m.label for m in restored.metric]
    assert has_widget(restored, "text_input", "6-digit code"), "the code form is right there"
    assert any("Confirm it is you" in t for t in texts(restored, "markdown"))
    assert not has_widget(restored, "button", "Cancel and sign out")
    enter_code(restored, name)
    assert not restored.exception, restored.exception
    assert "Net revenue" in [m.label for m in restored.metric]
    assert not has_widget(restored, "text_input", "6-digit code")
    assert restored.session_state[auth.TAB_MFA_KEY]


def test_the_enrolment_key_is_readable_text_not_a_disabled_field(clock):
    name = _new_user("finance")
    at = submit_password(new_app().run(), name, PASSWORD)
    assert not has_widget(at, "text_input", auth.ENROLMENT_KEY_LABEL)
    assert not [t for t in at.text_input if t.disabled], "no light-grey disabled field"
    key = enrolment_key(at)
    assert key and key.isalnum() and key.upper() == key, key
    enter_code(at, name)
    assert not at.exception, at.exception
    assert at.metric, "the code from the key shown completes the sign-in"


def test_my_account_explains_2fa_to_a_role_that_does_not_need_it():
    at = signed_in_app("manager")
    at.switch_page("app_pages/account.py").run()
    assert not at.exception, at.exception
    assert "Two-factor authentication: not set up" not in texts(at, "markdown")
    assert any("Your role does not need 2FA" in t for t in texts(at, "info"))
    assert any(
        "Roles that do are asked for a code at every sign-in." in t for t in texts(at, "info")
    )
