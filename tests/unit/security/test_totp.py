"""TOTP: enrolment with a QR code, each code once, a lock after bad codes; step-up expiry."""

from __future__ import annotations

import pytest

from security import totp
from security.permissions import AccessDenied, require
from tests.unit.security.security_support import CLIENT, PASSWORD, add_user, db_bytes, make_security


def signed_in(tmp_path, roles=("finance",), **overrides):
    sec, clock = make_security(tmp_path, **overrides)
    add_user(sec, "fin", roles)
    assert sec.authenticate("fin", PASSWORD, CLIENT).ok
    return sec, clock, sec.create_session("fin", CLIENT)


def enrolled(tmp_path, **overrides):
    sec, clock, token = signed_in(tmp_path, **overrides)
    enrolment = sec.begin_totp_enrolment(token)
    assert sec.confirm_totp_enrolment(token, totp.code_at(enrolment.secret, clock())).ok
    clock.advance(seconds=30)  # the enrolment code's time step is used up
    return sec, clock, token, enrolment.secret


def test_enrolment_shows_a_qr_code_and_keeps_the_secret_across_reruns(tmp_path):
    sec, _, token = signed_in(tmp_path)
    first = sec.begin_totp_enrolment(token)
    assert first.qr_png.startswith(b"\x89PNG\r\n\x1a\n")
    assert first.uri.startswith("otpauth://totp/") and "issuer=Spotlight" in first.uri
    assert first.secret in first.uri
    again = sec.begin_totp_enrolment(token)
    assert again.secret == first.secret, "a rerun shows the same QR code"
    assert not sec.totp_enrolled("fin")


def test_confirming_with_a_wrong_code_does_not_enrol(tmp_path):
    sec, clock, token = signed_in(tmp_path)
    enrolment = sec.begin_totp_enrolment(token)
    wrong = "000000" if totp.code_at(enrolment.secret, clock()) != "000000" else "111111"
    result = sec.confirm_totp_enrolment(token, wrong)
    assert result.status == "invalid"
    assert not sec.totp_enrolled("fin")
    assert sec.resolve(token).mfa_pending


def test_confirming_enrols_and_verifies_the_session(tmp_path):
    sec, _, token, _ = enrolled(tmp_path)
    assert sec.totp_enrolled("fin")
    principal = sec.resolve(token)
    assert principal.mfa_verified
    require(principal, "revenue")
    with pytest.raises(AccessDenied):
        sec.begin_totp_enrolment(token)  # changing the authenticator needs an admin's reset
    assert [r.action for r in sec.audit.list(action="2fa.")][:1] == ["2fa.enrol"]


def test_a_new_session_needs_a_code_and_each_code_works_once(tmp_path):
    sec, clock, _, secret = enrolled(tmp_path)
    token = sec.create_session("fin", CLIENT)
    assert sec.resolve(token).mfa_pending, "a cookie-restored session still needs 2FA"
    code = totp.code_at(secret, clock())
    assert sec.verify_totp(token, f"{code[:3]} {code[3:]}").ok
    assert sec.resolve(token).mfa_verified
    other = sec.create_session("fin", CLIENT)
    reused = sec.verify_totp(other, code)
    assert reused.status == "reused"
    assert sec.resolve(other).mfa_pending
    clock.advance(seconds=30)
    assert sec.verify_totp(other, totp.code_at(secret, clock())).ok


def test_codes_are_checked_strictly(tmp_path):
    sec, clock, token, secret = enrolled(tmp_path, totp_max_failures=100)
    for bad in ("", "12345", "1234567", "abcdef", "１２３４５６"):
        assert sec.verify_totp(token, bad).status == "invalid", bad
    old = totp.code_at(secret, clock().replace(year=2025))
    if old != totp.code_at(secret, clock()):
        assert sec.verify_totp(token, old).status == "invalid"


def test_lock_after_bad_codes_lifts_after_the_lock_time(tmp_path):
    sec, clock, token, secret = enrolled(tmp_path, totp_max_failures=3, totp_lock_minutes=15)
    right = totp.code_at(secret, clock())
    wrong = "000000" if right != "000000" else "111111"
    statuses = [sec.verify_totp(token, wrong).status for _ in range(3)]
    assert statuses == ["invalid", "invalid", "locked"]
    assert sec.verify_totp(token, right).status == "locked", "even a right code while locked"
    assert len(sec.audit.list(action="2fa.lock")) == 1
    clock.advance(minutes=15, seconds=1)
    assert sec.verify_totp(token, totp.code_at(secret, clock())).ok


