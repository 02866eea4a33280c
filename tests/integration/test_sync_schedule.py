"""``cli.py sync --every`` against PostgreSQL playing Redshift, with the real clock: a committed
row reaches the extract within an interval and a sync; a failing warehouse raises one alert for
many failed attempts, the sync state says why, and its recovery is recorded; two schedulers
started at once never write the extract at the same time."""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from data.extract.store import ExtractStore
from data.extract.writer_lock import writer_lock
from data.sync.freshness import freshness, last_attempt
from security.alerts import SYNC_FAILED, SYNC_RECOVERED
from security.operations import SYNC_BUSY_ACTION
from security.service import Security
from security.sync_schedule import RECOVERED_ACTION
from settings import load_settings
from tests.integration.conftest import EXTRACT_KEY, PgWarehouse
from tests.integration.test_sync_trust import _cli_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, wh: PgWarehouse, **values: str) -> dict[str, str]:
    url = f"{wh.dsn}?sslmode=disable&schema={wh.schema}"
    return _cli_env(tmp_path, SPOTLIGHT_WAREHOUSE_URL=url, **values)


class Scheduler:
    """``cli.py sync --every …`` in a process of its own; its output lines kept in a file."""

    def __init__(self, env: dict[str, str], log: Path, *args: str):
        self.log = log
        self.handle = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "cli.py", "sync", *args],
            cwd=ROOT,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as systemd stops it: it finishes the run in flight and exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.handle.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.handle.close()


@pytest.fixture
def schedulers() -> Iterator[list[Scheduler]]:
    started: list[Scheduler] = []
    yield started
    for s in started:
        s.kill()


def _wait_for(what: str, check: Callable[[], Any], timeout: float, procs=()) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        for p in procs:
            assert p.proc.poll() is None, f"the scheduler exited: {p.lines()[-10:]}"
        time.sleep(0.1)
    logs = [line for p in procs for line in p.lines()[-15:]]
    raise AssertionError(f"timed out waiting for {what}; scheduler output: {logs}")


def _security(env: dict[str, str], tmp_path: Path) -> Security:
    return Security(load_settings(env=env, secrets_path=tmp_path / "none.toml"))


def _synced_ok(store: ExtractStore) -> bool:
    attempt = last_attempt(store.path)
    return store.exists() and attempt is not None and attempt.outcome == "ok"


def _insert_view(wh: PgWarehouse) -> tuple[int, datetime]:
    """A new view session committed now (started a minute ago); its id and start."""
    [(view_id, started_at)] = wh.sql(
        "INSERT INTO fact_view (view_id, viewer_key, title_id, started_at, watch_seconds, "
        "device, country, tz_offset_min, completed, updated_at) "
        "SELECT (SELECT max(view_id) + 1 FROM fact_view), viewer_key, title_id, "
        "date_trunc('second', now() AT TIME ZONE 'UTC') - interval '1 minute', 600, device, "
        "country, tz_offset_min, FALSE, now() AT TIME ZONE 'UTC' "
        "FROM fact_view WHERE watch_seconds BETWEEN 60 AND 3600 ORDER BY view_id LIMIT 1 "
        "RETURNING view_id, started_at"
    )
    return int(view_id), started_at


def test_a_committed_row_reaches_the_extract_within_an_interval(loaded, tmp_path, schedulers):
    env = _env(tmp_path, loaded)
    store = ExtractStore(tmp_path / "data" / "extract.duckdb", EXTRACT_KEY)
    scheduler = Scheduler(env, tmp_path / "scheduler.log", "--every", "1s")
    schedulers.append(scheduler)
    _wait_for("the first sync", lambda: _synced_ok(store), 90, [scheduler])

    view_id, started_at = _insert_view(loaded)
    committed = time.monotonic()

    def arrived() -> bool:
        found = store.cursor().execute(
            "SELECT count(*) FROM fact_view WHERE view_id = ?", [view_id]
        )
        return found.fetchone()[0] == 1

    _wait_for("the new row in the extract", arrived, 60, [scheduler])
    latency = time.monotonic() - committed
    facts = freshness(store)
    assert facts.source == "warehouse"
    # The extract's data watermark is the new view: the newest one anywhere.
    assert facts.data_to == started_at
    assert facts.last_sync_at is not None and facts.last_full_sync_at is not None
    assert not facts.last_failed
    # An interval (1 s) plus an incremental sync of the small demo platform; generous for a
    # loaded 2-core machine.
    assert latency < 30, latency

    assert scheduler.stop() == 0
    lines = scheduler.lines()
    assert "syncing every 1s, a full pass when the last is 1d old" in lines[0]
    assert sum("sync ok (incremental)" in line for line in lines) >= 1
    assert "sync ok (full)" in "\n".join(lines), "no full sync before: the first run is one"
    assert "SIGTERM: stopping after the run in flight" in "\n".join(lines)
    assert lines[-1].split("] ", 1)[1].startswith("stopped after")
    print(f"row committed -> in the extract: {latency:.2f} s")


