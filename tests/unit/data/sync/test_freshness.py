"""The extract's freshness facts and the sync-state record beside it (data/sync/freshness.py),
and the writer lock's "waiting" notice."""

from __future__ import annotations

import stat
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from data.extract.store import ExtractStore
from data.extract.writer_lock import ExtractBusyError, writer_lock
from data.sync.freshness import (
    Freshness,
    SyncAttempt,
    ago,
    assess,
    freshness,
    last_attempt,
    record_attempt,
    state_path,
)

T0 = datetime(2026, 12, 7, 12, 0)


def _attempt(path, minute: int, ok: bool, kind: str = "WarehouseUnreachableError", error="down"):
    at = T0 + timedelta(minutes=minute)
    return record_attempt(
        path,
        started_at=at,
        finished_at=at + timedelta(seconds=3),
        ok=ok,
        full=False,
        error_kind="" if ok else kind,
        error="" if ok else error,
    )


def test_attempts_count_failures_in_a_row_and_the_success_that_ends_them(tmp_path):
    path = tmp_path / "data" / "extract.duckdb"
    assert last_attempt(path) is None
    first = _attempt(path, 0, ok=False)
    assert (first.failures_in_a_row, first.failing_since) == (1, T0)
    second = _attempt(path, 5, ok=False, kind="SchemaDriftError", error="x" * 2000)
    assert (second.failures_in_a_row, second.failing_since) == (2, T0)
    assert len(second.error) == 500, "a long message is cut, not stored whole"
    recovered = _attempt(path, 10, ok=True)
    assert recovered.outcome == "ok" and recovered.recovered_after == 2
    assert recovered.failures_in_a_row == 0 and recovered.failing_since is None
    again = _attempt(path, 15, ok=False)
    assert (again.failures_in_a_row, again.failing_since) == (1, T0 + timedelta(minutes=15))
    assert last_attempt(path) == again
    mode = stat.S_IMODE(state_path(path).stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert [p.name for p in path.parent.iterdir()] == [state_path(path).name], "no temp files"


def test_an_unreadable_record_is_no_record(tmp_path):
    path = tmp_path / "extract.duckdb"
    state_path(path).write_text("{not json")
    assert last_attempt(path) is None
    assert _attempt(path, 0, ok=False).failures_in_a_row == 1


def test_freshness_of_the_demo_extract_names_its_newest_view(demo_store):
    facts = freshness(demo_store)
    assert facts.source == "demo"
    cursor = demo_store.cursor()
    (as_of,) = cursor.execute("SELECT value FROM extract_meta WHERE key = 'as_of'").fetchone()
    assert facts.as_of == datetime.fromisoformat(as_of)
    # The newest view the metrics count: a real session, on the last day the derived views hold,
    # not after the extract's clock.
    assert facts.data_to is not None and facts.data_to <= facts.as_of
    (found,) = cursor.execute(
        "SELECT count(*) FROM fact_view WHERE started_at = ?", [facts.data_to]
    ).fetchone()
    assert found >= 1
    (last_day,) = cursor.execute("SELECT max(day) FROM dv_view").fetchone()
    assert facts.data_to.date() == last_day
    assert facts.last_sync_at is None and facts.last_attempt is None
    assert not facts.last_failed and facts.reason == ""


def test_freshness_without_an_extract_still_says_why_the_last_sync_failed(tmp_path):
    store = ExtractStore(tmp_path / "extract.duckdb", "f-test-key-0123456789-ABCDEFGHIJ-klmnop")
    _attempt(store.path, 0, ok=False, error="could not connect to db.internal:5439")
    facts = freshness(store)
    assert facts.source == "none" and facts.data_to is None
    assert facts.last_failed
    # Words for every user; the host stays in the admin's record.
    assert facts.reason == "the warehouse could not be reached"
    assert "db.internal" not in facts.reason
    assert "db.internal" in facts.last_attempt.error
    _attempt(store.path, 1, ok=False, kind="SomethingNew")
    assert freshness(store).reason == "the sync failed"


def test_the_writer_lock_says_once_that_it_waits_then_gives_up(tmp_path):
    path = tmp_path / "extract.duckdb"
    held, release = threading.Event(), threading.Event()

    def hold():
        with writer_lock(path):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5)
    notices: list[str] = []
    try:
        with (
            pytest.raises(ExtractBusyError, match="try again"),
            writer_lock(path, wait_seconds=0.5, on_wait=lambda: notices.append("waiting")),
        ):
            pass
        assert notices == ["waiting"]
        # Without a wait it refuses at once and says nothing about waiting.
        with pytest.raises(ExtractBusyError), writer_lock(path, on_wait=notices.append):
            pass
        assert notices == ["waiting"]
    finally:
        release.set()
        holder.join()
    with writer_lock(path, wait_seconds=0.5, on_wait=lambda: notices.append("again")):
        pass
    assert notices == ["waiting"], "a free lock is taken without a notice"


