"""Findings of the hostile review (SECURITY.md #12, #17, #18): lockout abuse, step-up for every
change that grants access, the throttled password check, the keyed audit chain and its anchors,
the client address behind proxies, and low-entropy keys."""

from __future__ import annotations

import pytest

from security import totp
from security.account_admin import AccountAdmin
from security.client_address import ProxySettingError, client_address, parse_trusted_proxies
from security.permissions import AccessDenied
from settings import SettingsError, key_entropy_bits
from tests.unit.security.security_support import (
    CLIENT,
    PASSWORD,
    add_user,
    make_security,
    rewind_audit_sequence,
    tamper,
)

WRONG = "wrong password!"


def _rotating_attack(sec, username: str, attempts: int) -> list[str]:
    """Wrong passwords for ``username``, each from another client (another User-Agent)."""
    return [
        sec.authenticate(username, WRONG, f"attacker-agent-{i}").status for i in range(attempts)
    ]


# --- lockout abuse (#17) ----------------------------------------------------------------------
def test_failures_from_elsewhere_never_lock_the_owner_out_of_a_known_device(tmp_path):
    sec, _ = make_security(tmp_path)
    add_user(sec, "admin", roles=("admin",))
    device = sec.issue_device_token("admin")
    statuses = _rotating_attack(sec, "admin", 12)
    assert statuses[:5] == ["invalid"] * 5 and set(statuses[5:]) == {"locked"}
    # Locked for unknown devices, the attacker's and any new one, even with the right password.
    assert sec.authenticate("admin", PASSWORD, "attacker-agent-99").status == "locked"
    assert sec.authenticate("admin", PASSWORD, "a-new-laptop").status == "locked"
    # The owner's browser, which signed in before, still gets in.
    result = sec.authenticate("admin", PASSWORD, "owners-browser", device_token=device)
    assert result.ok
    ok = sec.audit.list(action="signin.ok")[0]
    assert ok.details["device"].startswith("device-")


def test_a_device_has_its_own_lock_and_a_token_counts_only_for_its_account(tmp_path):
    sec, _ = make_security(tmp_path, login_max_failures=3)
    add_user(sec, "dana")
    add_user(sec, "erin")
    device = sec.issue_device_token("dana")
    for _ in range(3):
        assert sec.authenticate("dana", WRONG, CLIENT, device_token=device).status == "invalid"
    assert sec.authenticate("dana", PASSWORD, CLIENT, device_token=device).status == "locked"
    # The device's lock is not the account's: an unknown device still signs in.
    assert sec.authenticate("dana", PASSWORD, "elsewhere").ok
    # Dana's device token means nothing for Erin: Erin's unknown-device counter counts it.
    for _ in range(3):
        sec.authenticate("erin", WRONG, f"c{_}", device_token=device)
    assert sec.is_locked("signin_user", "erin")
    # Garbage tokens are unknown devices, not errors.
    assert sec.authenticate("dana", PASSWORD, "x", device_token="x" * 5000).ok


def test_a_password_reset_forgets_the_accounts_devices(tmp_path):
    sec, _ = make_security(tmp_path)
    add_user(sec, "dana")
    device = sec.issue_device_token("dana")
    sec.users.reset_password("dana", "another long password 42")
    _rotating_attack(sec, "dana", 6)
    result = sec.authenticate("dana", "another long password 42", CLIENT, device_token=device)
    assert result.status == "locked"


def test_an_admin_sees_and_lifts_locks(tmp_path):
    sec, _ = make_security(tmp_path)
    add_user(sec, "dana")
    _rotating_attack(sec, "dana", 6)
    locks = sec.active_locks()
    assert [(lock.kind, lock.key, lock.username) for lock in locks] == [
        ("signin_user", "dana", "dana")
    ]
    assert sec.lift_lock("signin_user", "dana", actor="admin", client="admin-pc")
    assert not sec.lift_lock("signin_user", "dana", actor="admin"), "nothing left to lift"
    assert sec.active_locks() == []
    assert sec.authenticate("dana", PASSWORD, "anywhere").ok
    record = sec.audit.list(action="signin.unlock")[0]
    assert (record.actor, record.target, record.client) == ("admin", "signin_user:dana", "admin-pc")


