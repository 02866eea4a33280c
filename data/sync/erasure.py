"""GDPR erasure: remove a viewer from the extract for good, and keep them out of later syncs.

``erase_viewer`` writes a *new* extract file that never contains the viewer's rows, rather than
running DELETE on the live one: DuckDB marks deleted rows and keeps their bytes in the file's
blocks until a row group happens to be rewritten, so a DELETE does not make the bytes go away.
The new file is filled by streaming every table out of the live extract (Arrow batches in
memory, nothing on disk in between) with the viewer's rows filtered out; derived tables are
rebuilt from the filtered base tables; the file is checked to physically hold no more rows than
are visible (no deleted-but-present tuples), encrypted, and swapped in atomically. The old file
is unlinked by the swap; it was encrypted, like every extract file.

The viewer's keyed pseudonym is added to the suppression list, the table
``erasure_suppression`` that every build carries into the next extract (the sync copies it into
full refreshes too) and that the sync honours: it filters those keys out in the warehouse before
any row travels, and again in DuckDB. It holds only pseudonyms and when they were erased.

Streamlit's caches are the caller's job: after an erasure the app must clear its data caches
(``st.cache_data.clear()``) so that no cached result still shows the viewer. Each cached query
is also keyed on the extract's generation, which the swap changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from data import schema
from data.extract.derived import DERIVED_TABLES, build_derived
from data.extract.store import ExtractError, ExtractStore, write_meta
from data.extract.writer_lock import writer_lock

SUPPRESSION_TABLE = "erasure_suppression"
SUPPRESSION_DDL = (
    f"CREATE TABLE IF NOT EXISTS {SUPPRESSION_TABLE} ("
    "viewer_key BIGINT PRIMARY KEY, erased_at TIMESTAMP NOT NULL)"
)
_STREAM_ROWS = 200_000


class ErasureError(RuntimeError):
    """The erasure could not be completed; the live extract is unchanged."""


@dataclass
class ErasureResult:
    """What an erasure did: rows removed per table, and whether the key was already listed."""

    viewer_key: int
    erased_at: datetime
    rows_removed: dict[str, int] = field(default_factory=dict)
    already_suppressed: bool = False
    seconds: float = 0.0
    generation: str = ""

    @property
    def total_removed(self) -> int:
        return sum(self.rows_removed.values())

    def audit_record(self) -> dict[str, object]:
        """The facts to put in the audit log: the pseudonym, counts, time; no personal data."""
        return {
            "action": "gdpr_erasure",
            "viewer_key": self.viewer_key,
            "rows_removed": dict(self.rows_removed),
            "already_suppressed": self.already_suppressed,
            "erased_at": self.erased_at.isoformat(),
            "extract_generation": self.generation,
        }


def ensure_suppression_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create the suppression list in the connection's current database if it is missing."""
    con.execute(SUPPRESSION_DDL)


def suppressed_keys(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Every suppressed viewer key in the connection's current database (empty if no list)."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND table_name = ?",
        [SUPPRESSION_TABLE],
    ).fetchone()[0]
    if not exists:
        return []
    return [r[0] for r in con.execute(f"SELECT viewer_key FROM {SUPPRESSION_TABLE}").fetchall()]


def suppression_list(con: duckdb.DuckDBPyConnection) -> list[tuple[int, datetime]]:
    """The suppression list as (viewer key, erased at) rows, empty if there is none."""
    if not suppressed_keys(con):
        return []
    return [
        (int(k), at)
        for k, at in con.execute(
            f"SELECT viewer_key, erased_at FROM {SUPPRESSION_TABLE} ORDER BY viewer_key"
        ).fetchall()
    ]


def live_suppressed_keys(store: ExtractStore) -> list[int]:
    """The suppression list of the live extract (empty when there is no extract or no list)."""
    if not store.exists():
        return []
    return suppressed_keys(store.cursor())


def physical_rows_match(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """True when the table's storage holds exactly its visible rows (no deleted tuples left)."""
    quoted = '"' + table.replace('"', '""') + '"'
    visible = con.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
    stored = con.execute(
        "SELECT coalesce(sum(count), 0) FROM pragma_storage_info(?) "
        "WHERE column_id = 0 AND segment_type <> 'VALIDITY'",
        [table],
    ).fetchone()[0]
    return int(stored) == int(visible)


def _live_tables(store: ExtractStore) -> list[str]:
    rows = (
        store.cursor()
        .execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "ORDER BY table_name"
        )
        .fetchall()
    )
    return [r[0] for r in rows]


