"""When data counts as stale, and what the line says (security/freshness.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from security.audit import FAILURE, OK
from security.freshness import ago, assess, freshness
from tests.unit.security.security_support import make_security

NOW = datetime(2026, 12, 7, 12, 30)
HALF_HOUR = timedelta(minutes=30)


def _assess(**overrides):
    facts = {
        "demo": False,
        "data_to": NOW - timedelta(minutes=10),
        "synced_at": NOW - timedelta(minutes=3),
        "last_attempt_at": NOW - timedelta(minutes=3),
        "last_attempt_failed": False,
        "failure_detail": "",
        "now": NOW,
        "stale_after": HALF_HOUR,
    }
    return assess(**{**facts, **overrides})


def test_a_recent_sync_is_fresh_and_says_so():
    state = _assess()
    assert not state.stale
    assert state.headline(NOW) == "Data to 12:20 UTC · synced 3 min ago"


def test_an_old_sync_is_stale_with_how_long():
    state = _assess(synced_at=NOW - timedelta(hours=2, minutes=5), last_attempt_at=None)
    assert state.stale
    assert state.reason == "no sync for 2 h 5 min (expected within 30 min)"


def test_a_failure_after_the_last_success_is_stale_even_when_recent():
    state = _assess(
        last_attempt_at=NOW - timedelta(minutes=1), last_attempt_failed=True, failure_detail="X"
    )
    assert state.stale and state.reason.startswith("the last sync attempt failed at 12:29 UTC")
    assert "the data is from the sync 3 min ago" in state.reason


def test_a_failure_before_the_last_success_is_history():
    state = _assess(last_attempt_at=NOW - timedelta(minutes=9), last_attempt_failed=True)
    assert not state.stale


def test_never_synced_is_stale_and_demo_never_is():
    assert _assess(synced_at=None, last_attempt_at=None).reason == "no sync has finished yet"
    demo = _assess(demo=True, synced_at=None, last_attempt_at=None)
    assert not demo.stale and demo.headline(NOW).endswith("demo data")


def test_data_from_another_day_names_the_day():
    state = _assess(data_to=datetime(2026, 12, 5, 23, 59))
    assert state.headline(NOW).startswith("Data to 5 Dec 23:59 UTC")


def test_ago_reads_naturally():
    assert ago(NOW, NOW) == "just now"
    assert ago(NOW - timedelta(minutes=59), NOW) == "59 min ago"
    assert ago(NOW - timedelta(hours=3), NOW) == "3 h ago"
    assert ago(NOW - timedelta(days=3), NOW) == "3 days ago"


def test_the_newest_sync_attempt_comes_from_the_audit_log(tmp_path):
    sec, clock = make_security(tmp_path)
    now = clock.now.replace(tzinfo=None)
    synced = (now - timedelta(minutes=5)).isoformat()
    sec.audit.record(actor="cli", action="sync", target="extract", outcome=OK, details={})
    fresh = freshness(
        sec.audit, demo=False, data_to=now, last_sync_at=synced, now=now, stale_after=HALF_HOUR
    )
    assert not fresh.stale
    clock.advance(minutes=1)
    sec.audit.record(
        actor="cli",
        action="sync",
        target="extract",
        outcome=FAILURE,
        details={"error_kind": "OperationalError", "error": "connection refused"},
    )
    later = clock.now.replace(tzinfo=None)
    stale = freshness(
        sec.audit, demo=False, data_to=now, last_sync_at=synced, now=later, stale_after=HALF_HOUR
    )
    assert stale.stale and stale.failure_detail == "OperationalError: connection refused"
