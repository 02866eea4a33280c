"""Failure counters with a lock: sign-in per account and per client, and 2FA per account.

A throttle row is (kind, key) -> failures in the current window and the time a lock lifts.
Attempts are counted *before* the slow check, inside the caller's write transaction, so the
counter stays exact under concurrent attempts; a success gives its reservation back.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from security.clock import from_db, to_db
from security.service_base import ServiceBase


@dataclass(frozen=True)
class Reservation:
    locked: bool
    set_lock: bool = False


class ThrottlesMixin(ServiceBase):
    """Reserve, release and read throttle counters (kinds ``signin_user``, ``signin_client``,
    ``totp``)."""

    def _reserve(
        self,
        conn: sqlite3.Connection,
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
    def _release(
        conn: sqlite3.Connection, kind: str, key: str, reservation: Reservation, *, reset: bool
    ) -> None:
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
            "UPDATE throttles SET failures = MAX(failures - 1, 0)"
            + (", locked_until = NULL" if reservation.set_lock else "")
            + " WHERE kind = ? AND key = ?",
            (kind, key),
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
