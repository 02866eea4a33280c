"""How fresh the extract is, told the same way on every page: how far the data reaches, when it
was last synced, and, when that is too long ago, why (the last sync attempt in the audit log).

Stale data is said to everyone, not only admins: a dashboard that silently stopped moving is the
one an executive trusts wrongly. The error text of a failed sync stays with admins (it may name
hosts); everyone else sees when it failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from security.audit import FAILURE, AuditLog

SYNC_ACTION = "sync"


@dataclass(frozen=True)
class Freshness:
    """What a page says about its data. Times are naive UTC."""

    demo: bool
    data_to: datetime | None
    synced_at: datetime | None
    stale: bool
    reason: str = ""
    failure_detail: str = ""

    def headline(self, now: datetime) -> str:
        """One line: "Data to 12:04 UTC, synced 3 min ago"."""
        reach = f"Data to {_clock(self.data_to, now)}" if self.data_to else "No view data yet"
        if self.demo:
            return f"{reach} · demo data"
        if self.synced_at is None:
            return f"{reach} · never synced"
        return f"{reach} · synced {ago(self.synced_at, now)}"


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


def _clock(when: datetime, now: datetime) -> str:
    """12:04 UTC today, else "6 Dec 23:59 UTC"."""
    if when.date() == now.date():
        return f"{when:%H:%M} UTC"
    return f"{when.day} {when:%b %H:%M} UTC" if when.year == now.year else f"{when:%d %b %Y} UTC"


def assess(
    *,
    demo: bool,
    data_to: datetime | None,
    synced_at: datetime | None,
    last_attempt_at: datetime | None,
    last_attempt_failed: bool,
    failure_detail: str,
    now: datetime,
    stale_after: timedelta,
) -> Freshness:
    """Whether the data is stale, and why. Demo data is never stale (nothing syncs it). Stale:
    never synced, last synced longer ago than ``stale_after``, or the newest sync attempt
    failed after the last success."""
    if demo:
        return Freshness(True, data_to, synced_at, stale=False)
    failed_since = (
        last_attempt_failed
        and last_attempt_at is not None
        and (synced_at is None or last_attempt_at > synced_at)
    )
    if failed_since:
        assert last_attempt_at is not None
        reason = f"the last sync attempt failed at {_clock(last_attempt_at, now)}"
        if synced_at is not None:
            reason += f"; the data is from the sync {ago(synced_at, now)}"
        return Freshness(False, data_to, synced_at, True, reason, failure_detail)
    if synced_at is None:
        return Freshness(False, data_to, None, True, "no sync has finished yet")
    if now - synced_at > stale_after:
        minutes = int(stale_after.total_seconds() // 60)
        reason = f"no sync for {ago(synced_at, now).removesuffix(' ago')} (expected within {minutes} min)"
        return Freshness(False, data_to, synced_at, True, reason)
    return Freshness(False, data_to, synced_at, False)


def parse_sync_time(text: str | None) -> datetime | None:
    """The extract meta's ``last_sync_at`` (ISO 8601) as naive UTC, or None."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def freshness(
    audit: AuditLog,
    *,
    demo: bool,
    data_to: datetime | None,
    last_sync_at: str | None,
    now: datetime,
    stale_after: timedelta,
) -> Freshness:
    """:func:`assess` with the newest sync attempt read from the audit log."""
    attempts = audit.list(action=SYNC_ACTION, limit=1)
    last = attempts[0] if attempts else None
    detail = ""
    if last is not None and last.outcome == FAILURE:
        kind = str(last.details.get("error_kind") or "")
        detail = f"{kind}: {last.details.get('error') or ''}".strip(": ")
    last_at = last.ts.astimezone(UTC).replace(tzinfo=None) if last and last.ts.tzinfo else None
    if last is not None and last_at is None:
        last_at = last.ts
    return assess(
        demo=demo,
        data_to=data_to,
        synced_at=parse_sync_time(last_sync_at),
        last_attempt_at=last_at,
        last_attempt_failed=last is not None and last.outcome == FAILURE,
        failure_detail=detail,
        now=now,
        stale_after=stale_after,
    )
