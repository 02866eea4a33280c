"""Sign-in: one message for every failure, throttles per account and per client with a lock that
lifts, exact counters under concurrent threads and processes, sign-in alerts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from security.alerts import FAILED_SIGNINS, NEW_CLIENT
from security.service import SIGN_IN_FAILED
from settings import PROJECT_ROOT
from tests.unit.security.security_support import (
    CLIENT,
    PASSWORD,
    add_user,
    hammer_failed_signins,
    make_security,
)


def test_ok_wrong_password_and_unknown_user(tmp_path):
    sec, _ = make_security(tmp_path)
    add_user(sec, "dana", ("analyst",))
    ok = sec.authenticate("Dana ", PASSWORD, CLIENT)
    assert ok.ok and ok.username == "dana" and not ok.needs_mfa
    wrong = sec.authenticate("dana", "not the password", CLIENT)
    unknown = sec.authenticate("nobody", PASSWORD, CLIENT)
    assert wrong.status == unknown.status == "invalid"
    assert wrong.message == unknown.message == SIGN_IN_FAILED
    assert wrong.username is None and unknown.username is None
    outcomes = [(r.action, r.outcome) for r in sec.audit.list(action="signin.", newest_first=False)]
    assert outcomes == [
        ("signin.ok", "ok"),
        ("signin.failure", "failure"),
        ("signin.failure", "failure"),
    ]
    reasons = [r.details["reason"] for r in sec.audit.list(action="signin.failure")]
    assert sorted(reasons) == ["unknown user", "wrong password"], "the admin's log tells them apart"


def test_2fa_roles_are_flagged(tmp_path):
    sec, _ = make_security(tmp_path)
    add_user(sec, "fin", ("finance",))
    result = sec.authenticate("fin", PASSWORD, CLIENT)
    assert result.ok and result.needs_mfa and not result.mfa_enrolled


def test_disabled_account_fails_like_a_wrong_password(tmp_path):
    sec, _ = make_security(tmp_path)
    add_user(sec, "dana")
    sec.users.disable("dana")
    result = sec.authenticate("dana", PASSWORD, CLIENT)
    assert result.status == "invalid" and result.message == SIGN_IN_FAILED


def test_unknown_user_costs_about_as_much_as_a_wrong_password(tmp_path):
    sec, _ = make_security(tmp_path, login_max_failures=1000, login_client_max_failures=1000)
    sec.users.bcrypt_rounds = 8  # slow enough that bcrypt dominates the timing
    sec.users._dummy_hash = None
    add_user(sec, "dana")
    sec.authenticate("ghost", "warm-up", CLIENT)

    times: dict[str, list[float]] = {"dana": [], "ghost": []}
    for _ in range(7):
        # Taken in turns, so that a burst of other load on the machine slows both alike.
        for name, taken in times.items():
            start = time.perf_counter()
            sec.authenticate(name, "not the password", CLIENT)
            taken.append(time.perf_counter() - start)
    # The fastest run is the least disturbed by other load on the machine.
    known, unknown = min(times["dana"]), min(times["ghost"])
    assert 0.4 < unknown / known < 2.5, (known, unknown)


def test_account_locks_after_n_failures_and_lifts_after_the_lock_time(tmp_path):
    sec, clock = make_security(tmp_path, login_max_failures=3, login_lock_minutes=15)
    add_user(sec, "dana")
    statuses = [sec.authenticate("dana", "wrong password!", CLIENT).status for _ in range(3)]
    assert statuses == ["invalid"] * 3
    locked = sec.authenticate("dana", PASSWORD, CLIENT)
    assert locked.status == "locked" and locked.message == SIGN_IN_FAILED
    assert len(sec.audit.list(action="signin.lock")) == 1
    clock.advance(minutes=14)
    assert sec.authenticate("dana", PASSWORD, CLIENT).status == "locked"
    clock.advance(minutes=1, seconds=1)
    assert sec.authenticate("dana", PASSWORD, CLIENT).ok
    assert sec.failure_count("signin_user", "dana") == 0


def test_unknown_users_lock_the_same_way(tmp_path):
    sec, _ = make_security(tmp_path, login_max_failures=2)
    statuses = [sec.authenticate("ghost", "x" * 12, CLIENT).status for _ in range(3)]
    assert statuses == ["invalid", "invalid", "locked"]


def test_success_resets_the_account_counter(tmp_path):
    sec, _ = make_security(tmp_path, login_max_failures=3)
    add_user(sec, "dana")
    for _ in range(2):
        sec.authenticate("dana", "wrong password!", CLIENT)
    assert sec.authenticate("dana", PASSWORD, CLIENT).ok
    for _ in range(2):
        assert sec.authenticate("dana", "wrong password!", CLIENT).status == "invalid"
    assert sec.authenticate("dana", PASSWORD, CLIENT).ok


def test_per_client_throttle_spans_usernames_and_spares_other_clients(tmp_path):
    sec, clock = make_security(
        tmp_path, login_max_failures=100, login_client_max_failures=4, login_lock_minutes=10
    )
    add_user(sec, "dana")
    for i in range(4):
        assert sec.authenticate(f"user{i}", "wrong password!", "203.0.113.9").status == "invalid"
    assert sec.authenticate("dana", PASSWORD, "203.0.113.9").status == "locked"
    assert sec.authenticate("dana", PASSWORD, "192.0.2.1").ok
    clock.advance(minutes=10, seconds=1)
    assert sec.authenticate("dana", PASSWORD, "203.0.113.9").ok


def test_counters_are_exact_under_concurrent_threads(tmp_path):
    limits = {"login_max_failures": 10_000, "login_client_max_failures": 10_000}
    sec, _ = make_security(tmp_path, **limits)
    add_user(sec, "dana")
    threads, per_thread = 8, 15
    with ThreadPoolExecutor(threads) as pool:
        results = list(
            pool.map(
                lambda _: hammer_failed_signins(str(tmp_path), limits, "dana", per_thread, CLIENT),
                range(threads),
            )
        )
    total = threads * per_thread
    assert sum(len(r) for r in results) == total
    assert sec.failure_count("signin_user", "dana") == total
    assert sec.failure_count("signin_client", CLIENT) == total
    assert len(sec.audit.list(action="signin.failure", limit=10_000)) == total
    assert sec.audit.verify_chain() == (True, None)


def test_lock_is_exact_under_concurrent_threads(tmp_path):
    limits = {"login_max_failures": 5, "login_client_max_failures": 10_000}
    sec, _ = make_security(tmp_path, **limits)
    add_user(sec, "dana")
    with ThreadPoolExecutor(10) as pool:
        results = list(
            pool.map(
                lambda _: hammer_failed_signins(str(tmp_path), limits, "dana", 3, CLIENT),
                range(10),
            )
        )
    statuses = [s for r in results for s in r]
    assert statuses.count("invalid") == 5, "exactly max_failures attempts are evaluated"
    assert statuses.count("locked") == 25


def test_counters_are_exact_under_concurrent_processes(tmp_path):
    limits = {"login_max_failures": 10_000, "login_client_max_failures": 10_000}
    sec, _ = make_security(tmp_path, **limits)
    add_user(sec, "dana")
    processes, per_process = 4, 15
    # Separate interpreters started with an explicit command, not multiprocessing's spawn: spawn
    # re-imports the parent's __main__, which after an AppTest in the same worker is app.py.
    script = (
        "import json, sys\n"
        "from tests.unit.security.security_support import hammer_failed_signins\n"
        "print(json.dumps(hammer_failed_signins(*json.loads(sys.argv[1]))))"
    )
    arguments = json.dumps([str(tmp_path), limits, "dana", per_process, CLIENT])
    running = [
        subprocess.Popen(
            [sys.executable, "-c", script, arguments],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    results = [json.loads(proc.communicate(timeout=120)[0]) for proc in running]
    assert all(proc.returncode == 0 for proc in running)
    total = processes * per_process
    assert [s for r in results for s in r] == ["invalid"] * total
    assert sec.failure_count("signin_user", "dana") == total
    assert len(sec.audit.list(action="signin.failure", limit=10_000)) == total
    assert sec.audit.verify_chain() == (True, None)


def test_burst_of_failed_signins_raises_one_alert(tmp_path):
    sec, _ = make_security(
        tmp_path,
        alert_failed_signins=5,
        alert_failed_signins_window_minutes=10,
        login_max_failures=100,
        login_client_max_failures=100,
    )
    for i in range(4):
        sec.authenticate(f"user{i}", "wrong password!", CLIENT)
    assert not sec.alerts.list()
    for i in range(6):
        sec.authenticate(f"other{i}", "wrong password!", CLIENT)
    alerts = sec.alerts.list()
    assert [a.kind for a in alerts] == [FAILED_SIGNINS]
    assert alerts[0].severity == "critical"


def test_failures_outside_the_window_do_not_add_up_to_an_alert(tmp_path):
    sec, clock = make_security(
        tmp_path,
        alert_failed_signins=4,
        alert_failed_signins_window_minutes=10,
        login_max_failures=100,
    )
    for i in range(6):
        sec.authenticate(f"user{i}", "wrong password!", CLIENT)
        clock.advance(minutes=4)
    assert not sec.alerts.list()


def test_new_client_alert_for_privileged_roles_only(tmp_path):
    sec, _ = make_security(tmp_path)
    add_user(sec, "fin", ("finance",))
    add_user(sec, "dana", ("analyst",))
    for name in ("fin", "dana"):
        assert sec.authenticate(name, PASSWORD, "client-a").ok
        assert sec.authenticate(name, PASSWORD, "client-a").ok
    assert not sec.alerts.list(), "the first client is the baseline, a known one is quiet"
    assert sec.authenticate("dana", PASSWORD, "client-b").ok
    assert not sec.alerts.list(), "analyst is not a privileged role"
    assert sec.authenticate("fin", PASSWORD, "client-b").ok
    alerts = sec.alerts.list()
    assert [a.kind for a in alerts] == [NEW_CLIENT]
    assert alerts[0].details["username"] == "fin"