# --- the verdict a page shows ---------------------------------------------------------------
NOW = datetime(2026, 12, 7, 12, 30)
HALF_HOUR = timedelta(minutes=30)


def _facts(source="warehouse", synced=timedelta(minutes=3), attempt=None) -> Freshness:
    return Freshness(
        source=source,
        data_to=NOW - timedelta(minutes=10),
        as_of=NOW,
        last_sync_at=NOW - synced if synced is not None else None,
        last_full_sync_at=None,
        last_attempt=attempt,
    )


def _failed(minutes_ago: int) -> SyncAttempt:
    at = NOW - timedelta(minutes=minutes_ago)
    return SyncAttempt(
        at, at, "failed", False, "WarehouseUnreachableError", "db.internal:5439 refused", 1, at
    )


def test_a_recent_sync_is_fresh_and_says_so():
    verdict = assess(_facts(), now=NOW, stale_after=HALF_HOUR)
    assert not verdict.stale
    assert verdict.headline(NOW) == "Data to 12:20 UTC · synced 3 min ago"


def test_an_old_sync_is_stale_with_how_long():
    verdict = assess(_facts(synced=timedelta(hours=2, minutes=5)), now=NOW, stale_after=HALF_HOUR)
    assert verdict.stale
    assert verdict.reason == "no sync for 2 h 5 min (expected within 30 min)"


def test_a_failed_latest_attempt_is_stale_even_right_after_a_success():
    verdict = assess(_facts(attempt=_failed(1)), now=NOW, stale_after=HALF_HOUR)
    assert verdict.stale
    assert verdict.reason.startswith(
        "the last sync attempt failed at 12:29 UTC (the warehouse could not be reached)"
    )
    assert "the data is from the sync 3 min ago" in verdict.reason
    assert "db.internal" not in verdict.reason, "hosts are for admins"
    assert "db.internal" in verdict.failure_detail


def test_never_synced_is_stale_and_demo_never_is():
    assert assess(_facts(synced=None), now=NOW, stale_after=HALF_HOUR).reason == (
        "no sync has finished yet"
    )
    demo = assess(_facts("demo", synced=None), now=NOW, stale_after=HALF_HOUR)
    assert not demo.stale and demo.headline(NOW).endswith("demo data")


def test_times_in_another_zone_or_day_read_as_utc():
    facts = _facts()
    zoned = Freshness(
        facts.source,
        datetime(2026, 12, 5, 23, 59, tzinfo=UTC),
        facts.as_of,
        datetime(2026, 12, 7, 13, 27, tzinfo=timezone(timedelta(hours=1))),
        None,
        None,
    )
    verdict = assess(zoned, now=NOW, stale_after=HALF_HOUR)
    assert verdict.headline(NOW) == "Data to 5 Dec 23:59 UTC · synced 3 min ago"


def test_ago_reads_naturally():
    assert ago(NOW, NOW) == "just now"
    assert ago(NOW - timedelta(minutes=59), NOW) == "59 min ago"
    assert ago(NOW - timedelta(hours=3), NOW) == "3 h ago"
    assert ago(NOW - timedelta(days=3), NOW) == "3 days ago"
