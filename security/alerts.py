"""Alerts for admins: raised by security/ itself (sign-in bursts, new clients for privileged
roles, exports) and by other code through :meth:`Alerts.raise_alert` (e.g. a failed sync).

Every raise and acknowledgement is also an audit record. An alert kind can be de-duplicated by
``dedupe_key``: while an alert with that key is open and was raised within ``dedupe_minutes``, a
second one is not raised (a burst raises one alert, not one per failure).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from security.audit import AuditLog, clean_details, encode_text
from security.clock import Clock, from_db, to_db, utcnow
from security.db import AppDB, Row, Tx

# Kinds raised by security/ (others may raise their own, e.g. "sync_failed").
FAILED_SIGNINS = "failed_signins"
NEW_CLIENT = "new_client"
LARGE_EXPORT = "large_export"
MANY_EXPORTS = "many_exports"
SYNC_FAILED = "sync_failed"
# A scheduled sync succeeded again after failing (security/sync_schedule.py): the incident that
# raised a sync_failed alert is over.
SYNC_RECOVERED = "sync_recovered"
# A sync that succeeded but found something in the source to fix: rows dated in the future,
# implausible values, partitions that had drifted (deleted or late rows).
SYNC_DATA_QUALITY = "sync_data_quality"

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Alert:
    id: int
    raised_at: datetime
    kind: str
    severity: str
    message: str
    details: dict[str, Any]
    acknowledged_by: str | None
    acknowledged_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None


class AlertError(ValueError):
    """An alert cannot be acknowledged (unknown id)."""


class Alerts:
    """The alert inbox in an :class:`AppDB`."""

    def __init__(self, db: AppDB, audit: AuditLog, clock: Clock = utcnow):
        self.db = db
        self.audit = audit
        self.clock = clock

    def raise_in(
        self,
        conn: Tx,
        kind: str,
        message: str,
        *,
        severity: str = "warning",
        details: Mapping[str, Any] | None = None,
        dedupe_key: str | None = None,
        dedupe_minutes: float = 60.0,
        actor: str = "system",
        now: datetime | None = None,
    ) -> int | None:
        """Raise inside the caller's write transaction; the alert id, or None when de-duplicated."""
        now = now or self.clock()
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
        if dedupe_key is not None:
            recent = conn.execute(
                "SELECT id FROM alerts WHERE dedupe_key = ? AND acknowledged_at IS NULL "
                "AND raised_at >= ? LIMIT 1",
                (dedupe_key, to_db(now - timedelta(minutes=dedupe_minutes))),
            ).fetchone()
            if recent is not None:
                return None
        clean = clean_details(details)
        inserted = conn.execute(
            "INSERT INTO alerts (raised_at, kind, severity, message, details, dedupe_key) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (
                to_db(now),
                encode_text(kind, 100),
                severity,
                encode_text(message, 1000),
                json.dumps(clean, sort_keys=True),
                dedupe_key,
            ),
        )
        alert_id = int(inserted.fetchone()[0])
        self.audit.append(
            conn,
            actor=actor,
            action="alert.raise",
            target=f"alert:{alert_id}",
            details={"kind": kind, "severity": severity, "message": message},
            now=now,
        )
        return alert_id

    def raise_alert(
        self,
        kind: str,
        message: str,
        *,
        severity: str = "warning",
        details: Mapping[str, Any] | None = None,
        dedupe_key: str | None = None,
        dedupe_minutes: float = 60.0,
        actor: str = "system",
        now: datetime | None = None,
    ) -> int | None:
        """Raise an alert for admins (audited); the id, or None when an open duplicate exists.

        For callers outside security/, e.g. the sync: ``raise_alert("sync_failed", str(exc))``.
        Details follow the audit rules: no secrets.
        """
        with self.db.transaction() as conn:
            return self.raise_in(
                conn,
                kind,
                message,
                severity=severity,
                details=details,
                dedupe_key=dedupe_key,
                dedupe_minutes=dedupe_minutes,
                actor=actor,
                now=now,
            )

    def acknowledge(
        self, alert_id: int, by: str, *, client: str = "", now: datetime | None = None
    ) -> bool:
        """Mark an alert acknowledged by ``by`` at ``now`` (audited). False when it already was;
        AlertError for an unknown id. Permission (acknowledge_alerts) is the caller's check."""
        now = now or self.clock()
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT acknowledged_at FROM alerts WHERE id = ?", (int(alert_id),)
            ).fetchone()
            if row is None:
                raise AlertError(f"no alert with id {alert_id}")
            if row["acknowledged_at"] is not None:
                return False
            conn.execute(
                "UPDATE alerts SET acknowledged_by = ?, acknowledged_at = ? WHERE id = ?",
                (by, to_db(now), int(alert_id)),
            )
            self.audit.append(
                conn,
                actor=by,
                action="alert.ack",
                target=f"alert:{alert_id}",
                client=client,
                now=now,
            )
        return True

    def list(self, *, open_only: bool = True, limit: int = 200) -> list[Alert]:
        """Alerts, newest first; only unacknowledged ones when ``open_only``."""
        where = "WHERE acknowledged_at IS NULL" if open_only else ""
        rows = self.db.query(f"SELECT * FROM alerts {where} ORDER BY id DESC LIMIT ?", (limit,))
        return [_to_alert(r) for r in rows]

    def open_count(self) -> int:
        """How many alerts wait for acknowledgement (for a badge)."""
        return int(self.db.query("SELECT COUNT(*) FROM alerts WHERE acknowledged_at IS NULL")[0][0])


def _to_alert(row: Row) -> Alert:
    raised_at = from_db(row["raised_at"])
    assert raised_at is not None
    return Alert(
        id=row["id"],
        raised_at=raised_at,
        kind=row["kind"],
        severity=row["severity"],
        message=row["message"],
        details=json.loads(row["details"]),
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=from_db(row["acknowledged_at"]),
    )
