"""Server-side sessions: token never stored, idle timeout, absolute lifetime, revoke everywhere."""

from __future__ import annotations

import hashlib

from security.service import TOUCH_SECONDS
from tests.unit.security.security_support import CLIENT, PASSWORD, add_user, db_bytes, make_security


def signed_in(tmp_path, roles=("analyst",), **overrides):
    sec, clock = make_security(tmp_path, **overrides)
    add_user(sec, "dana", roles)
    assert sec.authenticate("dana", PASSWORD, CLIENT).ok
    return sec, clock, sec.create_session("dana", CLIENT)


def test_resolve_gives_the_principal_with_fresh_roles(tmp_path):
    sec, _, token = signed_in(tmp_path)
    p = sec.resolve(token)
    assert p is not None and p.username == "dana" and p.roles == {"analyst"}
    assert p.session_id and p.session_id not in token
    sec.users.set_roles("dana", ["manager"])
    assert sec.resolve(token).roles == {"manager"}, "role changes apply on the next run"


def test_token_is_stored_only_as_its_hash(tmp_path):
    sec, _, token = signed_in(tmp_path)
    assert len(token) >= 43
    stored = sec.db.query("SELECT token_hash FROM sessions")[0]["token_hash"]
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert token.encode() not in db_bytes(sec)


def test_unknown_and_empty_tokens_resolve_to_nobody(tmp_path):
    sec, _, token = signed_in(tmp_path)
    assert sec.resolve(None) is None
    assert sec.resolve("") is None
    assert sec.resolve(token + "x") is None


def test_idle_timeout_signs_out_every_tab(tmp_path):
    sec, clock, token = signed_in(tmp_path, session_idle_hours=24)
    clock.advance(hours=23)
    assert sec.resolve(token) is not None, "use within the idle time keeps it alive"
    clock.advance(hours=23)
    assert sec.resolve(token) is not None
    clock.advance(hours=24, seconds=1)
    assert sec.resolve(token) is None
    clock.advance(seconds=1)
    assert sec.resolve(token) is None, "another tab with the same token is out too"
    info = sec.sessions("dana", active_only=False)[0]
    assert info.revoke_reason == "idle" and info.revoked_at is not None


def test_automatic_refreshes_do_not_keep_an_idle_session_alive(tmp_path):
    sec, clock, token = signed_in(tmp_path, session_idle_hours=1)
    for _ in range(5):  # an open page refreshing itself every 10 minutes, nobody at the desk
        clock.advance(minutes=10)
        assert sec.resolve(token, touch=False) is not None
    clock.advance(minutes=10, seconds=1)
    assert sec.resolve(token, touch=False) is None, "refreshes are not activity"
    assert sec.sessions("dana", active_only=False)[0].revoke_reason == "idle"


def test_absolute_lifetime_ends_even_an_active_session(tmp_path):
    sec, clock, token = signed_in(tmp_path, session_idle_hours=24, session_max_hours=48)
    for _ in range(4):
        clock.advance(hours=12)
        assert sec.resolve(token) is not None
    clock.advance(seconds=1)
    assert sec.resolve(token) is None
    assert sec.sessions("dana", active_only=False)[0].revoke_reason == "expired"


def test_last_seen_is_written_at_most_once_a_minute(tmp_path):
    sec, clock, token = signed_in(tmp_path)
    first = sec.sessions("dana")[0].last_seen
    clock.advance(seconds=TOUCH_SECONDS - 1)
    sec.resolve(token)
    assert sec.sessions("dana")[0].last_seen == first
    clock.advance(seconds=1)
    sec.resolve(token)
    assert sec.sessions("dana")[0].last_seen == clock.now


def test_sign_out_revokes_in_every_tab_and_is_audited(tmp_path):
    sec, _, token = signed_in(tmp_path)
    other_tab = token
    assert sec.revoke(token)
    assert sec.resolve(other_tab) is None
    assert not sec.revoke(token), "revoking twice changes nothing"
    record = sec.audit.list(action="signout")[0]
    assert record.details == {"username": "dana", "reason": "sign-out"}


def test_revoke_all_and_disable_and_password_reset_end_every_session(tmp_path):
    sec, _, token = signed_in(tmp_path)
    second = sec.create_session("dana", "other-client")
    assert sec.revoke_all("dana", actor="admin") == 2
    assert sec.resolve(token) is None and sec.resolve(second) is None

    third = sec.create_session("dana", CLIENT)
    sec.users.reset_password("dana", "a brand new passphrase")
    assert sec.resolve(third) is None

    fourth = sec.create_session("dana", CLIENT)
    sec.users.disable("dana")
    assert sec.resolve(fourth) is None
    assert not sec.authenticate("dana", "a brand new passphrase", CLIENT).ok


def test_a_new_session_of_a_2fa_role_starts_unverified(tmp_path):
    sec, _, token = signed_in(tmp_path, roles=("finance",))
    p = sec.resolve(token)
    assert p.needs_mfa and p.mfa_pending
    assert not p.can_open("revenue") and not p.can("see_money")
