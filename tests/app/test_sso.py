"""Single sign-on through the real app.py with ``at.user`` holding an ID token's claims, as
Streamlit's st.user does after st.login: claims -> principal, the no-access page, 2FA."""

from __future__ import annotations

import uuid

import httpx
import pyotp
import pytest

from components.context import app_context
from components.text import md_escape
from tests.app.conftest import (
    CLOCK,
    SECRETS,
    app_environment,
    enrolment_key,
    enter_code,
    has_widget,
    new_app,
    texts,
    widget,
)
from tests.oidc_mock import running_provider

SSO_ENV = {
    "SPOTLIGHT_SIGN_IN_METHODS": "both",
    "SPOTLIGHT_SSO_ROLE_MAP": (
        "sp-analysts=analyst, sp-finance=finance, sp-creators=creator, sp-admins=admin"
    ),
    "SPOTLIGHT_SSO_MFA_AMR": "mfa, otp",
}


@pytest.fixture
def sso_settings(clock):
    with app_environment(**SSO_ENV):
        yield clock


def provider_user(groups, **extra) -> tuple[str, dict]:
    email = f"sso-{uuid.uuid4().hex[:8]}@example.com"
    return email, {
        "is_logged_in": True,
        "iss": "http://localhost:9400",
        "sub": email,
        "email": email,
        "email_verified": True,
        "name": "Sam Provider",
        "groups": groups,
        "nonce": uuid.uuid4().hex,
        "iat": int(CLOCK().timestamp()),
        **extra,
    }


def _no_access(text: str) -> bool:
    return text.startswith("**No access") and "ask your administrator" in text


def run_as(user: dict):
    at = new_app()
    at.user = user
    return at.run()


def audit_actions(name: str) -> list[str]:
    return [r.action for r in app_context().security.audit.list(limit=500) if r.target == name]


def test_provider_sign_in_lands_with_the_mapped_role(sso_settings):
    email, user = provider_user(["everyone", "sp-analysts"])
    at = run_as(user)
    assert not at.exception, at.exception
    assert any("Overview" in t for t in texts(at, "title"))
    account = app_context().security.users.require(email)
    assert account.sso and account.roles == {"analyst"}
    assert "user.provision" in audit_actions(email) and "signin.ok" in audit_actions(email)
    shown = md_escape(email)
    assert any("signed in as" in c and shown in c for c in texts(at, "caption"))


def test_unmapped_groups_get_the_no_access_page_and_no_data(sso_settings):
    email, user = provider_user(["everyone"])
    at = run_as(user)
    assert not at.exception, at.exception
    assert any(_no_access(e) for e in texts(at, "error"))
    assert not any("Overview" in t for t in texts(at, "title"))
    assert not at.metric and not at.dataframe, "nothing from the extract is drawn"
    assert not has_widget(at, "text_input", "Username"), "the no-access page only"
    assert app_context().security.users.get(email) is None
    assert audit_actions(email).count("sso.no_access") == 1
    at.run()  # a rerun of the same tab is not audited again
    assert audit_actions(email).count("sso.no_access") == 1


def test_creator_scope_comes_from_the_claim(sso_settings):
    email, user = provider_user(["sp-creators"], creator_ids=["4", "7"], amr=["otp"])
    at = run_as(user)
    assert not at.exception, at.exception
    account = app_context().security.users.require(email)
    assert account.roles == {"creator"} and account.creator_ids == {4, 7}


def test_malformed_creator_scope_is_no_access(sso_settings):
    email, user = provider_user(["sp-creators"], creator_ids="4;7", amr=["otp"])
    at = run_as(user)
    assert any(_no_access(e) for e in texts(at, "error"))
    assert app_context().security.users.get(email) is None


def test_money_role_without_provider_mfa_is_asked_for_the_app_code(sso_settings):
    _, user = provider_user(["sp-finance"], amr=["pwd"])
    at = run_as(user)
    assert has_widget(at, "text_input", "6-digit code")
    assert "Set up two-factor authentication" in texts(at, "subheader")
    assert not any("Overview" in t for t in texts(at, "title"))


