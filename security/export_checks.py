"""Export checks: permission, personal-data step-up and row caps, audited before the file is
handed over; large or frequent exports raise alerts (SECURITY.md #10, #11)."""

from __future__ import annotations

from datetime import datetime, timedelta

from security.alerts import LARGE_EXPORT, MANY_EXPORTS
from security.clock import to_db
from security.permissions import AccessDenied, Principal, require
from security.service_base import ServiceBase


class ExportRefused(AccessDenied):
    """An export was refused: no permission, or more rows than the role's cap."""


class ExportChecksMixin(ServiceBase):
    """``record_export``: the one gate every download passes."""

    def record_export(
        self,
        principal: Principal | None,
        *,
        fmt: str,
        target: str,
        rows: int,
        client: str = "",
        personal_data: bool = False,
        now: datetime | None = None,
    ) -> int:
        """Check and audit an export before the file is handed over; the audit record's id.

        Raises ExportRefused when the principal may not export in ``fmt`` (``csv``/``excel``),
        may not export personal data (step-up needed), or asks for more rows than the role's
        cap. A large export, and many exports by one user in the window, raise alerts.
        """
        now = self._now(now)
        action = {"csv": "export_csv", "excel": "export_excel"}.get(fmt)
        checks = [action or f"export_{fmt}"]
        if personal_data:
            checks.append("export_personal_data")
        try:
            for check in checks:
                require(principal, check, now)
        except AccessDenied as exc:
            self.audit.record(
                actor=principal.username if principal else "-",
                action="export",
                target=target,
                client=client,
                outcome="denied",
                details={"format": fmt, "rows": rows, "reason": exc.reason},
                now=now,
            )
            raise ExportRefused(exc.target, exc.reason, exc.username) from exc
        assert principal is not None
        cap = principal.export_row_cap
        if rows > cap:
            self.audit.record(
                actor=principal.username,
                action="export",
                target=target,
                client=client,
                outcome="denied",
                details={"format": fmt, "rows": rows, "cap": cap},
                now=now,
            )
            raise ExportRefused(target, "row_cap", principal.username)
        s = self.settings
        with self.db.transaction() as conn:
            audit_id = self.audit.append(
                conn,
                actor=principal.username,
                action="export",
                target=target,
                client=client,
                details={
                    "format": fmt,
                    "rows": rows,
                    "personal_data": personal_data,
                    "scope": principal.scope_key,
                },
                now=now,
            )
            if rows >= s.alert_export_rows:
                self.alerts.raise_in(
                    conn,
                    LARGE_EXPORT,
                    f"{principal.username} exported {rows:,} rows of {target}",
                    details={"username": principal.username, "rows": rows, "target": target},
                    now=now,
                )
            window = timedelta(minutes=s.alert_exports_window_minutes)
            recent = conn.execute(
                "SELECT COUNT(*) FROM audit WHERE action = 'export' AND outcome = 'ok' "
                "AND actor = ? AND ts >= ?",
                (principal.username, to_db(now - window)),
            ).fetchone()[0]
            if recent >= s.alert_exports_count:
                self.alerts.raise_in(
                    conn,
                    MANY_EXPORTS,
                    f"{principal.username} made {recent} exports in "
                    f"{s.alert_exports_window_minutes:g} minutes",
                    details={"username": principal.username, "exports": recent},
                    dedupe_key=f"{MANY_EXPORTS}:{principal.username}",
                    dedupe_minutes=s.alert_exports_window_minutes,
                    now=now,
                )
        return audit_id
