"""My account: who I am, my password, my 2FA and my sessions."""

from __future__ import annotations

import streamlit as st

from components import auth
from components.guard import require_page
from components.text import md_escape
from security.passwords import PasswordPolicyError
from security.permissions import ROLE_LABELS
from security.users import UserError

ctx, principal = require_page("account", "👤 My account", needs_data=False)

st.title("👤 My account")
st.markdown(
    f"**{md_escape(principal.display_name)}** · {md_escape(', '.join(ROLE_LABELS.get(r, r) for r in sorted(principal.roles)))}"
)
if principal.is_external:
    ids = ", ".join(str(i) for i in sorted(principal.creator_ids)) or "none yet"
    st.caption(f"You see the rows of these creators only: {ids}.")
enrolled = ctx.security.totp_enrolled(principal.username)
account = ctx.security.users.require(principal.username)
if enrolled:
    st.write("Two-factor authentication: ✅ enrolled")
elif account.sso and principal.needs_mfa:
    # Signed in with the provider's second factor: sign-in needs no app code, but step-up
    # actions do. Set up only just after a provider sign-in, in the tab it happened in: in a
    # tab left open, whoever found it could choose the account's second factor.
    st.write(
        "Two-factor authentication: your organisation's sign-in provides it. Confirming "
        "sensitive actions needs the app's own code as well."
    )
    if auth.may_enrol_after_provider_sign_in(ctx, principal):
        with st.expander("Set up the app's own 2FA", expanded=True):
            auth.second_factor_form(
                ctx, principal, st.session_state.get(auth.TOKEN_KEY, ""), cancel=False
            )
    else:
        st.caption(
            f"To set it up, sign out, sign in again and open this page within "
            f"{ctx.settings.stepup_minutes:g} minutes."
        )
elif principal.needs_mfa:
    st.write("Two-factor authentication: not set up yet; you set it up at your next sign-in.")
else:
    # Sign-in asks for a code only from roles in MFA_ROLES, so enrolling here would protect
    # nothing: say so instead of offering a second factor that is never checked.
    st.write("Two-factor authentication: not needed for your role")
    st.info(
        "Your role does not need 2FA: it sees no money or personal data, and takes no action "
        "that needs a confirmation. Roles that do are asked for a code at every sign-in.",
        icon="🔐",
    )

if account.sso:
    st.info(
        "You sign in with your organisation's account (single sign-on): your password, and "
        "your groups, which decide your role here, are managed there.",
        icon="🔑",
    )


def _change_password() -> None:
    with st.form("change-password", clear_on_submit=True):
        st.subheader("Change my password")
        current = st.text_input(
            "Current password", type="password", autocomplete="current-password"
        )
        new = st.text_input(
            "New password (12+ characters)", type="password", autocomplete="new-password"
        )
        repeat = st.text_input("New password again", type="password", autocomplete="new-password")
        if st.form_submit_button("Change password", type="primary"):
            checked = ctx.security.check_password(st.session_state.get(auth.TOKEN_KEY, ""), current)
            if not checked.ok:
                # Checked first, throttled and audited like a sign-in: a wrong guess counts even
                # when the new passwords differ.
                st.error(checked.message, icon="🚫")
            elif new != repeat:
                st.error("The two new passwords differ.", icon="⚠️")
            else:
                try:
                    ctx.security.users.reset_password(
                        principal.username, new, actor=principal.username, client=auth.client_id()
                    )
                    st.success(
                        "Password changed. Other sessions were signed out; sign in again here.",
                        icon="✅",
                    )
                except (PasswordPolicyError, UserError) as exc:
                    st.error(str(exc), icon="⚠️")


if not account.sso:
    _change_password()

st.subheader("Sessions")
if st.button("Sign out on every device", icon="🚪"):
    ctx.security.revoke_all(principal.username)
    st.rerun()
