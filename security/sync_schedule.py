"""Scheduled syncs without an external scheduler (``python cli.py sync --every 5m``).

One loop in the foreground: an audited incremental sync every interval (start to start), a full
verification pass when the last full sync is older than ``full_every``, until asked to stop.

- **Never two at once.** Each run takes the extract's writer lock without waiting; when another
  sync or erasure (another scheduler, a sync by hand) holds it, the run is skipped, not failed,
  and the scheduler tries again at the next interval. The lock is the kernel's ``flock``, so two
  schedulers started at the same moment cannot both hold it.
- **Backing off.** After ``n`` failures in a row the next attempt waits between half and all of
  ``2 ** n`` intervals, at most ``backoff_max`` (``RetryPolicy.delay``: exponential, capped,
  jittered so that several installs do not hammer a warehouse in step).
- **One alert per incident.** The first failure of a run of failures raises a ``sync_failed``
  alert (de-duplicated on the incident's start, so two schedulers or a restart do not raise it
  twice); the later attempts of the same incident are audited, never alerted. The first success
  after it writes a ``sync.recovered`` audit record and a ``sync_recovered`` alert ("Sync
  recovered after N failures"). The count survives a restart: it is read from the sync-state
  file every attempt writes (data/sync/freshness.py).

This module lives in security/ because it audits and alerts; it only calls down into data/
(the sync itself) and never imports streamlit. Clock, sleep and the sync are injectable, so its
unit tests move time instead of waiting.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from data.sync.freshness import freshness, last_attempt
from data.sync.run import SyncResult
from data.sync.warehouse import RetryPolicy
from security.alerts import SYNC_FAILED, SYNC_RECOVERED
from security.clock import Clock, as_utc
from security.operations import audited_sync
from security.service import Security
from settings import Settings, SettingsError, parse_duration

RECOVERED_ACTION = "sync.recovered"
# An incident's alert stays the only one for as long as the incident could plausibly last.
_INCIDENT_DEDUPE_MINUTES = 14 * 24 * 60


@dataclass(frozen=True)
class Schedule:
    """Intervals in seconds; ``full_every`` None: never a full pass."""

    every: float
    full_every: float | None
    backoff_max: float

    @classmethod
    def from_settings(
        cls, settings: Settings, *, every: str | None = None, full_every: str | None = None
    ) -> Schedule:
        """The settings' schedule, with ``every``/``full_every`` given on the command line
        instead; SettingsError saying what is accepted for a value that is not a duration."""

        def parse(option: str, text: str) -> float | None:
            if option == "--full-every" and text.strip().lower() in {"off", "never"}:
                return None
            try:
                return parse_duration(text)
            except ValueError as exc:
                raise SettingsError(f"{option}: {exc}") from None

        return cls(
            every=parse("--every", every)
            if every is not None
            else float(settings.duration("sync_every") or 0),
            full_every=parse("--full-every", full_every)
            if full_every is not None
            else settings.duration("sync_full_every", allow_off=True),
            backoff_max=float(settings.duration("sync_backoff_max") or 0),
        )

    def backoff(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after ``failures`` failed attempts in a row (at least 1)."""
        policy = RetryPolicy(base_delay=2 * self.every, max_delay=self.backoff_max)
        return policy.delay(max(1, failures), rand)


def describe_seconds(seconds: float) -> str:
    """``300`` -> ``5m``, ``5400`` -> ``1h30m``: how the schedule's options spell durations."""
    whole = max(0, round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts) or f"{seconds:.1f}s"


SyncRun = Callable[[bool], SyncResult]