def test_money_role_with_provider_mfa_is_not_asked(sso_settings):
    _, user = provider_user(["sp-finance"], amr=["pwd", "mfa"])
    at = run_as(user)
    assert not at.exception, at.exception
    assert not has_widget(at, "text_input", "6-digit code")
    assert any("Overview" in t for t in texts(at, "title"))


def test_roles_follow_the_groups_at_the_next_sign_in(sso_settings):
    email, user = provider_user(["sp-analysts"])
    run_as(user)
    user = {**user, "groups": ["sp-finance"], "amr": ["mfa"], "nonce": uuid.uuid4().hex}
    run_as(user)
    assert app_context().security.users.require(email).roles == {"finance"}


def test_a_disabled_sso_user_is_refused(sso_settings):
    email, user = provider_user(["sp-analysts"])
    run_as(user)
    app_context().security.users.disable(email, actor="test")
    at = run_as({**user, "nonce": uuid.uuid4().hex})
    assert not any("Overview" in t for t in texts(at, "title"))
    assert any("did not let you in" in w for w in texts(at, "warning"))


def test_local_only_ignores_a_provider_identity(clock):
    _, user = provider_user(["sp-analysts"])
    at = run_as(user)  # the default: sign_in_methods = local
    assert has_widget(at, "text_input", "Username")
    assert not any("Overview" in t for t in texts(at, "title"))
    assert not has_widget(at, "button", "Sign in with your organisation's account")


def test_sso_without_an_auth_section_tells_the_admin(sso_settings):
    at = new_app().run()
    assert not at.exception, at.exception
    errors = " ".join(texts(at, "error"))
    assert "Single sign-on is not available" in errors and "[auth]" in errors
    assert has_widget(at, "text_input", "Username"), "local sign-in still works (both)"


def test_unreachable_discovery_url_tells_the_admin(sso_settings):
    at = new_app()
    at.secrets["auth"] = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "x" * 40,
        "client_id": "spotlight",
        "client_secret": "s" * 20,
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
    }
    at.run()
    assert not at.exception, at.exception
    errors = " ".join(texts(at, "error"))
    assert "Single sign-on is not available" in errors, errors
    assert "could not be reached" in errors


def test_a_wrong_client_secret_tells_the_admin_before_anyone_signs_in(sso_settings):
    # A provider that checks client secrets (the default mock accepts any client).
    with running_provider("--require-registration") as provider:
        registered = httpx.post(
            f"{provider}/oauth2/clients",
            json={"redirect_uris": ["http://localhost:8501/oauth2callback"]},
        ).json()

        def app_with(secret: str):
            at = new_app()
            at.secrets["auth"] = {
                "redirect_uri": "http://localhost:8501/oauth2callback",
                "cookie_secret": "x" * 40,
                "client_id": registered["client_id"],
                "client_secret": secret,
                "server_metadata_url": f"{provider}/.well-known/openid-configuration",
            }
            return at.run()

        wrong = app_with(registered["client_secret"] + "-old")
        assert not wrong.exception, wrong.exception
        errors = " ".join(texts(wrong, "error"))
        assert "Single sign-on is not available" in errors, errors
        assert "the provider rejected the client id or secret" in errors
        assert not has_widget(wrong, "button", "Sign in with your organisation's account")
        assert has_widget(wrong, "text_input", "Username"), "local sign-in still works (both)"
        right = app_with(registered["client_secret"])
        assert not right.exception, right.exception
        assert not any("Single sign-on" in e for e in texts(right, "error"))
        assert has_widget(right, "button", "Sign in with your organisation's account")


def test_a_bad_sign_in_methods_setting_stops_the_app_with_a_message(clock):
    with app_environment(SPOTLIGHT_SIGN_IN_METHODS="ldap"):
        at = new_app().run()
        assert "SPOTLIGHT_SIGN_IN_METHODS must be one of" in " ".join(
            texts(at, "error") + texts(at, "markdown") + texts(at, "code")
        )


