"""Failure counters with a lock: sign-in per account and per client, and 2FA per account.

A throttle row is (kind, key) -> failures in the current window and the time a lock lifts.
Attempts are counted *before* the slow check, inside the caller's write transaction, so the
counter stays exact under concurrent attempts; a success gives its reservation back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from security.alerts import FAILED_SIGNINS
from security.clock import from_db, to_db
from security.db import Tx
from security.service_base import ServiceBase


@dataclass(frozen=True)
class LockInfo:
    """A lock in force: ``kind`` (``signin_user``: the account, for unknown devices;
    ``signin_device``; ``signin_client``; ``totp``), its key, and whose account it is."""

    kind: str
    key: str
    failures: int
    locked_until: datetime | None
    username: str | None


@dataclass(frozen=True)
class Reservation:
    locked: bool
    set_lock: bool = False


class ThrottlesMixin(ServiceBase):
    """Reserve, release and read throttle counters (kinds ``signin_user``, ``signin_client``,
    ``totp``)."""

    def _reserve(
        self,
        conn: Tx,
        kind: str,
        key: str,
        max_failures: int,
        lock_minutes: float,
        now: datetime,
        *,
        check_only: bool = False,
    ) -> Reservation:
        """Check a throttle and (unless ``check_only``) count one attempt as a failure now.

        Counting before the slow password check, inside the write lock, keeps the counter exact
        under concurrent attempts: the (max+1)-th concurrent attempt sees the lock. A successful
        attempt undoes its reservation afterwards. A lock lifts at ``locked_until``; failures
        older than one lock period are forgotten.
        """
        row = conn.execute(
            "SELECT failures, window_start, locked_until FROM throttles WHERE kind = ? AND key = ?",
            (kind, key),
        ).fetchone()
        failures, window_start, locked_until = (0, None, None)
        if row is not None:
            failures = row["failures"]
            window_start = from_db(row["window_start"])
            locked_until = from_db(row["locked_until"])
        period = timedelta(minutes=lock_minutes)
        if locked_until is not None:
            if now < locked_until:
                return Reservation(locked=True)
            failures, window_start, locked_until = 0, None, None
        if window_start is not None and now - window_start >= period:
            failures, window_start = 0, None
        if check_only:
            return Reservation(locked=False)
        failures += 1
        window_start = window_start or now
        set_lock = failures >= max_failures
        if set_lock:
            locked_until = now + period
        conn.execute(
            "INSERT INTO throttles (kind, key, failures, window_start, locked_until) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(kind, key) DO UPDATE SET "
            "failures = excluded.failures, window_start = excluded.window_start, "
            "locked_until = excluded.locked_until",
            (
                kind,
                key,
                failures,
                to_db(window_start),
                to_db(locked_until) if locked_until else None,
            ),
        )
        return Reservation(locked=False, set_lock=set_lock)

    @staticmethod
    def _release(conn: Tx, kind: str, key: str, reservation: Reservation, *, reset: bool) -> None:
        """Undo a reservation after a success: ``reset`` clears the counter (the account's own
        counter), otherwise only this attempt is taken back (the client's counter)."""
        if reset:
            conn.execute(
                "UPDATE throttles SET failures = 0, window_start = NULL, locked_until = NULL "
                "WHERE kind = ? AND key = ?",
                (kind, key),
            )
            return
        conn.execute(
            "UPDATE throttles SET failures = CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END"
            + (", locked_until = NULL" if reservation.set_lock else "")
            + " WHERE kind = ? AND key = ?",
            (kind, key),
        )

    def _failed_signin_burst(self, conn: Tx, now: datetime) -> None:
        window = timedelta(minutes=self.settings.alert_failed_signins_window_minutes)
        count = conn.execute(
            # Provider sign-ins refused for want of a mapped role count as failed sign-ins too.
            "SELECT COUNT(*) FROM audit WHERE action IN ('signin.failure', 'sso.no_access') "
            "AND ts >= ?",
            (to_db(now - window),),
        ).fetchone()[0]
        if count >= self.settings.alert_failed_signins:
            self.alerts.raise_in(
                conn,
                FAILED_SIGNINS,
                f"{count} failed sign-ins in the last "
                f"{self.settings.alert_failed_signins_window_minutes:g} minutes",
                severity="critical",
                details={"failures": count},
                dedupe_key=FAILED_SIGNINS,
                dedupe_minutes=self.settings.alert_failed_signins_window_minutes,
                now=now,
            )

    def failure_count(self, kind: str, key: str) -> int:
        """Current failure counter of a throttle (``signin_user``, ``signin_client``, ``totp``)."""
        rows = self.db.query(
            "SELECT failures FROM throttles WHERE kind = ? AND key = ?", (kind, key)
        )
        return int(rows[0]["failures"]) if rows else 0

    def is_locked(self, kind: str, key: str, now: datetime | None = None) -> bool:
        """True while a throttle's lock holds."""
        rows = self.db.query(
            "SELECT locked_until FROM throttles WHERE kind = ? AND key = ?", (kind, key)
        )
        until = from_db(rows[0]["locked_until"]) if rows else None
        return until is not None and self._now(now) < until

    def active_locks(self, now: datetime | None = None) -> list[LockInfo]:
        """Locks in force now, newest first (for the admin page): what is locked and until when."""
        now = self._now(now)
        rows = self.db.query(
            "SELECT t.kind, t.key, t.failures, t.locked_until, d.username AS device_user "
            "FROM throttles t LEFT JOIN trusted_devices d "
            "ON t.kind = 'signin_device' AND d.id = t.key "
            "WHERE t.locked_until IS NOT NULL AND t.locked_until > ? ORDER BY t.locked_until DESC",
            (to_db(now),),
        )
        return [
            LockInfo(
                kind=r["kind"],
                key=r["key"],
                failures=r["failures"],
                locked_until=from_db(r["locked_until"]),
                username=r["device_user"]
                if r["kind"] == "signin_device"
                else (r["key"] if r["kind"] in ("signin_user", "totp") else None),
            )
            for r in rows
        ]

    def lift_lock(
        self,
        kind: str,
        key: str,
        *,
        actor: str,
        client: str = "",
        now: datetime | None = None,
    ) -> bool:
        """Clear a lock and its failure count now (audited ``signin.unlock``); False when there
        was no lock in force."""
        now = self._now(now)
        with self.db.transaction() as conn:
            lifted = conn.execute(
                "UPDATE throttles SET failures = 0, window_start = NULL, locked_until = NULL "
                "WHERE kind = ? AND key = ? AND locked_until IS NOT NULL AND locked_until > ?",
                (kind, key, to_db(now)),
            ).rowcount
            if lifted:
                self.audit.append(
                    conn,
                    actor=actor,
                    action="signin.unlock",
                    target=f"{kind}:{key}",
                    client=client,
                    now=now,
                )
        return bool(lifted)
