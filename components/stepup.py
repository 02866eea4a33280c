"""Step-up re-authentication (password + a fresh code) before the most sensitive actions."""

from __future__ import annotations

import streamlit as st

from components import auth
from components.context import AppContext
from security.permissions import Principal


def step_up_ok(ctx: AppContext, principal: Principal, action: str, *, key: str) -> bool:
    """True when the principal may take ``action`` now; otherwise draw the step-up form.

    The action must be one the role grants (``principal.may``); step-up lasts a few minutes
    (setting ``stepup_minutes``), so several changes in a row ask only once.
    """
    if principal.can(action):
        return True
    if not principal.may(action):
        st.error("Your role cannot do this.", icon="🚫")
        return False
    account = ctx.security.users.get(principal.username)
    provider_account = bool(account and account.sso)
    if provider_account and not account.totp_enrolled:
        st.warning(
            "This action needs a fresh code from the app's own two-factor authentication, and "
            "your account has none yet: set it up on My account just after signing in.",
            icon="🔐",
        )
        return False
    st.info(
        "This action needs you to confirm it is you: a fresh 2FA code."
        if provider_account
        else "This action needs you to confirm it is you: your password and a fresh 2FA code.",
        icon="🔐",
    )
    with st.form(f"step-up-{key}"):
        # A single sign-on account has no password here; the fresh code is its proof.
        password = (
            ""
            if provider_account
            else st.text_input("Password", type="password", autocomplete="current-password")
        )
        code = st.text_input("6-digit code", max_chars=8, autocomplete="one-time-code")
        confirm = st.form_submit_button("Confirm", type="primary")
    if confirm:
        result = ctx.security.step_up(st.session_state.get(auth.TOKEN_KEY, ""), password, code)
        if result.ok:
            st.session_state[auth.TAB_MFA_KEY] = True
            st.rerun()
        st.error(result.message, icon="🚫")
    return False