class SyncScheduler:
    """The loop behind ``cli.py sync --every``. ``run(full)`` runs one sync; by default the
    audited sync with the settings (taking the writer lock without waiting, alerting left to
    this class)."""

    def __init__(
        self,
        security: Security,
        settings: Settings,
        schedule: Schedule,
        *,
        actor: str,
        run: SyncRun | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], bool] | None = None,
        rand: Callable[[], float] = random.random,
        say: Callable[[str], None] = lambda line: None,
    ):
        self.security = security
        self.schedule = schedule
        self.actor = actor
        self.clock = clock or security.clock
        # Returns True when asked to stop while sleeping.
        self.sleep = sleep or _never_stopped_sleep
        self.rand = rand
        self.say = say
        self.extract_path = settings.extract_path
        nowait = settings.replace(sync_lock_wait_seconds=0.0)
        self.run = run or (
            lambda full: audited_sync(
                security, nowait, actor=actor, full=full, alert=False, audit_busy=False
            )
        )
        self.runs = 0
        self.skipped = 0
        # The incident under way when this scheduler starts (someone already saw it begin).
        before = last_attempt(self.extract_path)
        failing = before is not None and before.outcome == "failed"
        self.failures = before.failures_in_a_row if failing and before else 0
        self.failing_since: datetime | None = (
            as_utc(before.failing_since) if failing and before and before.failing_since else None
        )
        self.alerted = self.failures > 0
        self.last_full_at = self._last_full_from_extract(settings)

    @staticmethod
    def _last_full_from_extract(settings: Settings) -> datetime | None:
        from data.extract.store import ExtractError, store_from_settings

        try:
            moment = freshness(store_from_settings(settings)).last_full_sync_at
        except (ExtractError, SettingsError):
            return None
        return as_utc(moment) if moment else None

    def full_due(self, now: datetime) -> bool:
        """A full verification pass is due: none yet, or the last is ``full_every`` old."""
        if self.schedule.full_every is None:
            return False
        if self.last_full_at is None:
            return True
        return now - self.last_full_at >= timedelta(seconds=self.schedule.full_every)

    def tick(self) -> float:
        """Run one sync (full when due); the seconds to wait before the next."""
        started = self.clock()
        full = self.full_due(started)
        result = self.run(full)
        self.runs += 1
        elapsed = max(0.0, (self.clock() - started).total_seconds())
        if result.busy:
            self.skipped += 1
            self.say("skipped: another sync or erasure is writing the extract")
            return self.schedule.every
        if result.ok:
            if full:
                self.last_full_at = started
            record = last_attempt(self.extract_path)
            if record is not None and record.started_at == result.started_at:
                self.failures = max(self.failures, record.recovered_after)
            if self.failures:
                self._recovered(result)
            self.say(
                f"sync ok ({'full' if full else 'incremental'}) in {result.seconds:.1f} s, "
                f"{result.rows_read:,} rows read"
            )
            # Start to start: the next run keeps the cadence, or starts at once if this one
            # took longer than the interval (never a burst to catch up).
            return max(0.0, self.schedule.every - elapsed)
        self._failed(result)
        pause = self.schedule.backoff(self.failures, self.rand)
        self.say(
            f"sync FAILED ({result.error_kind}): {result.error} — failure {self.failures} in a "
            f"row, next attempt in {describe_seconds(pause)}"
        )
        return pause

    def _adopt_recorded(self, result: SyncResult) -> bool:
        """Take the failure count from the sync-state file when it holds this very attempt (it
        counts the failures of every process: another scheduler, a sync by hand)."""
        record = last_attempt(self.extract_path)
        if record is None or record.started_at != result.started_at:
            return False
        self.failures = record.failures_in_a_row
        self.failing_since = as_utc(record.failing_since) if record.failing_since else None
        return True

    def _failed(self, result: SyncResult) -> None:
        if self._adopt_recorded(result):
            if self.failures == 1:
                # A new incident, though this scheduler may have seen the last one (ended by
                # another process's success).
                self.alerted = False
        else:
            self.failures += 1
            self.failing_since = self.failing_since or as_utc(result.started_at)
        if self.alerted:
            return
        since = self.failing_since or as_utc(result.started_at)
        self.security.alerts.raise_alert(
            SYNC_FAILED,
            f"Scheduled sync failed ({result.error_kind}): {result.error}. It keeps retrying "
            "with backoff; one alert per incident, a sync_recovered alert when it ends.",
            severity="critical",
            details={"failing_since": since.isoformat(timespec="seconds")},
            dedupe_key=f"{SYNC_FAILED}:since:{since.isoformat(timespec='seconds')}",
            dedupe_minutes=_INCIDENT_DEDUPE_MINUTES,
            now=self.clock(),
        )
        self.alerted = True

    def _recovered(self, result: SyncResult) -> None:
        failures, since = self.failures, self.failing_since
        self.failures, self.failing_since, self.alerted = 0, None, False
        down = (as_utc(result.started_at) - since).total_seconds() if since else None
        message = f"Sync recovered after {failures} failure{'s' if failures != 1 else ''}" + (
            f" ({describe_seconds(down)} since the first)" if down is not None else ""
        )
        details = {
            "failures": failures,
            "failing_since": since.isoformat(timespec="seconds") if since else None,
            "extract_generation": result.generation,
        }
        now = self.clock()
        self.security.audit.record(
            actor=self.actor,
            action=RECOVERED_ACTION,
            target="extract",
            details={**details, "message": message},
            now=now,
        )
        self.security.alerts.raise_alert(
            SYNC_RECOVERED, message, severity="info", details=details, now=now
        )
        self.say(message)

    def run_forever(self, stop: Callable[[], bool], *, max_runs: int | None = None) -> int:
        """Run until ``stop()`` is true (checked between runs; a run in flight finishes) or
        ``max_runs`` runs; the number of runs."""
        while not stop() and (max_runs is None or self.runs < max_runs):
            pause = self.tick()
            if stop() or (max_runs is not None and self.runs >= max_runs):
                break
            if self.sleep(pause):
                break
        return self.runs


def _never_stopped_sleep(seconds: float) -> bool:
    import time

    time.sleep(seconds)
    return False
