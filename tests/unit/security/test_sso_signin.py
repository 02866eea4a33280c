"""security/sso_signin.py: provider sign-ins provisioned, bound to registry sessions, audited."""

from __future__ import annotations

import itertools

import pyotp
import pytest

from security.sso import NO_ACCESS, identity_from_claims, session_token, sso_config
from security.sso_signin import SSO_UNVERIFIED
from security.users import UserError
from tests.unit.security.security_support import CLIENT, add_user, make_security

SSO = {
    "sign_in_methods": "both",
    "sso_role_map": "sp-analysts=analyst, sp-finance=finance, sp-creators=creator",
    "sso_mfa_amr": "mfa,otp",
}
_NONCES = itertools.count()


def token_claims(clock, email="ana@example.com", groups=("sp-analysts",), **extra):
    """Claims of a fresh ID token, as st.user holds them after st.login."""
    return {
        "iss": "http://localhost:9400",
        "sub": email,
        "email": email,
        "name": "Ana",
        "groups": list(groups),
        "nonce": f"nonce-{next(_NONCES)}",
        "iat": int(clock().timestamp()),
        "email_verified": True,
        **extra,
    }


def actions(sec):
    rows = sec.db.query("SELECT action, target FROM audit ORDER BY id")
    return [(r["action"], r["target"]) for r in rows]


