"""Operator actions that change the extract, each audited the same way from the CLI and the app.

A sync and an erasure are recorded in the audit log whatever their outcome, a failed sync raises
an alert to admins, and an erasure's failure is recorded before the error reaches the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from data.extract.store import ExtractStore
from data.sync.erasure import ErasureResult, erase_viewer
from data.sync.run import ProgressCallback, SyncResult, run_sync
from security.alerts import SYNC_DATA_QUALITY, SYNC_FAILED
from security.audit import FAILURE, OK
from security.service import Security
from settings import Settings

ERASE_ACTION = "viewer.erase"
SYNC_BUSY_ACTION = "sync.busy"


def audited_sync(
    security: Security,
    settings: Settings,
    *,
    actor: str,
    client: str = "",
    full: bool = False,
    only: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    alert: bool = True,
    audit_busy: bool = True,
) -> SyncResult:
    """Run a sync, audit it, and alert admins when it failed; the result (never raises for a
    failed sync).

    A sync refused because another one holds the writer lock changed nothing: it is audited as
    ``sync.busy`` (unless ``audit_busy`` is False, for the scheduler, which simply skips its
    turn) and never alerted. ``alert=False`` leaves the failure alert to the caller (the scheduler alerts once
    per incident, not once per attempt)."""
    result = run_sync(settings, full=full, only=list(only) if only else None, progress=progress)
    if result.busy and not audit_busy:
        return result
    security.audit.record(
        actor=actor,
        # A refusal is not an attempt: "sync" records are what ran (the freshness line and the
        # Data sync tab read the newest one).
        action=SYNC_BUSY_ACTION if result.busy else "sync",
        target="extract",
        client=client,
        outcome=OK if result.ok else FAILURE,
        details=result.audit_record(),
    )
    if not result.ok and alert and not result.busy:
        security.alerts.raise_alert(
            SYNC_FAILED,
            f"Sync failed ({result.error_kind}): {result.error}",
            severity="critical",
            dedupe_key=f"{SYNC_FAILED}:{result.error_kind}",
        )
    elif notes := result.quality_notes():
        # Once a day per kind of finding while it lasts, not once per sync.
        security.alerts.raise_alert(
            SYNC_DATA_QUALITY,
            "The sync succeeded but the warehouse needs a look: " + "; ".join(notes),
            details={"notes": notes[:20]},
            dedupe_key=f"{SYNC_DATA_QUALITY}:{'|'.join(sorted(n.split(':')[0] for n in notes))}",
            dedupe_minutes=24 * 60,
        )
    return result


def audited_erasure(
    security: Security,
    store: ExtractStore,
    viewer_key: int,
    *,
    actor: str,
    client: str = "",
    progress: Callable[[str], None] | None = None,
) -> ErasureResult:
    """Erase a viewer (data.sync.erasure.erase_viewer) and audit it; a failure is audited, then
    re-raised unchanged."""
    target = f"viewer:{viewer_key}"
    try:
        result = erase_viewer(store, viewer_key, progress=progress)
    except Exception as exc:
        security.audit.record(
            actor=actor,
            action=ERASE_ACTION,
            target=target,
            client=client,
            outcome=FAILURE,
            details={"error": str(exc)[:300]},
        )
        raise
    security.audit.record(
        actor=actor,
        action=ERASE_ACTION,
        target=target,
        client=client,
        outcome=OK,
        details=result.audit_record(),
    )
    return result