def erase_viewer(
    store: ExtractStore,
    viewer_key: int,
    *,
    now: datetime | None = None,
    progress: Callable[[str], None] | None = None,
    lock_wait_seconds: float = 30.0,
) -> ErasureResult:
    """Remove ``viewer_key`` from every extract table and list it as suppressed.

    Promises, when it returns: the live extract is a freshly written file in which no base or
    derived table has a row of the viewer and no table physically keeps deleted tuples; the key
    is in ``erasure_suppression``; the previous file has been replaced atomically. If it raises,
    the live extract is unchanged. It waits up to ``lock_wait_seconds`` for a running sync.
    """
    viewer_key = int(viewer_key)
    say = progress or (lambda message: None)
    erased_at = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    started = time.perf_counter()
    if not store.exists():
        raise ErasureError(f"There is no extract at {store.path} to erase from.")
    result = ErasureResult(viewer_key=viewer_key, erased_at=erased_at)
    derived = {name for name, _ in DERIVED_TABLES}
    viewer_tables = {t.name for t in schema.VIEWER_TABLES}
    with writer_lock(store.path, wait_seconds=lock_wait_seconds):
        live = store.cursor()
        tables = [t for t in _live_tables(store) if t not in derived]
        result.already_suppressed = viewer_key in suppressed_keys(live)
        with store.build() as con:
            ensure_suppression_table(con)
            for name in tables:
                say(f"copying {name}")
                has_viewer = (
                    name in viewer_tables
                    or live.execute(
                        "SELECT count(*) FROM duckdb_columns() WHERE database_name = "
                        "current_database() AND table_name = ? AND column_name = 'viewer_key'",
                        [name],
                    ).fetchone()[0]
                    > 0
                )
                # Identifiers come from the live extract's own catalog, quoted.
                quoted = '"' + name.replace('"', '""') + '"'
                if has_viewer:
                    removed = live.execute(
                        f"SELECT count(*) FROM {quoted} WHERE viewer_key = ?", [viewer_key]
                    ).fetchone()[0]
                    if name != SUPPRESSION_TABLE:
                        result.rows_removed[name] = int(removed)
                    reader = live.execute(
                        f"SELECT * FROM {quoted} WHERE viewer_key IS DISTINCT FROM ?",
                        [viewer_key],
                    ).to_arrow_reader(_STREAM_ROWS)
                else:
                    reader = live.execute(f"SELECT * FROM {quoted}").to_arrow_reader(_STREAM_ROWS)
                exists = con.execute(
                    "SELECT count(*) FROM duckdb_tables() WHERE database_name = "
                    "current_database() AND table_name = ?",
                    [name],
                ).fetchone()[0]
                con.register("erasure_rows", reader)
                try:
                    if exists:
                        con.execute(f"INSERT INTO {quoted} BY NAME SELECT * FROM erasure_rows")
                    else:
                        con.execute(f"CREATE TABLE {quoted} AS SELECT * FROM erasure_rows")
                finally:
                    con.unregister("erasure_rows")
            con.execute(
                f"INSERT INTO {SUPPRESSION_TABLE} VALUES (?, ?) ON CONFLICT DO NOTHING",
                [viewer_key, erased_at],
            )
            say("rebuilding derived tables")
            build_derived(con)
            write_meta(con, {"last_erasure_at": erased_at.isoformat(timespec="seconds")})
            _verify_gone(con, viewer_key)
            say("writing the encrypted extract")
    result.seconds = round(time.perf_counter() - started, 3)
    result.generation = store.generation()
    return result


def _verify_gone(con: duckdb.DuckDBPyConnection, viewer_key: int) -> None:
    """Fail the build unless no table holds the viewer and none keeps deleted tuples."""
    rows = con.execute(
        "SELECT DISTINCT table_name FROM duckdb_columns() WHERE database_name = "
        "current_database() AND column_name = 'viewer_key'"
    ).fetchall()
    for (name,) in rows:
        if name == SUPPRESSION_TABLE:
            continue
        quoted = '"' + name.replace('"', '""') + '"'
        left = con.execute(
            f"SELECT count(*) FROM {quoted} WHERE viewer_key = ?", [viewer_key]
        ).fetchone()[0]
        if left:
            raise ExtractError(f"Erasure incomplete: {name} still holds {left} rows of the viewer.")
    tables = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    ).fetchall()
    for (name,) in tables:
        if not physical_rows_match(con, name):
            raise ExtractError(f"Erasure incomplete: {name} keeps deleted rows in the file.")