# --- the My account password check ------------------------------------------------------------
def test_the_current_password_check_is_throttled_and_audited(tmp_path):
    sec, _ = make_security(tmp_path, login_max_failures=3)
    add_user(sec, "dana")
    token = sec.create_session("dana", CLIENT)
    for _ in range(3):
        assert sec.check_password(token, "a wrong guess 1").status == "invalid"
    assert sec.check_password(token, PASSWORD).status == "locked", "even the right one, now"
    failures = sec.audit.list(action="signin.failure", actor="dana")
    assert len(failures) == 4
    assert {r.details["reason"] for r in failures} == {"wrong password", "re-authentication locked"}
    assert sec.audit.list(action="signin.lock")[0].details["kind"] == "session"


def test_the_password_check_needs_a_live_session(tmp_path):
    sec, _ = make_security(tmp_path)
    add_user(sec, "dana")
    assert sec.check_password("no-such-token", PASSWORD).status == "no_session"


# --- step-up for account administration (#18) -------------------------------------------------
def _admin_session(tmp_path):
    sec, clock = make_security(tmp_path)
    add_user(sec, "root", roles=("admin",))
    add_user(sec, "dana", roles=("creator",))
    token = sec.create_session("root", CLIENT)
    enrolment = sec.begin_totp_enrolment(token)
    assert sec.confirm_totp_enrolment(token, totp.code_at(enrolment.secret, clock())).ok
    clock.advance(seconds=30)
    return sec, clock, token, enrolment.secret