def test_sso_admin_with_provider_mfa_sets_up_the_app_code_then_steps_up_with_it_alone(
    sso_settings,
):
    email, user = provider_user(["sp-admins"], amr=["mfa"])
    at = run_as(user)
    assert any("Overview" in t for t in texts(at, "title"))
    at.switch_page("app_pages/admin.py").run()
    # No app code yet: step-up cannot be done, and says how to get one.
    assert any("has none yet" in w for w in texts(at, "warning"))
    assert not has_widget(at, "button", "Add user")
    at.switch_page("app_pages/account.py").run()
    enter_code(at, email)  # the enrolment, in the tab of a fresh provider sign-in
    assert app_context().security.totp_enrolled(email)
    CLOCK.advance(seconds=31)
    at.switch_page("app_pages/admin.py").run()
    assert not has_widget(at, "text_input", "Password", form="step-up-accounts")
    widget(at, "text_input", "6-digit code", form="step-up-accounts").input(
        pyotp.TOTP(SECRETS[email]).at(CLOCK())
    )
    widget(at, "button", "Confirm", form="step-up-accounts").click().run()
    assert not at.exception, at.exception
    assert has_widget(at, "button", "Add user")
    table = next(d.value for d in at.dataframe if "sign-in" in d.value.columns)
    assert table.loc[table["username"] == email, "sign-in"].item() == "SSO"


def test_enrolment_after_a_provider_sign_in_is_only_offered_while_it_is_fresh(sso_settings):
    _, user = provider_user(["sp-finance"], amr=["otp"])
    at = run_as(user)
    CLOCK.advance(minutes=app_context().settings.stepup_minutes + 1)
    at.switch_page("app_pages/account.py").run()
    assert not has_widget(at, "text_input", "6-digit code")
    assert any("sign in again and open this page within" in c for c in texts(at, "caption"))


CONFIRM = "Confirm with your organisation's account"


def _half_finished_sign_in() -> tuple[str, dict, object]:
    """A money-role provider sign-in without provider MFA, left at the 2FA set-up screen."""
    email, user = provider_user(["sp-finance"], amr=["pwd"])
    first = run_as(user)
    assert enrolment_key(first), "the tab of the provider sign-in offers the set-up"
    return email, user, first


@pytest.mark.parametrize("later_minutes", [0, 30])
def test_another_tab_of_a_half_finished_sign_in_cannot_set_up_2fa(sso_settings, later_minutes):
    email, user, _ = _half_finished_sign_in()
    CLOCK.advance(minutes=later_minutes)
    # Another tab (or the browser reopened): only the identity cookie carries over.
    other = run_as(dict(user))
    assert not other.exception, other.exception
    assert enrolment_key(other) is None, "no authenticator key for whoever holds the browser"
    assert not has_widget(other, "text_input", "6-digit code")
    assert has_widget(other, "button", CONFIRM), "a fresh provider sign-in is the way on"
    assert not any("Overview" in t for t in texts(other, "title"))
    # Still the sign-in screen: no page is registered that a URL could reach.
    with pytest.raises(ValueError, match=r"Known pages: \['Sign in'\]"):
        other.switch_page("app_pages/revenue.py")
    assert not app_context().security.totp_enrolled(email)


def test_the_other_tab_asks_for_the_code_once_the_sign_in_tab_set_it_up(sso_settings):
    email, user, first = _half_finished_sign_in()
    other = run_as(dict(user))
    assert has_widget(other, "button", CONFIRM)
    enter_code(first, email)  # the tab of the provider sign-in finishes the set-up
    assert any("Overview" in t for t in texts(first, "title"))
    CLOCK.advance(seconds=31)
    other.run()
    # Verified in its own tab only: money pages ask this tab for a code.
    assert any("Overview" in t for t in texts(other, "title"))
    other.switch_page("app_pages/revenue.py").run()
    assert has_widget(other, "text_input", "6-digit code") and enrolment_key(other) is None
    enter_code(other, email)
    assert any("Revenue" in t for t in texts(other, "title"))


def test_the_set_up_is_only_offered_while_the_provider_sign_in_is_fresh(sso_settings):
    _, _, first = _half_finished_sign_in()
    CLOCK.advance(minutes=app_context().settings.stepup_minutes + 1)
    first.run()
    assert enrolment_key(first) is None
    assert has_widget(first, "button", CONFIRM)
