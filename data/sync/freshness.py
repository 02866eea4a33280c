"""How fresh the live extract is, and how its last sync attempts went, without streamlit.

Two sources, because a failed sync never changes the extract:

- the extract's own ``extract_meta`` (moved in with the file it describes): the data watermark
  ``data_to`` (the newest plausible view's ``started_at``, never after the warehouse's clock),
  ``as_of`` (the warehouse's clock at the sync), ``last_sync_at``, ``last_full_sync_at``;
- the sync-state file beside the extract (``extract.duckdb.sync-state.json``, owner-only, written
  by every sync attempt that got the writer lock or failed before it, under that lock): when the
  last attempt ran, how it ended and why, how many attempts in a row have failed and since when.

Pages read :func:`freshness`; the scheduler reads the failure count so that an incident that
began before it started is not alerted again.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from data.extract.plausibility import plausible_sql
from data.extract.store import ExtractStore

STATE_SUFFIX = ".sync-state.json"
_ERROR_CHARS = 500

# The failure kinds a sync reports (SyncResult.error_kind), in words anyone may read: the raw
# message can name hosts, schemas and partitions, which only admins see (audit log, Data sync).
_REASONS = {
    "WarehouseUnreachableError": "the warehouse could not be reached",
    "TransientWarehouseError": "the connection to the warehouse kept dropping",
    "WarehouseError": "the warehouse refused the sync",
    "WarehouseConfigError": "the warehouse connection is not configured correctly",
    "SchemaDriftError": "the warehouse's tables changed shape",
    "ReconciliationError": "the synced data did not match the warehouse",
    "SyncError": "the sync found a problem that needs an operator",
    "SettingsError": "the sync is not configured correctly",
    "ExtractError": "the extract could not be written",
    "ExtractBusyError": "another sync was writing the extract",
}


@dataclass(frozen=True)
class SyncAttempt:
    """One sync attempt as the sync-state file keeps it (the latest only)."""

    started_at: datetime
    finished_at: datetime
    outcome: str  # "ok" or "failed"
    full: bool
    error_kind: str = ""
    error: str = ""
    # Failed attempts in a row up to and including this one (0 after a success).
    failures_in_a_row: int = 0
    # When the current run of failures began (None after a success).
    failing_since: datetime | None = None
    # On a success: how many failed attempts it ended (0: none).
    recovered_after: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "outcome": self.outcome,
            "full": self.full,
            "error_kind": self.error_kind,
            "error": self.error,
            "failures_in_a_row": self.failures_in_a_row,
            "failing_since": self.failing_since.isoformat() if self.failing_since else None,
            "recovered_after": self.recovered_after,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SyncAttempt:
        since = data.get("failing_since")
        return cls(
            started_at=datetime.fromisoformat(data["started_at"]),
            finished_at=datetime.fromisoformat(data["finished_at"]),
            outcome=str(data["outcome"]),
            full=bool(data.get("full")),
            error_kind=str(data.get("error_kind") or ""),
            error=str(data.get("error") or ""),
            failures_in_a_row=int(data.get("failures_in_a_row") or 0),
            failing_since=datetime.fromisoformat(since) if since else None,
            recovered_after=int(data.get("recovered_after") or 0),
        )


def state_path(extract_path: Path) -> Path:
    extract_path = Path(extract_path)
    return extract_path.with_name(extract_path.name + STATE_SUFFIX)


def last_attempt(extract_path: Path) -> SyncAttempt | None:
    """The latest recorded attempt; None when there is none (or the file is unreadable)."""
    try:
        return SyncAttempt.from_json(json.loads(state_path(extract_path).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_attempt(
    extract_path: Path,
    *,
    started_at: datetime,
    finished_at: datetime,
    ok: bool,
    full: bool,
    error_kind: str = "",
    error: str = "",
) -> SyncAttempt:
    """Record an attempt over the previous one, counting failures in a row; the record.

    The caller holds the writer lock (or got no further than the settings), so two attempts
    never interleave their read and write here. Written aside and renamed: a reader sees the old
    record or the new one, never half of one."""
    before = last_attempt(extract_path)
    failing = before is not None and before.outcome == "failed"
    if ok:
        record = SyncAttempt(
            started_at,
            finished_at,
            "ok",
            full,
            recovered_after=before.failures_in_a_row if failing and before else 0,
        )
    else:
        record = SyncAttempt(
            started_at,
            finished_at,
            "failed",
            full,
            error_kind=error_kind,
            error=error[:_ERROR_CHARS],
            failures_in_a_row=(before.failures_in_a_row if failing and before else 0) + 1,
            failing_since=(before.failing_since if failing and before else None) or started_at,
        )
    path = state_path(extract_path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(record.as_json(), fh, sort_keys=True)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return record


def latest_view(con: duckdb.DuckDBPyConnection, as_of: datetime | None) -> dict[str, str]:
    """``data_start``/``data_end`` (days) and ``data_to`` (the newest ``started_at``) of the
    plausible views, none after the warehouse's clock; empty when there are none."""
    keep, params = plausible_sql("fact_view", as_of)
    try:
        low, high = con.execute(
            f"SELECT min(started_at), max(started_at) FROM fact_view AS src WHERE {keep}",
            params,
        ).fetchone()
    except duckdb.Error:
        return {}
    if low is None:
        return {}
    return {
        "data_start": low.date().isoformat(),
        "data_end": high.date().isoformat(),
        "data_to": high.isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class Freshness:
    """What a page says about how fresh its data is. Times are naive UTC."""

    source: str  # "warehouse", "demo" or "none" (no extract)
    # The newest view in the extract (its started_at): "Data to 12:04 UTC".
    data_to: datetime | None
    # The warehouse's clock when the extract was synced (the demo: the end of its last day).
    as_of: datetime | None
    # When the last successful sync (and the last full one) started: "synced 3 min ago".
    last_sync_at: datetime | None
    last_full_sync_at: datetime | None
    # The latest attempt, successful or not (None: no attempt recorded).
    last_attempt: SyncAttempt | None

    @property
    def last_failed(self) -> bool:
        """The latest attempt failed: the extract is the one from the last successful sync."""
        return self.last_attempt is not None and self.last_attempt.outcome == "failed"

    @property
    def reason(self) -> str:
        """Why the latest attempt failed, in words for every user (empty when it did not)."""
        if not self.last_failed or self.last_attempt is None:
            return ""
        return _REASONS.get(self.last_attempt.error_kind, "the sync failed")


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def freshness(store: ExtractStore) -> Freshness:
    """The live extract's freshness facts and the latest sync attempt (cheap: the extract's
    meta table and a small file; an extract synced before ``data_to`` was recorded answers from
    one aggregate over ``fact_view``)."""
    attempt = last_attempt(store.path)
    if not store.exists():
        return Freshness("none", None, None, None, None, attempt)
    meta = store.read_meta()
    as_of = _moment(meta.get("as_of"))
    data_to = _moment(meta.get("data_to"))
    if data_to is None:
        data_to = _moment(latest_view(store.cursor(), as_of).get("data_to"))
    return Freshness(
        source=meta.get("source", "none"),
        data_to=data_to,
        as_of=as_of,
        last_sync_at=_moment(meta.get("last_sync_at")),
        last_full_sync_at=_moment(meta.get("last_full_sync_at")),
        last_attempt=attempt,
    )


# --- what a page says --------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """A page's freshness line: the facts in words, and whether to flag the data as stale."""

    demo: bool
    data_to: datetime | None
    synced_at: datetime | None
    stale: bool
    reason: str = ""  # why stale, in words anyone may read
    failure_detail: str = ""  # the raw error of a failed attempt, for admins only

    def headline(self, now: datetime) -> str:
        """One line: "Data to 12:04 UTC · synced 3 min ago"."""
        reach = f"Data to {clock(self.data_to, now)}" if self.data_to else "No view data yet"
        if self.demo:
            return f"{reach} · demo data"
        if self.synced_at is None:
            return f"{reach} · never synced"
        return f"{reach} · synced {ago(self.synced_at, now)}"


def naive_utc(when: datetime | None) -> datetime | None:
    """``when`` as naive UTC (the extract's convention), whatever zone it came with."""
    if when is None or when.tzinfo is None:
        return when
    return when.astimezone(UTC).replace(tzinfo=None)


def ago(then: datetime, now: datetime) -> str:
    """ "just now", "3 min ago", "2 h 5 min ago", "3 days ago"."""
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return "just now"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min ago"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {rest} min ago" if rest else f"{hours} h ago"
    return f"{hours // 24} days ago"


def clock(when: datetime, now: datetime) -> str:
    """ "12:04 UTC" today, else "6 Dec 23:59 UTC" (with the year when it is not this one)."""
    if when.date() == now.date():
        return f"{when:%H:%M} UTC"
    return f"{when.day} {when:%b %H:%M} UTC" if when.year == now.year else f"{when:%d %b %Y} UTC"


def assess(facts: Freshness, *, now: datetime, stale_after: timedelta) -> Verdict:
    """Whether the data is stale, and why. Demo data never is (nothing syncs it). Stale: never
    synced, last synced longer ago than ``stale_after``, or the latest attempt failed (the
    extract is then the one from the last success, however recent). Times naive UTC."""
    data_to, synced_at = naive_utc(facts.data_to), naive_utc(facts.last_sync_at)
    if facts.source == "demo":
        return Verdict(True, data_to, synced_at, stale=False)
    attempt = facts.last_attempt
    if facts.last_failed and attempt is not None:
        failed_at = naive_utc(attempt.finished_at) or now
        reason = f"the last sync attempt failed at {clock(failed_at, now)} ({facts.reason})"
        if synced_at is not None:
            reason += f"; the data is from the sync {ago(synced_at, now)}"
        detail = f"{attempt.error_kind}: {attempt.error}".strip(": ")
        return Verdict(False, data_to, synced_at, True, reason, detail)
    if synced_at is None:
        return Verdict(False, data_to, None, True, "no sync has finished yet")
    if now - synced_at > stale_after:
        minutes = int(stale_after.total_seconds() // 60)
        since = ago(synced_at, now).removesuffix(" ago")
        return Verdict(
            False, data_to, synced_at, True, f"no sync for {since} (expected within {minutes} min)"
        )
    return Verdict(False, data_to, synced_at, False)