CHANGES = {
    "add an administrator": lambda a: a.add("mallory", PASSWORD, ["admin"]),
    "change roles": lambda a: a.set_roles("dana", ["admin"]),
    "widen a scope": lambda a: a.set_creator_scope("dana", [1, 2, 3]),
    "enable": lambda a: a.enable("dana"),
    "disable": lambda a: a.disable("dana"),
    "reset a password": lambda a: a.reset_password("dana", "taken over password 1"),
    "reset 2FA": lambda a: a.reset_2fa("dana"),
    "end sessions": lambda a: a.end_sessions("dana"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_account_change_needs_a_fresh_step_up(tmp_path, change):
    sec, _, token, _ = _admin_session(tmp_path)
    before = sec.users.get("dana")
    records_before = len(sec.audit.list())
    with pytest.raises(AccessDenied) as denied:
        CHANGES[change](AccountAdmin(sec, sec.resolve(token), CLIENT))
    assert denied.value.reason == "step_up_required"
    assert sec.users.get("dana") == before
    assert sec.users.get("mallory") is None
    assert len(sec.audit.list()) == records_before, "nothing happened, nothing to audit"


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_an_account_change_after_step_up_cites_it_in_the_audit_log(tmp_path, change):
    sec, clock, token, secret = _admin_session(tmp_path)
    assert sec.step_up(token, PASSWORD, totp.code_at(secret, clock())).ok
    step_up_id = sec.audit.list(action="stepup")[0].id
    principal = sec.resolve(token)
    assert principal.step_up_id == step_up_id
    CHANGES[change](AccountAdmin(sec, principal, CLIENT))
    newest = sec.audit.list()[0]
    assert newest.actor == "root" and newest.client == CLIENT
    assert newest.details["step_up"] == step_up_id


def test_a_step_up_expires(tmp_path):
    sec, clock, token, secret = _admin_session(tmp_path)
    assert sec.step_up(token, PASSWORD, totp.code_at(secret, clock())).ok
    clock.advance(minutes=sec.settings.stepup_minutes + 1)
    with pytest.raises(AccessDenied):
        AccountAdmin(sec, sec.resolve(token), CLIENT).reset_2fa("dana")


def test_an_analyst_cannot_administer_accounts_even_with_a_session(tmp_path):
    sec, _ = make_security(tmp_path)
    add_user(sec, "dana")
    token = sec.create_session("dana", CLIENT)
    with pytest.raises(AccessDenied) as denied:
        AccountAdmin(sec, sec.resolve(token), CLIENT).add("eve", PASSWORD, ["admin"])
    assert denied.value.reason == "not_permitted"


# --- the keyed audit chain and its anchors (#12) ----------------------------------------------
def test_the_chain_is_keyed_and_anchors_catch_a_rewritten_tail(tmp_path):
    sec, _ = make_security(tmp_path)
    add_user(sec, "dana")
    sec.authenticate("dana", WRONG, CLIENT)
    anchor = sec.audit.head()
    assert anchor[0] == 2 and len(anchor[1]) == 64
    assert sec.audit.verify_chain() == (True, None)
    assert sec.audit.verify_anchors([anchor]) is None
    sec.authenticate("dana", PASSWORD, CLIENT)
    assert sec.audit.verify_anchors([anchor]) is None, "a grown log still holds its anchors"
    # Someone with the key and the file rewrites history from record 2 on: the chain verifies,
    # the anchor kept elsewhere does not.
    from security.audit import AuditLog

    tamper(sec, "audit_no_delete").execute("DELETE FROM audit WHERE id >= 2")
    rewind_audit_sequence(sec, 1)
    AuditLog(sec.db, key=sec.settings.secret("audit_key")).record(actor="x", action="forged")
    assert sec.audit.verify_chain() == (True, None)
    assert sec.audit.verify_anchors([anchor]) == 2


def test_a_keyed_chain_does_not_verify_without_its_key(tmp_path):
    from security.audit import AuditLog

    sec, _ = make_security(tmp_path)
    add_user(sec, "dana")
    assert AuditLog(sec.db).verify_chain() == (False, 1)
    assert AuditLog(sec.db, key="another-key-" + "0123456789abcdefghij").verify_chain() == (
        False,
        1,
    )


# --- client address behind proxies ------------------------------------------------------------
PROXIES = parse_trusted_proxies("127.0.0.1, 10.0.0.0/8, ::1")


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not from a proxy: header ignored
        ("127.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("127.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the client's claim is ignored
        ("127.0.0.1", "198.51.100.1, 10.1.2.3", "198.51.100.1"),  # two trusted hops
        ("127.0.0.1", "10.1.2.3, 10.2.3.4", "10.1.2.3"),  # only proxies: the farthest one
        ("127.0.0.1", "junk, 198.51.100.1", "198.51.100.1"),
        ("127.0.0.1", "198.51.100.1, junk", "127.0.0.1"),  # a bad hop: nothing left of it
        ("127.0.0.1", "[2001:db8::7]:443", "2001:db8::7"),
        ("127.0.0.1", "198.51.100.1:5555", "198.51.100.1"),
        (None, "198.51.100.1", "local"),
    ],
)
def test_the_client_address_is_read_from_trusted_proxies_only(peer, forwarded, expected):
    assert client_address(peer, forwarded, PROXIES) == expected


def test_no_trusted_proxies_means_the_header_is_ignored():
    assert client_address("127.0.0.1", "198.51.100.1", ()) == "127.0.0.1"


def test_a_bad_trusted_proxy_entry_is_named():
    with pytest.raises(ProxySettingError, match=r"'10\.0\.0\.300'"):
        parse_trusted_proxies("127.0.0.1, 10.0.0.300")


# --- key strength -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "weak", ["a" * 32, "ab" * 20, "0123456789" * 4, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"]
)
def test_low_entropy_keys_are_refused(tmp_path, weak):
    from tests.unit.security.security_support import make_settings

    settings = make_settings(tmp_path, cookie_key=weak)
    with pytest.raises(SettingsError, match="SPOTLIGHT_COOKIE_KEY"):
        settings.secret("cookie_key")


def test_random_keys_pass_the_entropy_check():
    import secrets

    for _ in range(50):
        assert key_entropy_bits(secrets.token_hex(16)) >= 64
        assert key_entropy_bits(secrets.token_urlsafe(32)) >= 64
