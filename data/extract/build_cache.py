"""Objects derived from one extract build, held in process memory until the next build.

Every extract file carries its own ``build_id`` (``extract_meta``, written by
``ExtractStore.build``), so an object computed from a file (an index, a rollup) is valid for
exactly as long as that file is live. When a cursor reads a newer build, everything held for
older builds is dropped: a sync or an erasure is never answered from stale memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import duckdb

T = TypeVar("T")

DEFAULT_MAX_ROWS = 50_000_000

_lock = threading.Lock()
_build: str | None = None
_held: dict[str, Any] = {}
_max_rows = DEFAULT_MAX_ROWS


def configure(*, max_rows: int) -> None:
    """Hold in-memory indexes for extracts of up to ``max_rows`` views; 0 turns them off (every
    query then runs in SQL, with the same results)."""
    global _max_rows
    _max_rows = max(int(max_rows), 0)
    clear()


def max_rows() -> int:
    """The largest view table indexed in memory (0: none)."""
    return _max_rows


def build_id(cursor: duckdb.DuckDBPyConnection) -> str | None:
    """The build id of the extract the cursor reads, or None (an extract from before ids)."""
    try:
        row = cursor.execute("SELECT value FROM extract_meta WHERE key = 'build_id'").fetchone()
    except duckdb.Error:
        return None
    return str(row[0]) if row else None


def for_build(
    cursor: duckdb.DuckDBPyConnection, name: str, factory: Callable[[str], T | None]
) -> T | None:
    """The object ``name`` for the cursor's build, made by ``factory(build_id)`` on first use.

    None when in-memory indexes are off, the extract has no build id, or the factory returns None (that answer is
    remembered too). One factory runs at a time; other threads wait for it rather than build
    the same object twice.
    """
    global _build
    if _max_rows <= 0:
        return None
    bid = build_id(cursor)
    if bid is None:
        return None
    with _lock:
        if _build != bid:
            _held.clear()
            _build = bid
        if name not in _held:
            _held[name] = factory(bid)
        return _held[name]


def clear() -> None:
    """Forget everything held (the next query computes it again)."""
    global _build
    with _lock:
        _held.clear()
        _build = None