def test_without_a_session_nothing_is_checked(tmp_path):
    sec, clock, token, secret = enrolled(tmp_path)
    sec.revoke(token)
    assert sec.verify_totp(token, totp.code_at(secret, clock())).status == "no_session"
    with pytest.raises(AccessDenied):
        sec.begin_totp_enrolment(token)


def test_reset_2fa_forces_a_new_enrolment(tmp_path):
    sec, clock, token, _ = enrolled(tmp_path)
    sec.users.reset_2fa("fin", actor="admin")
    assert sec.resolve(token) is None
    assert not sec.totp_enrolled("fin")
    fresh = sec.create_session("fin", CLIENT)
    new = sec.begin_totp_enrolment(fresh)
    assert sec.confirm_totp_enrolment(fresh, totp.code_at(new.secret, clock())).ok


def test_step_up_is_valid_for_the_configured_minutes(tmp_path):
    sec, clock, token, secret = enrolled(tmp_path, stepup_minutes=5)
    assert not sec.has_recent_step_up(token)
    with pytest.raises(AccessDenied) as info:
        require(sec.resolve(token), "approve_payout")
    assert info.value.reason == "step_up_required"
    assert sec.step_up(token, PASSWORD, totp.code_at(secret, clock())).ok
    assert sec.has_recent_step_up(token)
    require(sec.resolve(token), "approve_payout")
    clock.advance(minutes=4, seconds=59)
    require(sec.resolve(token), "approve_payout")
    clock.advance(seconds=1)
    assert not sec.has_recent_step_up(token)
    with pytest.raises(AccessDenied):
        require(sec.resolve(token), "approve_payout")


def test_step_up_refuses_a_wrong_password_or_code_and_counts_them(tmp_path):
    sec, clock, token, secret = enrolled(tmp_path, login_max_failures=2)
    session = sec.resolve(token).session_id
    code = totp.code_at(secret, clock())
    assert sec.step_up(token, "wrong password!", code).status == "invalid"
    assert sec.failure_count("reauth_session", session) == 1
    wrong = "000000" if code != "000000" else "111111"
    assert sec.step_up(token, PASSWORD, wrong).status == "invalid"
    assert not sec.has_recent_step_up(token)
    for _ in range(2):  # the right password above reset the count; two wrong ones lock
        assert sec.step_up(token, "wrong password!", code).status == "invalid"
    assert sec.step_up(token, PASSWORD, code).status == "locked", "the session's lock applies"
    outcomes = [r.outcome for r in sec.audit.list(action="stepup", newest_first=False)]
    assert outcomes == ["failure", "failure", "failure", "failure", "locked"]
    # The lock is the session's: the account still signs in (a stolen session's guesses do not
    # lock its owner out), and the failures count as sign-in failures for the burst alert.
    assert sec.failure_count("signin_user", "fin") == 0
    assert sec.authenticate("fin", PASSWORD, CLIENT).status == "ok"


def test_step_up_works_while_failures_from_elsewhere_lock_the_account(tmp_path):
    sec, clock, token, secret = enrolled(tmp_path, login_max_failures=2)
    for agent in range(3):
        sec.authenticate("fin", "wrong password!", f"attacker-{agent}")
    assert sec.authenticate("fin", PASSWORD, "attacker-9").status == "locked"
    assert sec.step_up(token, PASSWORD, totp.code_at(secret, clock())).ok
    assert sec.has_recent_step_up(token)


def test_secret_password_codes_and_token_never_reach_the_database_file(tmp_path):
    sec, clock, token, secret = enrolled(tmp_path)
    sec.authenticate("fin", "my wrong guess 123", CLIENT)
    code = totp.code_at(secret, clock())
    assert sec.verify_totp(token, code).ok
    clock.advance(seconds=30)
    step_code = totp.code_at(secret, clock())
    assert sec.step_up(token, PASSWORD, step_code).ok
    raw = db_bytes(sec)
    for needle in (PASSWORD, "my wrong guess 123", token, secret, code, step_code):
        assert needle.encode() not in raw, needle
    stored = sec.db.query("SELECT totp_secret_enc FROM users")[0][0]
    assert stored.startswith("v1:")