def test_first_sign_in_provisions_an_sso_user_without_a_password(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    result = sec.sso_sign_in(token_claims(clock), CLIENT)
    assert result.status == "new" and result.token
    user = sec.users.require("ana@example.com")
    assert user.sso and user.roles == {"analyst"} and user.display_name == "Ana"
    assert not sec.authenticate("ana@example.com", "", CLIENT).ok, "no password sign-in"
    principal = sec.resolve(result.token)
    assert principal.username == "ana@example.com" and principal.roles == {"analyst"}
    assert sec.session_is_sso(principal)
    assert ("user.provision", "ana@example.com") in actions(sec)
    assert ("signin.ok", "ana@example.com") in actions(sec)


def test_the_same_identity_cookie_finds_the_same_session(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    c = token_claims(clock)
    first = sec.sso_sign_in(c, CLIENT)
    clock.advance(minutes=30)  # past the sign-in age: the session exists, so it is found
    again = sec.sso_sign_in(c, CLIENT)
    assert again.status == "existing" and again.token == first.token
    assert len(sec.sessions("ana@example.com")) == 1


def test_roles_are_re_read_at_every_sign_in_and_a_removed_group_ends_access(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    first = sec.sso_sign_in(token_claims(clock, groups=["sp-analysts"]), CLIENT)
    second = sec.sso_sign_in(token_claims(clock, groups=["sp-finance"], amr=["mfa"]), CLIENT)
    assert sec.users.require("ana@example.com").roles == {"finance"}
    assert sec.resolve(second.token).roles == {"finance"}
    assert ("user.sso_update", "ana@example.com") in actions(sec)
    gone = sec.sso_sign_in(token_claims(clock, groups=["everyone"]), CLIENT)
    assert gone.status == "no_access" and gone.message == NO_ACCESS
    assert sec.resolve(first.token) is None and sec.resolve(second.token) is None
    assert ("sso.no_access", "ana@example.com") in actions(sec)


def test_unmapped_user_is_audited_and_never_provisioned(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    result = sec.sso_sign_in(token_claims(clock, email="eve@example.com", groups=[]), CLIENT)
    assert result.status == "no_access" and result.token is None
    assert sec.users.get("eve@example.com") is None
    assert ("sso.no_access", "eve@example.com") in actions(sec)


def test_a_disabled_sso_user_is_refused_with_a_valid_provider_sign_in(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    live = sec.sso_sign_in(token_claims(clock), CLIENT)
    sec.users.disable("ana@example.com", actor="admin")
    assert sec.resolve(live.token) is None, "disabling ends the live session"
    again = sec.sso_sign_in(token_claims(clock), CLIENT)
    assert again.status == "refused" and again.token is None
    sec.users.enable("ana@example.com", actor="admin")
    assert sec.sso_sign_in(token_claims(clock), CLIENT).status == "new"


def test_a_local_account_is_never_taken_over_by_a_provider_sign_in(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    add_user(sec, "ana@example.com", ["analyst"])
    result = sec.sso_sign_in(token_claims(clock), CLIENT)
    assert result.status == "refused"
    assert not sec.users.require("ana@example.com").sso


def test_sign_out_and_sign_out_everywhere_end_the_cookie_for_good(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    c = token_claims(clock)
    first = sec.sso_sign_in(c, CLIENT)
    sec.revoke(first.token)
    assert sec.sso_sign_in(c, CLIENT).status == "ended", "the replayed cookie is signed out"
    other = sec.sso_sign_in(token_claims(clock), CLIENT)
    sec.revoke_all("ana@example.com")
    assert sec.resolve(other.token) is None


def test_idle_and_absolute_limits_apply(tmp_path):
    sec, clock = make_security(tmp_path, session_idle_hours=1.0, session_max_hours=3.0, **SSO)
    c = token_claims(clock)
    sec.sso_sign_in(c, CLIENT)
    clock.advance(hours=1, seconds=1)
    assert sec.sso_sign_in(c, CLIENT).status == "ended"
    c2 = token_claims(clock)
    token = sec.sso_sign_in(c2, CLIENT).token
    for _ in range(4):
        clock.advance(minutes=50)
        sec.resolve(token)
    assert sec.sso_sign_in(c2, CLIENT).status == "ended"


def test_an_old_identity_cookie_cannot_start_a_session(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    c = token_claims(clock)
    clock.advance(minutes=sec.settings.sso_signin_max_age_minutes + 1)
    assert sec.sso_sign_in(c, CLIENT).status == "refused"
    del c["iat"], c["nonce"]
    assert sec.sso_sign_in(c, CLIENT).status == "refused"


def test_money_role_needs_the_app_code_unless_the_provider_vouches(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    without = sec.sso_sign_in(token_claims(clock, groups=["sp-finance"], amr=["pwd"]), CLIENT)
    assert sec.resolve(without.token).mfa_pending
    withmfa = sec.sso_sign_in(
        token_claims(clock, groups=["sp-finance"], amr=["pwd", "otp"]), CLIENT
    )
    assert not sec.resolve(withmfa.token).mfa_pending


def test_sso_step_up_takes_a_fresh_code_and_no_password(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    token = sec.sso_sign_in(token_claims(clock, groups=["sp-finance"]), CLIENT).token
    secret = sec.begin_totp_enrolment(token).secret
    assert sec.confirm_totp_enrolment(token, pyotp.TOTP(secret).at(clock())).ok
    clock.advance(seconds=31)
    assert not sec.step_up(token, "", "000000").ok
    clock.advance(seconds=31)
    assert sec.step_up(token, "", pyotp.TOTP(secret).at(clock())).ok
    assert sec.has_recent_step_up(token)
    clock.advance(minutes=sec.settings.stepup_minutes + 1)
    assert not sec.has_recent_step_up(token), "each step-up is fresh proof for a while only"


def test_sso_accounts_have_no_password_to_reset(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    sec.sso_sign_in(token_claims(clock), CLIENT)
    with pytest.raises(UserError, match="identity provider"):
        sec.users.reset_password("ana@example.com", "a brand new long password")


def test_failed_provider_sign_ins_raise_the_burst_alert(tmp_path):
    sec, clock = make_security(tmp_path, alert_failed_signins=3, **SSO)
    for i in range(3):
        sec.sso_sign_in(token_claims(clock, email=f"x{i}@example.com", groups=[]), CLIENT)
    assert any(a.kind == "failed_signins" for a in sec.alerts.list())


def test_privileged_sso_sign_in_from_a_new_client_alerts(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    sec.sso_sign_in(token_claims(clock, groups=["sp-finance"]), CLIENT)
    clock.advance(minutes=1)
    sec.sso_sign_in(token_claims(clock, groups=["sp-finance"]), "203.0.113.9")
    assert any(a.kind == "new_client" for a in sec.alerts.list())


def test_an_address_reassigned_at_the_provider_does_not_inherit_the_account(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    assert sec.sso_sign_in(token_claims(clock), CLIENT).status == "new"
    other = token_claims(clock)
    other["sub"] = "someone-else"
    assert sec.sso_sign_in(other, CLIENT).status == "refused"


def test_two_tabs_starting_the_same_sign_in_at_once_share_one_session(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    c = token_claims(clock)
    identity = identity_from_claims(c, sso_config(sec.settings))
    token = session_token(c, sec.settings.secret("cookie_key"))
    # Both tabs looked before either wrote: the second finds the first one's session.
    assert sec._start_sso_session(identity, token, CLIENT, clock()).status == "new"
    assert sec._start_sso_session(identity, token, CLIENT, clock()).status == "existing"
    assert len(sec.sessions("ana@example.com")) == 1


def test_a_no_access_sign_in_of_another_identity_ends_nobodys_sessions(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    victim = sec.sso_sign_in(token_claims(clock), CLIENT)
    assert victim.status == "new"
    # Another identity at the provider (its own subject) naming ana's address, in no group.
    other = token_claims(clock, groups=[], sub="attacker-sub")
    assert sec.sso_sign_in(other, CLIENT).status == "no_access"
    assert sec.resolve(victim.token) is not None, "ana's session survives"
    # Ana's own identity losing its groups still ends her sessions.
    assert sec.sso_sign_in(token_claims(clock, groups=[]), CLIENT).status == "no_access"
    assert sec.resolve(victim.token) is None


def test_an_unverified_email_never_names_an_account(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    victim = sec.sso_sign_in(token_claims(clock, email="boss@example.com"), CLIENT)
    for verified in (False, None):
        c = token_claims(clock, email="boss@example.com", sub="someone-else")
        c["email_verified"] = verified
        result = sec.sso_sign_in(c, CLIENT)
        assert result.status == "refused" and result.token is None
        assert result.message == SSO_UNVERIFIED and "not verified" in result.reason
    c = token_claims(clock, email="new@example.com", sub="new-sub", email_verified=False)
    assert sec.sso_sign_in(c, CLIENT).status == "refused"
    assert sec.users.get("new@example.com") is None, "never provisioned"
    assert sec.resolve(victim.token) is not None
    reasons = [
        r.details.get("reason") for r in sec.audit.list(limit=50) if r.action == "signin.failure"
    ]
    assert reasons.count("unverified_email") == 3


def test_one_account_per_provider_identity(tmp_path):
    sec, clock = make_security(tmp_path, **SSO)
    first = sec.sso_sign_in(token_claims(clock, sub="ana-sub"), CLIENT)
    assert first.status == "new"
    # The same identity at the provider, its address changed: no second account.
    renamed = sec.sso_sign_in(token_claims(clock, email="ana.b@example.com", sub="ana-sub"), CLIENT)
    assert renamed.status == "refused" and "already has the account" in renamed.reason
    assert sec.users.get("ana.b@example.com") is None
    assert sec.resolve(first.token) is not None
    assert sec.sso_sign_in(token_claims(clock, sub="ana-sub"), CLIENT).status == "new"