def test_a_failing_warehouse_alerts_once_and_its_recovery_is_recorded(loaded, tmp_path, schedulers):
    env = _env(tmp_path, loaded, SPOTLIGHT_SYNC_BACKOFF_MAX="2s")
    store = ExtractStore(tmp_path / "data" / "extract.duckdb", EXTRACT_KEY)
    scheduler = Scheduler(env, tmp_path / "scheduler.log", "--every", "1s")
    schedulers.append(scheduler)
    _wait_for("the first sync", lambda: _synced_ok(store), 90, [scheduler])
    generation = store.generation()

    # The table the sync reads disappears (a botched migration at the source).
    loaded.sql("ALTER TABLE fact_view RENAME TO fact_view_moved")

    def failures() -> int:
        attempt = last_attempt(store.path)
        return attempt.failures_in_a_row if attempt and attempt.outcome == "failed" else 0

    _wait_for("four failed attempts in a row", lambda: failures() >= 4, 60, [scheduler])
    facts = freshness(store)
    assert facts.last_failed
    assert facts.last_attempt.error_kind == "SchemaDriftError"
    assert "fact_view" in facts.last_attempt.error
    assert facts.reason == "the warehouse's tables changed shape"
    assert store.generation() == generation, "a failed sync leaves the live extract as it was"

    security = _security(env, tmp_path)
    failed_runs = [r for r in security.audit.list(action="sync") if r.outcome == "failure"]
    assert len(failed_runs) >= 4, "every attempt is audited"
    assert [a.kind for a in security.alerts.list()] == [SYNC_FAILED], "one alert, not one each"

    loaded.sql("ALTER TABLE fact_view_moved RENAME TO fact_view")
    _wait_for(
        "the recovery",
        lambda: [a for a in security.alerts.list() if a.kind == SYNC_RECOVERED],
        60,
        [scheduler],
    )
    assert scheduler.stop() == 0
    [record] = security.audit.list(action=RECOVERED_ACTION)
    failed_runs = [r for r in security.audit.list(action="sync") if r.outcome == "failure"]
    assert record.details["failures"] == len(failed_runs) >= 4
    [recovered] = [a for a in security.alerts.list() if a.kind == SYNC_RECOVERED]
    assert recovered.message.startswith(f"Sync recovered after {len(failed_runs)} failures")
    assert [a.kind for a in security.alerts.list()] == [SYNC_RECOVERED, SYNC_FAILED]
    assert not freshness(store).last_failed
    # The backoff spaced the attempts out: at least the interval between two failures.
    starts = sorted(datetime.fromisoformat(r.details["started_at"]) for r in failed_runs)
    assert all((b - a).total_seconds() >= 1 for a, b in itertools.pairwise(starts))


def test_two_schedulers_started_at_once_never_sync_together(loaded, tmp_path, schedulers):
    env = _env(tmp_path, loaded)
    store = ExtractStore(tmp_path / "data" / "extract.duckdb", EXTRACT_KEY)
    for name in ("a", "b"):
        schedulers.append(Scheduler(env, tmp_path / f"scheduler-{name}.log", "--every", "1s"))
    security = _security(env, tmp_path)

    def runs() -> list:
        return [r for r in security.audit.list(action="sync") if r.details.get("locked_at")]

    # A row committed while they run, so that later syncs have something to do.
    _wait_for("the first sync", lambda: _synced_ok(store), 90, schedulers)
    view_id, _ = _insert_view(loaded)
    _wait_for("six syncs between them", lambda: len(runs()) >= 6, 90, schedulers)
    assert [s.stop() for s in schedulers] == [0, 0]

    records = runs()
    assert all(r.outcome == "ok" for r in records), [r.details["error"] for r in records]
    held = sorted(
        (
            datetime.fromisoformat(r.details["locked_at"]),
            datetime.fromisoformat(r.details["released_at"]),
        )
        for r in records
    )
    for (start_a, end_a), (start_b, end_b) in itertools.pairwise(held):
        assert start_a < end_a
        assert end_a <= start_b, (
            f"two syncs held the extract at once: {start_a}-{end_a} and {start_b}-{end_b}"
        )
    # Both really ran, and met each other at the lock.
    outputs = [s.lines() for s in schedulers]
    oks = [sum(" sync ok " in f" {line} " for line in out) for out in outputs]
    skips = sum("skipped: another sync" in line for out in outputs for line in out)
    assert sum(oks) == len(records)
    assert skips >= 1, "the two never met at the lock: the test proved nothing"
    found = store.cursor().execute("SELECT count(*) FROM fact_view WHERE view_id = ?", [view_id])
    assert found.fetchone()[0] == 1
    print(f"runs per scheduler: {oks}, skipped while busy: {skips}")


