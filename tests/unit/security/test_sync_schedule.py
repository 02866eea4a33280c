"""The sync scheduler (security/sync_schedule.py): intervals, backoff, one alert per incident and
the recovery record, the full pass, skipping while busy. Time is a fake clock moved by a fake
sleep; the syncs are scripted results (the real sync on a schedule is in
tests/integration/test_sync_schedule.py)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from typer.testing import CliRunner

from cli import EXIT_BUSY, app
from data.sync.freshness import record_attempt
from data.sync.run import SyncResult
from security.alerts import SYNC_FAILED, SYNC_RECOVERED
from security.sync_schedule import RECOVERED_ACTION, Schedule, SyncScheduler, describe_seconds
from settings import SettingsError, parse_duration
from tests.unit.security.security_support import make_security, make_settings

KEYS = {
    "extract_key": "e-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
    "app_key": "a-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
    "audit_key": "u-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
}


# --- intervals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400), ("1h30m", 5400), (" 2M ", 120)],
)
def test_durations_are_read_in_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "five minutes", "-5m", "0s", "5m 3", "1e3s"])
def test_nonsense_durations_are_refused_saying_what_is_accepted(text):
    with pytest.raises(ValueError, match=r"30s, 5m, 1h|at least 1s"):
        parse_duration(text)


def test_a_bad_duration_setting_names_its_variable(tmp_path):
    settings = make_settings(tmp_path, sync_every="often")
    with pytest.raises(SettingsError, match=r"SPOTLIGHT_SYNC_EVERY.*not a duration"):
        Schedule.from_settings(settings)
    with pytest.raises(SettingsError, match="--every: 'soon' is not a duration"):
        Schedule.from_settings(make_settings(tmp_path), every="soon")


def test_the_schedule_comes_from_the_settings_unless_given(tmp_path):
    settings = make_settings(tmp_path)
    assert Schedule.from_settings(settings) == Schedule(300, 86400, 3600)
    assert Schedule.from_settings(settings, every="30s", full_every="off") == Schedule(
        30, None, 3600
    )
    off = make_settings(tmp_path, sync_full_every="off", sync_backoff_max="10m")
    assert Schedule.from_settings(off) == Schedule(300, None, 600)
    assert describe_seconds(5400) == "1h30m" and describe_seconds(30) == "30s"


def test_the_cli_refuses_a_nonsense_interval_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOTLIGHT_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    result = runner.invoke(app, ["sync", "--every", "every so often"])
    assert result.exit_code == 2
    assert "--every: 'every so often' is not a duration" in result.output
    assert "30s, 5m, 1h" in result.output
    result = runner.invoke(app, ["sync", "--full-every", "1h"])
    assert result.exit_code == 2 and "needs --every" in result.output
    result = runner.invoke(app, ["sync", "--every", "5m", "--full"])
    assert result.exit_code == 2 and "--full-every" in result.output
    assert not (tmp_path / "data" / "extract.duckdb").exists()
    assert EXIT_BUSY == 75


# --- backoff ----------------------------------------------------------------------------------


def test_backoff_doubles_from_the_interval_up_to_the_cap_with_jitter():
    schedule = Schedule(every=60, full_every=None, backoff_max=3600)
    # From the definition: after n failures in a row, between half and all of
    # min(cap, interval * 2**n).
    ceilings = [min(3600, 60 * 2**n) for n in range(1, 9)]
    assert ceilings == [120, 240, 480, 960, 1920, 3600, 3600, 3600]
    lows = [schedule.backoff(n, rand=lambda: 0.0) for n in range(1, 9)]
    highs = [schedule.backoff(n, rand=lambda: 1.0) for n in range(1, 9)]
    assert lows == [c / 2 for c in ceilings]
    assert highs == ceilings
    # Never sooner than the interval after a first failure.
    assert lows[0] >= schedule.every
    # Real jitter spreads within the bounds, so that installs do not retry in step.
    rng = random.Random(3)
    samples = [schedule.backoff(4, rand=rng.random) for _ in range(200)]
    assert all(480 <= s <= 960 for s in samples)
    assert max(samples) - min(samples) > 200


# --- the loop ---------------------------------------------------------------------------------


class Script:
    """Scripted sync outcomes, each dated by the fake clock; records what was asked."""

    def __init__(self, clock, outcomes: list[str], seconds: float = 2.0):
        self.clock = clock
        self.outcomes: Iterator[str] = iter(outcomes)
        self.seconds = seconds
        self.calls: list[tuple[object, bool]] = []

    def __call__(self, full: bool) -> SyncResult:
        started = self.clock().replace(tzinfo=None)
        self.calls.append((self.clock(), full))
        outcome = next(self.outcomes)
        self.clock.advance(seconds=self.seconds)
        result = SyncResult(started_at=started, full=full, warehouse="test")
        result.finished_at = started + timedelta(seconds=self.seconds)
        if outcome == "ok":
            result.outcome = "ok"
        else:
            result.outcome = "failed"
            result.error_kind = outcome
            result.error = f"{outcome} at {started:%H:%M:%S}"
        return result


def _scheduler(tmp_path, outcomes, schedule, **kwargs):
    sec, clock = make_security(tmp_path, warehouse_url="postgresql://u@127.0.0.1:1/w", **KEYS)
    script = Script(clock, outcomes)
    pauses: list[float] = []

    def sleep(seconds: float) -> bool:
        pauses.append(seconds)
        clock.advance(seconds=seconds)
        return False

    lines: list[str] = []
    scheduler = SyncScheduler(
        sec,
        sec.settings,
        schedule,
        actor="scheduler:test",
        run=script,
        sleep=sleep,
        rand=lambda: 0.5,
        say=lines.append,
        **kwargs,
    )
    return scheduler, sec, script, pauses, lines


def test_one_alert_per_incident_and_a_recovery_record(tmp_path):
    outcomes = [
        "ok",
        *["WarehouseUnreachableError"] * 3,
        "SchemaDriftError",  # the same incident, whatever the error
        "ok",
        "ok",
        "ReconciliationError",
        "ok",
    ]
    schedule = Schedule(every=60, full_every=None, backoff_max=600)
    scheduler, sec, script, pauses, lines = _scheduler(tmp_path, outcomes, schedule)
    assert scheduler.run_forever(lambda: False, max_runs=len(outcomes)) == len(outcomes)

    failed = [a for a in sec.alerts.list() if a.kind == SYNC_FAILED]
    recovered = [a for a in sec.alerts.list() if a.kind == SYNC_RECOVERED]
    assert len(failed) == 2, [a.message for a in failed]
    assert len(recovered) == 2
    # Newest first: the second incident, then the first.
    assert "ReconciliationError" in failed[0].message
    assert "WarehouseUnreachableError" in failed[1].message
    assert failed[1].severity == "critical"
    assert [a.message.split(" (")[0] for a in recovered] == [
        "Sync recovered after 1 failure",
        "Sync recovered after 4 failures",
    ]
    records = sec.audit.list(action=RECOVERED_ACTION)
    assert sorted(r.details["failures"] for r in records) == [1, 4]
    first_incident = next(r for r in records if r.details["failures"] == 4)
    # It began with the second run, one interval after the first.
    assert first_incident.details["failing_since"] == script.calls[1][0].isoformat(
        timespec="seconds"
    )
    assert any(line.startswith("Sync recovered after 4 failures") for line in lines)

    # The pauses: the interval less the run's 2 s after a success; backoff after failures
    # (rand 0.5: three quarters of min(cap, interval * 2**n)).
    expected = []
    failures = 0
    for outcome in outcomes[:-1]:
        if outcome == "ok":
            failures = 0
            expected.append(60 - 2)
        else:
            failures += 1
            expected.append(0.75 * min(600, 60 * 2**failures))
    assert pauses == expected


def test_an_incident_under_way_at_start_is_not_alerted_again(tmp_path):
    schedule = Schedule(every=60, full_every=None, backoff_max=600)
    settings = make_settings(tmp_path)
    for minute in range(3):  # a scheduler before this one (or syncs by hand) failed 3 times
        when = datetime(2026, 1, 5, 8, minute)
        record_attempt(
            settings.extract_path,
            started_at=when,
            finished_at=when,
            ok=False,
            full=False,
            error_kind="WarehouseUnreachableError",
            error="down",
        )
    scheduler, sec, _, _, _ = _scheduler(tmp_path, ["WarehouseUnreachableError", "ok"], schedule)
    assert scheduler.failures == 3
    scheduler.run_forever(lambda: False, max_runs=2)
    assert not [a for a in sec.alerts.list() if a.kind == SYNC_FAILED]
    [recovered] = [a for a in sec.alerts.list() if a.kind == SYNC_RECOVERED]
    assert recovered.message.startswith("Sync recovered after 4 failures")


def test_a_full_pass_runs_when_the_last_full_one_is_a_full_interval_old(tmp_path):
    schedule = Schedule(every=3600, full_every=24 * 3600, backoff_max=3600)
    scheduler, _, script, _, _ = _scheduler(tmp_path, ["ok"] * 50, schedule)
    scheduler.run_forever(lambda: False, max_runs=50)
    fulls = [when for when, full in script.calls if full]
    # No full sync yet at start: the first run is one; then every 24 h of runs an hour apart.
    assert fulls[0] == script.calls[0][0]
    assert [b - a for a, b in itertools.pairwise(fulls)] == [timedelta(hours=24)] * 2
    assert len(fulls) == 3


def test_no_full_pass_when_turned_off_and_a_busy_extract_is_skipped_not_failed(tmp_path):
    schedule = Schedule(every=60, full_every=None, backoff_max=600)
    scheduler, sec, script, pauses, lines = _scheduler(
        tmp_path, ["ok", "ExtractBusyError", "ok"], schedule
    )
    scheduler.run_forever(lambda: False, max_runs=3)
    assert not any(full for _, full in script.calls)
    assert scheduler.skipped == 1 and scheduler.failures == 0
    assert pauses == [58, 60]  # a skipped turn waits one interval, no backoff
    assert not sec.alerts.list()
    assert any(line.startswith("skipped: another sync") for line in lines)


def test_stop_is_checked_between_runs_and_during_the_pause(tmp_path):
    schedule = Schedule(every=60, full_every=None, backoff_max=600)
    scheduler, _, script, _, _ = _scheduler(tmp_path, ["ok"] * 5, schedule)
    stopped = iter([False, False, True])
    assert scheduler.run_forever(lambda: next(stopped)) == 1
    # A sleep that reports a stop request ends the loop without another run.
    scheduler2, _, script2, _, _ = _scheduler(tmp_path / "b", ["ok"] * 5, schedule)
    scheduler2.sleep = lambda seconds: True
    assert scheduler2.run_forever(lambda: False) == 1
    assert len(script.calls) == len(script2.calls) == 1
