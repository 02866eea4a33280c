"""Clocks: every time-dependent function takes ``now`` or a clock so tests can move time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_db(value: datetime) -> str:
    """Fixed-width ISO 8601 UTC text, so that string order is time order in SQL."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_db(text: str | None) -> datetime | None:
    """The datetime stored by :func:`to_db` (None stays None)."""
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class FakeClock:
    """A clock tests (and AppTests) can move: ``clock()`` returns the current fake time."""

    def __init__(self, start: datetime | None = None):
        self.now = as_utc(start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)`` (e.g. ``minutes=16``) and return the new now."""
        self.now = self.now + timedelta(**delta)
        return self.now