def test_a_sync_by_hand_waits_for_a_running_one_or_says_it_is_busy(loaded, tmp_path):
    env = _env(tmp_path, loaded)
    store = ExtractStore(tmp_path / "data" / "extract.duckdb", EXTRACT_KEY)
    security = _security(env, tmp_path)

    def by_hand(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "cli.py", "sync", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    release = threading.Event()
    held = threading.Event()

    def scheduled_run() -> None:  # what a scheduler's run holds while it writes
        with writer_lock(store.path):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=scheduled_run)
    holder.start()
    try:
        assert held.wait(5)
        busy = by_hand("--wait", "0")
        assert busy.returncode == 75, busy.stderr
        assert "busy: Another sync or erasure is writing extract.duckdb" in busy.stderr
        assert not store.exists()
        waiting = subprocess.Popen(
            [sys.executable, "cli.py", "sync", "--wait", "60"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = waiting.stderr.readline()  # the sync starts, then finds the lock taken
        said = waiting.stderr.readline()
        assert said.startswith("[wait] another sync or erasure is writing the extract"), (
            first + said
        )
        assert waiting.poll() is None, "it waits rather than give up"
        release.set()  # the scheduled run ends
        out, err = waiting.communicate(timeout=120)
    finally:
        release.set()
        holder.join()
    assert waiting.returncode == 0, out + err
    assert "sync succeeded" in out
    # The refusal is audited (someone asked) apart from the syncs that ran, and alerts nobody.
    [refused] = security.audit.list(action=SYNC_BUSY_ACTION)
    assert refused.details["error_kind"] == "ExtractBusyError"
    assert [r.outcome for r in security.audit.list(action="sync")] == ["ok"]
    assert not security.alerts.list()
    assert not freshness(store).last_failed, "a busy refusal is not recorded as a failure"


@contextlib.contextmanager
def _fact_view_locked(wh: PgWarehouse) -> Iterator[Callable[[], None]]:
    """Hold fact_view locked at the source, so that a sync reading it waits: a run reliably in
    flight. Yields the function that lets it go."""
    con = psycopg.connect(wh.dsn)
    con.execute(f"LOCK TABLE {wh.schema}.fact_view IN ACCESS EXCLUSIVE MODE")
    try:
        yield con.rollback
    finally:
        con.rollback()
        con.close()


def _a_sync_waits_on_fact_view(wh: PgWarehouse) -> bool:
    [(waiting,)] = wh.sql(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
        (f"{wh.schema}.fact_view",),
    )
    return waiting > 0


def test_a_stop_finishes_the_run_in_flight_and_a_second_abandons_it(loaded, tmp_path, schedulers):
    env = _env(tmp_path, loaded)
    store = ExtractStore(tmp_path / "data" / "extract.duckdb", EXTRACT_KEY)

    with _fact_view_locked(loaded) as release:
        first = Scheduler(env, tmp_path / "first.log", "--every", "1s")
        schedulers.append(first)
        _wait_for("a run in flight", lambda: _a_sync_waits_on_fact_view(loaded), 60, [first])
        first.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert first.proc.poll() is None, "the run in flight is not cut short"
        release()
        assert first.proc.wait(60) == 0
    assert "stopped after 1 run(s)" in first.lines()[-1]
    assert _synced_ok(store), "the run it was in finished and was swapped in"
    generation = store.generation()

    with _fact_view_locked(loaded) as release:
        second = Scheduler(env, tmp_path / "second.log", "--every", "1s")
        schedulers.append(second)
        _wait_for("a run in flight", lambda: _a_sync_waits_on_fact_view(loaded), 60, [second])
        # Two signals: the first asks it to stop after the run, the second abandons the run
        # (taken as soon as the sync has control back from the driver).
        second.proc.send_signal(signal.SIGTERM)
        second.proc.send_signal(signal.SIGINT)
        release()
        assert second.proc.wait(60) == 130
    assert "abandoned the sync in flight" in second.lines()[-1]
    assert store.generation() == generation, "the live extract is the one from before"
    assert not list(store.path.parent.glob(".extract.duckdb.building-*")), "no partial file left"
    with writer_lock(store.path):  # and the lock went with it
        pass
