"""The sync: warehouse -> new encrypted extract, reconciled, swapped in atomically.

How one sync runs (``run_sync``):

1. Take the extract's writer lock (a sync and an erasure never build side by side).
2. Open ``store.build(copy_current=...)``: a new encrypted file beside the live one, started as
   a copy of the live extract for incremental syncs. Nothing below touches the live file.
3. Per table, inside one warehouse snapshot (``BEGIN ISOLATION LEVEL REPEATABLE READ``):
   check the source's columns against the spec (schema drift fails loudly); stream the rows in
   Arrow batches into a staging table (everything, or rows whose cursor is at or after the
   watermark minus the overlap window); drop suppressed (erased) viewers; merge into the table,
   de-duplicated on the primary key (the latest cursor wins); reconcile row counts and control
   totals per partition against the source in the same snapshot. A transient connection error
   rolls the table back and retries it on a new connection with backoff.
4. Rebuild derived tables, record watermarks and counts in ``extract_meta``, leave the block:
   the store checks encryption and renames the new file over the live one.

The watermark lives in the extract itself, so it moves exactly when the extract it describes is
swapped in: a failed or killed sync leaves both as they were.

This module does not audit or alert (security/ sits above data/): it returns a
:class:`SyncResult` whose ``audit_record()`` the caller writes, and whose ``ok`` tells the
caller to alert. ``progress`` receives :class:`SyncProgress` events for a progress bar or log.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from queue import Full, Queue
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa

from data.extract.derived import WHOLE, Change, build_derived, refresh_derived
from data.extract.plausibility import count_implausible
from data.extract.store import ExtractError, ExtractStore, store_from_settings, write_meta
from data.extract.writer_lock import ExtractBusyError, writer_lock
from data.sync import extract_specs
from data.sync.erasure import (
    SUPPRESSION_TABLE,
    ensure_suppression_table,
    suppressed_keys,
    suppression_list,
)
from data.sync.extract_specs import ExtractSpec
from data.sync.freshness import latest_view, record_attempt
from data.sync.source_map import WarehouseMapping, mapping_from_settings
from data.sync.warehouse import (
    RetryPolicy,
    TransientWarehouseError,
    Warehouse,
    WarehouseError,
    WarehouseSession,
    warehouse_from_settings,
)
from settings import SettingsError

log = logging.getLogger(__name__)

Outcome = Literal["ok", "failed", "skipped", "pending"]
_WATERMARK = "watermark."
_SUPPRESS_CHUNK = 500


class SyncError(RuntimeError):
    """The sync failed for a reason that needs an operator; nothing was swapped in."""


class SchemaDriftError(SyncError):
    """The source's columns no longer match the spec."""


class ReconciliationError(SyncError):
    """The extract does not reconcile with the source (counts or totals differ)."""


class WarehouseUnreachableError(WarehouseError):
    """Connecting to the warehouse failed on every attempt; not retried any further."""


@dataclass(frozen=True)
class SyncProgress:
    """One step of a sync, for a progress bar or a log line.

    ``phase`` is one of: start, schema, read, merge, reconcile, retry, table_done, derived,
    swap, done, failed. ``fraction`` is the share of tables finished (0..1).
    """

    phase: str
    table: str = ""
    rows: int = 0
    message: str = ""
    fraction: float = 0.0


ProgressCallback = Callable[[SyncProgress], None]


@dataclass
class TableResult:
    """What the sync did to one table."""

    table: str
    mode: str = ""
    outcome: Outcome = "pending"
    rows_read: int = 0
    rows_in_extract: int = 0
    rows_suppressed: int = 0
    duplicates_dropped: int = 0
    partitions_checked: int = 0
    # Partitions the drift check found different from the source and re-read whole.
    partitions_healed: list[str] = field(default_factory=list)
    # Rows whose cursor is after the warehouse's clock (kept out of the watermark).
    future_rows: int = 0
    # Rows an implausibility rule catches, by rule (data/extract/plausibility.py).
    implausible: dict[str, int] = field(default_factory=dict)
    # The warehouse's clock when this table was read.
    source_clock: datetime | None = None
    watermark_before: str | None = None
    watermark_after: str | None = None
    seconds: float = 0.0
    attempts: int = 0
    error: str = ""
    # Seconds per step of the last attempt (schema, read, merge, reconcile), for benchmarks.
    phases: dict[str, float] = field(default_factory=dict)


@dataclass
class SyncResult:
    """The outcome of one sync: per table, and overall. ``ok`` is False on any failure."""

    started_at: datetime
    full: bool
    warehouse: str
    tables: list[TableResult] = field(default_factory=list)
    finished_at: datetime | None = None
    outcome: Outcome = "pending"
    error: str = ""
    error_kind: str = ""
    generation: str = ""
    # Seconds per step of the whole sync (copy, tables, derived, meta, swap), for benchmarks.
    phases: dict[str, float] = field(default_factory=dict)
    # What an incremental sync did to each derived table (kept, refreshed, appended, rebuilt).
    derived: dict[str, str] = field(default_factory=dict)
    derived_seconds: dict[str, float] = field(default_factory=dict)
    # The warehouse's clock when the first table was read: the extract's "as of".
    source_clock: datetime | None = None
    # Wall-clock UTC just after the writer lock was taken and just after it was let go: every
    # write to the extract happened between them (None: the lock was never taken).
    locked_at: datetime | None = None
    released_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def busy(self) -> bool:
        """Nothing ran: another sync or erasure held the writer lock the whole wait."""
        return self.error_kind == ExtractBusyError.__name__

    @property
    def seconds(self) -> float:
        if self.finished_at is None:
            return 0.0
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    @property
    def rows_read(self) -> int:
        return sum(t.rows_read for t in self.tables)

    @property
    def future_rows(self) -> int:
        return sum(t.future_rows for t in self.tables)

    @property
    def implausible(self) -> dict[str, dict[str, int]]:
        """Implausible rows by table and rule (only tables with any)."""
        return {t.table: dict(t.implausible) for t in self.tables if t.implausible}

    @property
    def healed(self) -> dict[str, list[str]]:
        """Partitions re-read whole because they drifted from the source, by table."""
        return {t.table: list(t.partitions_healed) for t in self.tables if t.partitions_healed}

    def quality_notes(self) -> list[str]:
        """What an operator should look at in the source, in words (empty: nothing)."""
        return quality_notes(self.audit_record()["tables"])

    def table(self, name: str) -> TableResult:
        for t in self.tables:
            if t.table == name:
                return t
        raise KeyError(name)

    def audit_record(self) -> dict[str, Any]:
        """What to write to the audit log: outcome, timing, counts, watermarks; never secrets."""
        return {
            "action": "sync",
            "outcome": self.outcome,
            "full": self.full,
            "warehouse": self.warehouse,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "seconds": self.seconds,
            "error_kind": self.error_kind,
            "error": self.error,
            "extract_generation": self.generation,
            "tables": {
                t.table: {
                    "mode": t.mode,
                    "outcome": t.outcome,
                    "rows_read": t.rows_read,
                    "rows": t.rows_in_extract,
                    "watermark": t.watermark_after,
                    "seconds": t.seconds,
                    **({"future_rows": t.future_rows} if t.future_rows else {}),
                    **({"implausible": dict(t.implausible)} if t.implausible else {}),
                    **({"healed": list(t.partitions_healed)} if t.partitions_healed else {}),
                }
                for t in self.tables
            },
            **(
                {"source_clock": self.source_clock.isoformat(timespec="seconds")}
                if self.source_clock
                else {}
            ),
            **(
                {
                    "locked_at": self.locked_at.isoformat(timespec="microseconds"),
                    "released_at": self.released_at.isoformat(timespec="microseconds"),
                }
                if self.locked_at and self.released_at
                else {}
            ),
        }

    def summary_lines(self) -> list[str]:
        """A per-table summary for a terminal or a log."""
        lines = (
            [
                f"{'table':<20} {'mode':<12} {'outcome':<8} {'read':>11} {'in extract':>11} "
                f"{'seconds':>8}  watermark"
            ]
            if self.tables
            else []  # it failed before any table (its configuration): the verdict says why
        )
        for t in self.tables:
            lines.append(
                f"{t.table:<20} {t.mode:<12} {t.outcome:<8} {t.rows_read:>11,} "
                f"{t.rows_in_extract:>11,} {t.seconds:>8.2f}  {t.watermark_after or '-'}"
            )
        lines.extend(f"note: {note}" for note in self.quality_notes())
        verdict = "succeeded" if self.ok else f"FAILED ({self.error_kind}): {self.error}"
        lines.append(f"sync {verdict} in {self.seconds:.1f}s")
        return lines


def quality_notes(tables: Mapping[str, Any]) -> list[str]:
    """Findings about the source in a sync's per-table record (``audit_record()["tables"]``,
    also as read back from the audit log): rows dated after the warehouse's clock, implausible
    values, partitions that had drifted and were re-read."""
    notes = []
    for name, record in tables.items():
        if not isinstance(record, Mapping):
            continue
        future = int(record.get("future_rows") or 0)
        if future:
            notes.append(
                f"{name}: {future:,} row(s) dated after the warehouse's clock, kept out of the "
                "watermark and the date range"
            )
        implausible = record.get("implausible") or {}
        if isinstance(implausible, Mapping):
            for rule, count in implausible.items():
                notes.append(f"{name}: {int(count):,} row(s) with {rule}, left out of the metrics")
        healed = [str(p) for p in record.get("healed") or []]
        if healed:
            shown = ", ".join(healed[:6]) + (
                f" and {len(healed) - 6} more" if len(healed) > 6 else ""
            )
            notes.append(
                f"{name}: {shown} differed from the source (rows deleted or committed late there) "
                "and were re-read"
            )
    return notes


@dataclass(frozen=True)
class SyncOptions:
    """Tuning that does not change what a sync means."""

    overlap: timedelta = timedelta(hours=2)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    lock_wait_seconds: float = 0.0
    # How long an incremental sync may rely on the last check of every partition for drift
    # (deleted or late rows) before it checks again; zero: every sync checks.
    drift_check_every: timedelta = timedelta(0)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _normalise(value: Any) -> str:
    """A statistics value in one spelling whatever engine or driver produced it."""
    if value is None:
        return "0"
    if isinstance(value, bool):
        return str(int(value))
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return str(value)
    return format(number.normalize(), "f") if number == number.to_integral() else str(number)


def _stats(rows: Iterable[Sequence[Any]]) -> dict[str, tuple[str, ...]]:
    return {str(r[0]): tuple(_normalise(v) for v in r[1:]) for r in rows}


def _ident(name: str) -> str:
    """A DuckDB identifier from the specs, quoted."""
    return '"' + name.replace('"', '""') + '"'


class _Source:
    """The warehouse session of a sync, reopened (and set up again) after a transient error."""

    def __init__(self, warehouse: Warehouse, suppressed: list[int]):
        self.warehouse = warehouse
        self.suppressed = suppressed
        self.session: WarehouseSession | None = None
        self.dialect: str | None = None

    def open(self) -> WarehouseSession:
        if self.session is None:
            try:
                session = extract_specs_connect(self.warehouse)
            except TransientWarehouseError as exc:
                # Connecting was retried already: the table's own retries would only multiply
                # the wait (and hold the writer lock) for a host that does not answer.
                raise WarehouseUnreachableError(str(exc)) from None
            try:
                if self.suppressed:
                    session.execute(extract_specs.SUPPRESSED_CREATE_SQL)
                    for i in range(0, len(self.suppressed), _SUPPRESS_CHUNK):
                        chunk = self.suppressed[i : i + _SUPPRESS_CHUNK]
                        session.execute(extract_specs.suppressed_insert_sql(len(chunk)), chunk)
            except Exception:
                session.close()
                raise
            self.session = session
        return self.session

    def clock(self) -> datetime:
        """The warehouse's clock (naive UTC) at the start of the session's open transaction."""
        session = self.open()
        if self.dialect is None:
            version = str(session.fetch_rows(extract_specs.VERSION_SQL)[0][0])
            self.dialect = "redshift" if "redshift" in version.lower() else "postgres"
        value = session.fetch_rows(extract_specs.CLOCK_SQL[self.dialect])[0][0]
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return _naive_utc(moment)

    def reset(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def close(self) -> None:
        self.reset()


def extract_specs_connect(warehouse: Warehouse) -> WarehouseSession:
    """A new warehouse session, connecting with retries (the Warehouse's policy)."""
    from data.sync.warehouse import connect, with_retries

    return with_retries(lambda _attempt: connect(warehouse.config), warehouse.retry)


def run_sync(
    settings: Any = None,
    *,
    warehouse: Warehouse | None = None,
    store: ExtractStore | None = None,
    full: bool = False,
    only: Sequence[str] | str | None = None,
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
    options: SyncOptions | None = None,
    mapping: WarehouseMapping | None = None,
) -> SyncResult:
    """Sync the extract from the warehouse; never raises for a failed sync, returns the result.

    Give ``settings`` (the warehouse, store, tables, tuning and warehouse mapping come from it)
    or explicit ``warehouse`` and ``store`` (and ``options``, ``mapping``: where each table's
    rows live when the warehouse's names are not the model's). ``full`` re-reads every table whole;
    ``only`` limits the sync to some tables (the rest of the extract is carried over).

    Promises: on ``result.ok`` the live extract is a new file holding the reconciled tables and
    their new watermarks; otherwise the live extract and its watermarks are exactly as before.
    The caller audits ``result.audit_record()`` and alerts when ``not result.ok``.
    """
    say = progress or (lambda event: None)
    if settings is None and (warehouse is None or store is None):
        raise TypeError("run_sync needs settings, or both warehouse and store")
    started = _naive_utc(now) if now else _utcnow()
    perf_start = time.perf_counter()
    result = SyncResult(
        started_at=started, full=full, warehouse=warehouse.describe() if warehouse else "?"
    )
    try:
        configured: list[str] = []
        if settings is not None:
            # Inside the try: a bad URL, port or key is a failed sync (one line, audited,
            # alerted), not a traceback.
            warehouse = warehouse or warehouse_from_settings(settings)
            store = store or store_from_settings(settings)
            options = options or SyncOptions(
                overlap=timedelta(hours=float(settings.sync_overlap_hours)),
                retry=warehouse.retry,
                lock_wait_seconds=float(settings.sync_lock_wait_seconds),
                drift_check_every=timedelta(minutes=float(settings.sync_drift_check_minutes)),
            )
            configured = [t.strip() for t in str(settings.sync_tables).split(",") if t.strip()]
            if mapping is None:
                mapping = mapping_from_settings(settings)
            result.warehouse = warehouse.describe()
        assert warehouse is not None and store is not None
        options = options or SyncOptions(retry=warehouse.retry)
        say(SyncProgress("start", message=f"sync from {warehouse.describe()}"))
        names = [only] if isinstance(only, str) else list(only or configured or [])
        specs = extract_specs.resolve(names or None, mapping)
        result.tables = [TableResult(table=s.name) for s in specs]

        def waiting() -> None:
            say(
                SyncProgress(
                    "wait",
                    message="another sync or erasure is writing the extract; waiting up to "
                    f"{options.lock_wait_seconds:.0f} s for it to finish",
                )
            )

        with writer_lock(store.path, wait_seconds=options.lock_wait_seconds, on_wait=waiting):
            result.locked_at = _utcnow()
            try:
                _sync(warehouse, store, specs, result, full, bool(only), say, options, started)
                result.outcome = "ok"
                result.generation = store.generation()
            except Exception as exc:
                _failed(result, exc, say)
            # Still under the lock, so that attempts are recorded in the order they ran.
            _record(store, result, started, perf_start)
        result.released_at = _utcnow()
    except Exception as exc:
        _failed(result, exc, say)
        if store is not None and not result.busy:
            # It failed before taking the lock (its configuration): recorded all the same, so
            # the freshness stamp says why; a busy refusal changed nothing and records nothing.
            _record(store, result, started, perf_start)
    result.finished_at = started + timedelta(seconds=time.perf_counter() - perf_start)
    if result.ok:
        say(SyncProgress("done", message=f"sync finished in {result.seconds:.1f}s", fraction=1.0))
    return result


def _failed(result: SyncResult, exc: Exception, say: ProgressCallback) -> None:
    result.outcome = "failed"
    result.error_kind = type(exc).__name__
    result.error = str(exc)
    if not isinstance(
        exc,
        (SyncError, WarehouseError, ExtractError, ExtractBusyError, KeyError, SettingsError),
    ):
        log.exception("sync failed unexpectedly")
    for t in result.tables:
        if t.outcome in ("pending", "ok"):
            # Pending, or read but never swapped in.
            t.outcome = "skipped"
    say(SyncProgress("failed", message=result.error))


def _record(store: ExtractStore, result: SyncResult, started: datetime, perf_start: float) -> None:
    """The attempt into the sync-state file (data/sync/freshness.py); a failure to write it is
    logged, never the sync's failure."""
    try:
        record_attempt(
            store.path,
            started_at=started,
            finished_at=started + timedelta(seconds=time.perf_counter() - perf_start),
            ok=result.ok,
            full=result.full,
            error_kind=result.error_kind,
            error=result.error,
        )
    except OSError:
        log.exception("could not record the sync attempt beside %s", store.path)


def _sync(
    warehouse: Warehouse,
    store: ExtractStore,
    specs: Sequence[ExtractSpec],
    result: SyncResult,
    full: bool,
    partial: bool,
    say: ProgressCallback,
    options: SyncOptions,
    started: datetime,
) -> None:
    live_meta: dict[str, str] = {}
    suppressed: list[tuple[int, datetime]] = []
    if store.exists():
        with store.peek() as live:
            live_meta = dict(live.execute("SELECT key, value FROM extract_meta").fetchall())
            suppressed = suppression_list(live)
    from_warehouse = live_meta.get("source") == "warehouse"
    if partial and not from_warehouse:
        raise SyncError(
            "The live extract was not built by a sync (it is the demo extract or missing); run a "
            "sync of every table first (python cli.py sync --full)."
        )
    # Copy the live extract when it was synced before and some tables are not re-read whole;
    # a full sync of everything starts from empty tables (and copies only the suppression list).
    copy = from_warehouse and not (full and not partial)
    last_check = live_meta.get("drift_checked_at")
    check_drift = not last_check or (
        started - datetime.fromisoformat(last_check) >= options.drift_check_every
    )
    source = _Source(warehouse, [key for key, _ in suppressed])
    phases = result.phases
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = round(phases.get(name, 0.0) + now - mark, 3)
        mark = now

    try:
        with store.build(copy_current=copy) as con:
            lap("copy" if copy else "create")
            # What each table's sync changed (absent: nothing), for the derived tables.
            changes: dict[str, Change] = {}
            ensure_suppression_table(con)
            if not copy and suppressed:
                # A full rebuild starts from empty tables: carry the suppression list over.
                con.executemany(
                    f"INSERT INTO {SUPPRESSION_TABLE} VALUES (?, ?) ON CONFLICT DO NOTHING",
                    suppressed,
                )
            # Months re-read because they drifted, by source table: an aggregate of that source
            # (the daily rollup of fact_view) re-reads the same months, or it would keep the
            # drifted rows' contribution.
            healed: dict[str, list[str]] = {}
            for i, spec in enumerate(specs):
                table_result = result.tables[i]
                mode = "full" if (full or spec.mode == "full" or not copy) else "incremental"
                watermark = live_meta.get(_WATERMARK + spec.name) if copy else None
                if mode == "incremental" and not watermark:
                    mode = "full"
                table_result.mode = mode
                table_result.watermark_before = watermark
                con.execute(spec.table.ddl("duckdb"))
                t0 = time.perf_counter()

                def attempt(
                    number: int, spec=spec, mode=mode, watermark=watermark, tr=table_result
                ):
                    tr.attempts = number
                    change = _sync_table(
                        con,
                        source,
                        spec,
                        mode,
                        watermark,
                        tr,
                        say,
                        options,
                        track=copy,
                        heal_also=healed.get(spec.source_table, []) if spec.is_aggregate else [],
                        check_drift=check_drift,
                    )
                    changes.pop(spec.name, None)
                    if change is not None:
                        changes[spec.name] = change

                try:
                    _with_table_retries(attempt, source, spec, say, options.retry)
                except Exception as exc:
                    table_result.outcome = "failed"
                    table_result.error = str(exc)
                    raise
                table_result.seconds = round(time.perf_counter() - t0, 3)
                table_result.outcome = "ok"
                if table_result.partitions_healed and spec.partition.kind == "month":
                    healed[spec.source_table] = table_result.partitions_healed
                say(
                    SyncProgress(
                        "table_done",
                        spec.name,
                        table_result.rows_in_extract,
                        f"{spec.name}: {table_result.rows_read:,} read, "
                        f"{table_result.rows_in_extract:,} in extract",
                        (i + 1) / len(specs),
                    )
                )
            lap("tables")
            clocks = [tr.source_clock for tr in result.tables if tr.source_clock]
            result.source_clock = min(clocks) if clocks else None
            if result.source_clock is not None:
                # Before the derived tables: they leave out rows dated after it.
                write_meta(con, {"as_of": result.source_clock.isoformat(timespec="seconds")})
            if copy:
                say(SyncProgress("derived", message="refreshing derived tables", fraction=1.0))
                result.derived = refresh_derived(con, changes, result.derived_seconds)
            else:
                say(SyncProgress("derived", message="building derived tables", fraction=1.0))
                build_derived(con)
            lap("derived")
            meta: dict[str, object] = {
                "source": "warehouse",
                "warehouse": warehouse.describe(),
                "last_sync_at": started.isoformat(timespec="seconds"),
                # Asked for, or what a first sync is: every table read whole.
                "last_sync_full": str(
                    full or all(tr.mode == "full" for tr in result.tables)
                ).lower(),
            }
            if check_drift and not partial:
                # Every partition of every table was compared with the source (or read whole).
                meta["drift_checked_at"] = started.isoformat(timespec="seconds")
            if meta["last_sync_full"] == "true" and not partial:
                # Carried over by the incremental syncs' copies: when the scheduler's next full
                # verification pass is due.
                meta["last_full_sync_at"] = started.isoformat(timespec="seconds")
            for tr in result.tables:
                meta[f"synced_at.{tr.table}"] = started.isoformat(timespec="seconds")
                meta[f"rows.{tr.table}"] = tr.rows_in_extract
                meta[f"mode.{tr.table}"] = tr.mode
                if tr.watermark_after:
                    meta[_WATERMARK + tr.table] = tr.watermark_after
            meta.update(latest_view(con, result.source_clock))
            write_meta(con, meta)
            lap("meta")
            say(SyncProgress("swap", message="writing and swapping in the encrypted extract"))
        lap("swap")
    finally:
        source.close()


def _with_table_retries(
    attempt: Callable[[int], None],
    source: _Source,
    spec: ExtractSpec,
    say: ProgressCallback,
    policy: RetryPolicy,
) -> None:
    number = 1
    while True:
        try:
            attempt(number)
            return
        except TransientWarehouseError as exc:
            source.reset()
            if number >= policy.attempts:
                raise TransientWarehouseError(
                    f"{exc} (gave up on {spec.name} after {number} attempts)"
                ) from None
            pause = policy.delay(number)
            say(
                SyncProgress(
                    "retry", spec.name, message=f"{spec.name}: {exc}; retrying in {pause:.1f}s"
                )
            )
            time.sleep(pause)
            number += 1


def _prefetch(batches: Iterator[pa.RecordBatch], depth: int = 4) -> Iterator[pa.RecordBatch]:
    """Read the next batches from the warehouse in a thread while DuckDB loads this one.

    The driver's read (network, decoding) and DuckDB's insert then overlap on two cores. An
    error in the reader is raised here, in the consumer, with its own type.
    """
    done = object()
    queue: Queue[Any] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        queue.put(batch, timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            queue.put(exc)

    reader = threading.Thread(target=produce, name="sync-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = queue.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=30)


class _Background:
    """Runs one warehouse query in a thread (the session is not used elsewhere meanwhile)."""

    def __init__(self, action: Callable[[], Any]):
        self._result: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._result = action()
            except BaseException as exc:  # re-raised by result()
                self._error = exc

        self._thread = threading.Thread(target=run, name="sync-source-stats", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


def _sync_table(
    con: duckdb.DuckDBPyConnection,
    source: _Source,
    spec: ExtractSpec,
    mode: str,
    watermark: str | None,
    tr: TableResult,
    say: ProgressCallback,
    options: SyncOptions,
    track: bool = False,
    heal_also: Sequence[str] = (),
    check_drift: bool = True,
) -> Change | None:
    """One attempt at one table, all or nothing: the DuckDB transaction rolls back on failure.

    ``heal_also``: partitions to re-read whole besides those the drift check finds (an
    aggregate, for the months its source table re-read).

    A full read streams straight into the (emptied) table; an incremental read goes to a
    staging table first and is merged. Once the rows to merge are known, the warehouse computes
    its per-partition statistics (same snapshot, same connection) in a thread while DuckDB
    merges and computes its own.

    With ``track`` (a build that starts from the live extract), returns how the table changed,
    for the incremental refresh of the derived tables: None when no row changed.
    """
    session = source.open()
    table = _ident(spec.name)
    stage = _ident(f"spotlight_stage_{spec.name}")
    old = _ident(f"spotlight_old_{spec.name}")
    prev = _ident(f"spotlight_prev_{spec.name}")
    suppress = bool(source.suppressed) and bool(spec.viewer_column)
    full = mode == "full"
    # A table re-read whole each time is small (spec.mode "full"): compare it with its previous
    # rows. A forced full re-read of a large table is not compared: it counts as all changed.
    diff_full = track and full and spec.mode == "full"
    target = table if full else stage
    con.execute("BEGIN TRANSACTION")
    in_snapshot = False
    pending: _Background | None = None
    tr.phases = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        tr.phases[name] = round(now - mark, 3)
        mark = now

    try:
        session.execute(extract_specs.SNAPSHOT_SQL)
        in_snapshot = True
        clock = source.clock()
        tr.source_clock = clock
        say(SyncProgress("schema", spec.name, message=f"{spec.name}: checking source columns"))
        _check_drift(session, spec)
        lap("schema")

        params: list[Any] = []
        if not full:
            # A watermark past the warehouse's clock (left by a row dated in the future before
            # this rule) would skip every later change: read from the clock instead.
            since = min(datetime.fromisoformat(str(watermark)), clock)
            params = [since - options.overlap]
        sql = spec.select_sql(session.config.schema, incremental=not full, suppress=suppress)
        held = 0
        if full:
            if diff_full:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {prev} AS SELECT * FROM {table}")
            elif track:
                held = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            con.execute(f"DELETE FROM {table}")
        else:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {stage} AS SELECT * FROM {table} LIMIT 0")
        casts = ", ".join(
            f"CAST(spotlight_batch.{_ident(c.name)} AS {c.sql_type('duckdb')}) AS {_ident(c.name)}"
            for c in spec.columns
        )
        rows = 0
        for batch in _prefetch(session.stream(sql, params)):
            con.register("spotlight_batch", batch)
            try:
                con.execute(f"INSERT INTO {target} SELECT {casts} FROM spotlight_batch")
            finally:
                con.unregister("spotlight_batch")
            rows += batch.num_rows
            say(SyncProgress("read", spec.name, rows, f"{spec.name}: {rows:,} rows read"))
        tr.rows_read = rows
        # No watermark passes the warehouse's clock: rows dated after it are counted, reported,
        # and read again by every sync until their date is reached or corrected.
        high, tr.future_rows = con.execute(
            f"SELECT max({_ident(spec.cursor)}) FILTER (WHERE {_ident(spec.cursor)} <= ?), "
            f"count(*) FILTER (WHERE {_ident(spec.cursor)} > ?) FROM {target}",
            [clock, clock],
        ).fetchone()
        lap("read")

        say(SyncProgress("merge", spec.name, rows, f"{spec.name}: merging"))
        tr.rows_suppressed = _drop_suppressed(con, spec, target)
        partitions: list[str] | None = None
        if not full:
            tr.duplicates_dropped = _prepare_merge(con, spec, table, stage, old)
            partitions = _touched(con, spec, stage, old)
        # The warehouse's statistics, computed in a thread while DuckDB merges: those of the
        # partitions to reconcile (all of them after a full read), and on an incremental read
        # the drift check's cheap statistics of every partition.
        check_drift = check_drift and not full and not spec.is_aggregate and spec.merge == "upsert"
        jobs: list[tuple[str, list[Any]]] = []
        if partitions != []:
            ranges, bound = spec.stats_params(partitions) if partitions else (0, [])
            jobs.append(
                (
                    spec.source_stats_sql(
                        session.config.schema,
                        suppress=suppress,
                        partitions=None if partitions is None else len(partitions),
                        ranges=ranges,
                    ),
                    bound,
                )
            )
        if check_drift:
            jobs.append((spec.source_drift_sql(session.config.schema, suppress=suppress), []))
        if jobs:
            pending = _Background(lambda: [session.fetch_rows(sql, bound) for sql, bound in jobs])
        if full:
            tr.duplicates_dropped = _dedup_in_place(con, spec, table)
        else:
            _apply_merge(con, spec, table, stage, old)
        lap("merge")

        say(SyncProgress("reconcile", spec.name, rows, f"{spec.name}: reconciling"))
        ours: dict[str, tuple[str, ...]] = {}
        if partitions is None:
            ours = _stats(con.execute(spec.extract_stats_sql()).fetchall())
        elif partitions:
            ranges, bound = spec.stats_params(partitions)
            ours = _stats(
                con.execute(spec.extract_stats_sql(len(partitions), ranges), bound).fetchall()
            )
        lap("extract_stats")
        answers = pending.result() if pending is not None else []
        pending = None
        theirs = _stats(answers[0]) if partitions != [] else {}
        lap("source_stats_wait")
        _reconcile(session, spec, suppress, theirs, ours, tr)
        extra = [p for p in heal_also if not full and p not in (partitions or [])]
        if extra and not check_drift:
            _heal(con, session, spec, suppress, table, stage, old, sorted(extra), tr, track)
            lap("drift_check")
        if check_drift:
            theirs_cheap = _stats(answers[-1])
            ours_cheap = _stats(con.execute(spec.extract_drift_sql()).fetchall())
            drifted = sorted(
                p
                for p in set(theirs_cheap) | set(ours_cheap)
                if theirs_cheap.get(p) != ours_cheap.get(p) and p not in (partitions or [])
            )
            if drifted:
                say(
                    SyncProgress(
                        "reconcile",
                        spec.name,
                        message=f"{spec.name}: re-reading {len(drifted)} partition(s) that "
                        "differ from the source",
                    )
                )
                _heal(con, session, spec, suppress, table, stage, old, drifted, tr, track)
            lap("drift_check")
        session.execute(extract_specs.COMMIT_SQL)
        in_snapshot = False

        previous = watermark and min(datetime.fromisoformat(str(watermark)), clock).isoformat()
        candidates = [w for w in (previous, high and high.isoformat()) if w]
        tr.watermark_after = max(candidates, key=datetime.fromisoformat) if candidates else None
        tr.rows_in_extract = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        tr.implausible = count_implausible(con, spec.name, clock)
        change: Change | None = None
        if not track:
            if not full:
                con.execute(f"DROP TABLE {stage}")
                con.execute(f"DROP TABLE {old}")
        elif diff_full:
            change = _diff(con, table, prev, stage, old)
        elif full:
            # (An incremental table without a watermark was empty; still empty, it is unchanged.)
            change = WHOLE if held or tr.rows_in_extract else None
        elif partitions or tr.partitions_healed:
            # The staged rows (changed or added) and the old versions they replaced stay, as
            # temporary tables of this build, for the derived tables' refresh.
            change = Change(old=old, new=stage)
        con.execute("COMMIT")
        lap("finish")
        return change
    except BaseException:
        if pending is not None:
            with contextlib.suppress(BaseException):
                pending.result()
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        if in_snapshot:
            with contextlib.suppress(WarehouseError):
                source.session.execute("ROLLBACK")  # type: ignore[union-attr]
        raise


def _heal(
    con: duckdb.DuckDBPyConnection,
    session: WarehouseSession,
    spec: ExtractSpec,
    suppress: bool,
    table: str,
    stage: str,
    old: str,
    drifted: list[str],
    tr: TableResult,
    track: bool,
) -> None:
    """Re-read whole partitions that the drift check found different from the source (rows
    deleted there, or committed after the overlap window), then reconcile them in full: a
    partition that still differs fails the sync. With ``track``, the replaced rows join ``old``
    and the re-read ones ``stage``, so the derived tables refresh those days too."""
    ranges, bound = spec.stats_params(drifted)
    heal = _ident(f"spotlight_heal_{spec.name}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {heal} AS SELECT * FROM {table} LIMIT 0")
    casts = ", ".join(
        f"CAST(spotlight_batch.{_ident(c.name)} AS {c.sql_type('duckdb')}) AS {_ident(c.name)}"
        for c in spec.columns
    )
    sql = spec.select_partitions_sql(
        session.config.schema, suppress=suppress, partitions=len(drifted), ranges=ranges
    )
    for batch in session.stream(sql, bound):
        con.register("spotlight_batch", batch)
        try:
            con.execute(f"INSERT INTO {heal} SELECT {casts} FROM spotlight_batch")
        finally:
            con.unregister("spotlight_batch")
    _drop_suppressed(con, spec, heal)
    _dedup_in_place(con, spec, heal)
    where = "1 = 1" + extract_specs.partition_filter(spec, "duckdb", len(drifted), ranges, "t")
    if track:
        con.execute(f"INSERT INTO {old} SELECT * FROM {table} AS t WHERE {where}", bound)
    con.execute(f"DELETE FROM {table} AS t WHERE {where}", bound)
    con.execute(f"INSERT INTO {table} SELECT * FROM {heal}")
    if track:
        con.execute(f"INSERT INTO {stage} SELECT * FROM {heal}")
    con.execute(f"DROP TABLE {heal}")
    checked = tr.partitions_checked
    theirs = _stats(
        session.fetch_rows(
            spec.source_stats_sql(
                session.config.schema, suppress=suppress, partitions=len(drifted), ranges=ranges
            ),
            bound,
        )
    )
    ours = _stats(con.execute(spec.extract_stats_sql(len(drifted), ranges), bound).fetchall())
    _reconcile(session, spec, suppress, theirs, ours, tr)
    tr.partitions_checked += checked
    tr.partitions_healed = list(drifted)


def _diff(
    con: duckdb.DuckDBPyConnection, table: str, prev: str, new: str, old: str
) -> Change | None:
    """How a table re-read whole changed: rows gone or changed, rows added or changed."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {old} AS SELECT * FROM {prev} EXCEPT SELECT * FROM {table}"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {new} AS SELECT * FROM {table} EXCEPT SELECT * FROM {prev}"
    )
    con.execute(f"DROP TABLE {prev}")
    (changed,) = con.execute(
        f"SELECT (SELECT count(*) FROM {old}) + (SELECT count(*) FROM {new})"
    ).fetchone()
    return Change(old=old, new=new) if changed else None


def _check_drift(session: WarehouseSession, spec: ExtractSpec) -> None:
    location = spec.source_location(session.config.schema)
    found = session.fetch_rows(spec.columns_sql(), list(location))
    problems = extract_specs.describe_drift(spec, [(str(n), str(t), p, s) for n, t, p, s in found])
    if problems:
        missing = problems[0].startswith("source table")
        fix = (
            f"Map {spec.source_table} to the table or view that holds its rows (the warehouse "
            "mapping), or create it; python cli.py warehouse check lists what to fix,"
            if missing
            else "Fix the source, or the warehouse mapping (python cli.py warehouse check says "
            "what to change),"
            if spec.source_map is not None
            else "Update data/schema.py and the spec in data/sync/extract_specs.py (or allow the "
            "change there), or map the table to a source that matches (python cli.py warehouse "
            "check),"
        )
        raise SchemaDriftError(
            f"Schema drift in {'.'.join(location)} (for {spec.name}): "
            + "; ".join(problems)
            + f". {fix} before syncing again."
        )


def _drop_suppressed(con: duckdb.DuckDBPyConnection, spec: ExtractSpec, stage: str) -> int:
    """Remove erased viewers' rows that still arrived (defence in depth: the warehouse filters)."""
    if not spec.viewer_column or not any(c.name == "viewer_key" for c in spec.columns):
        return 0
    removed = con.execute(
        f"DELETE FROM {stage} WHERE viewer_key IN (SELECT viewer_key FROM {SUPPRESSION_TABLE})"
    ).fetchone()
    return int(removed[0]) if removed else 0


def _touched(con: duckdb.DuckDBPyConnection, spec: ExtractSpec, stage: str, old: str) -> list[str]:
    """Partitions an incremental merge changes: where the new rows go, and where the rows
    they replace were (a row may move to another month)."""
    rows = con.execute(
        f"SELECT DISTINCT CAST({spec.partition.sql('duckdb', 's')} AS VARCHAR) FROM {stage} AS s "
        f"UNION SELECT DISTINCT CAST({spec.partition.sql('duckdb', 't')} AS VARCHAR) "
        f"FROM {old} AS t"
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


_INTEGER_TYPES = frozenset({"id", "int", "small"})


def _dense_key_duplicates(
    con: duckdb.DuckDBPyConnection, spec: ExtractSpec, table: str
) -> int | None:
    """Rows beyond the first of each key, for a single integer key whose values are dense
    (surrogate ids): marks in a boolean array over the key range, counted. None when the key
    is not like that (the caller counts with a hash aggregate, which took 7-8 s for 10M rows
    against well under a second here)."""
    if len(spec.primary_key) != 1:
        return None
    column = next(c for c in spec.columns if c.name == spec.primary_key[0])
    if column.type not in _INTEGER_TYPES:
        return None
    key = _ident(column.name)
    low, high, rows, known = con.execute(
        f"SELECT min({key}), max({key}), count(*), count({key}) FROM {table}"
    ).fetchone()
    if not rows:
        return 0
    if known != rows or int(high) - int(low) > 4 * rows + 1_000_000:
        return None
    values = np.asarray(con.execute(f"SELECT {key} AS k FROM {table}").fetchnumpy()["k"])
    seen = np.zeros(int(high) - int(low) + 1, dtype=bool)
    seen[values - int(low)] = True
    return int(rows) - int(np.count_nonzero(seen))


def _dedup_in_place(con: duckdb.DuckDBPyConnection, spec: ExtractSpec, table: str) -> int:
    """Keep one row per primary key (the latest cursor); the number of rows dropped.

    Checking costs one hash aggregate; rewriting the table happens only when the source
    really held several versions of a key.
    """
    keys = ", ".join(f"src.{_ident(k)}" for k in spec.primary_key)
    extra = _dense_key_duplicates(con, spec, table)
    if extra is None:
        extra = con.execute(
            f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {table} AS src "
            f"GROUP BY {keys} HAVING count(*) > 1)"
        ).fetchone()[0]
    if not extra:
        return 0
    # The survivor: the latest cursor, ties broken by the other columns (ExtractSpec.survivor_order),
    # so that two syncs of the same source always keep the same row.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE spotlight_dedup AS SELECT * FROM {table} AS src "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {spec.survivor_order('src')}) = 1"
    )
    con.execute(f"DELETE FROM {table}")
    con.execute(f"INSERT INTO {table} SELECT * FROM spotlight_dedup")
    con.execute("DROP TABLE spotlight_dedup")
    return int(extra)


def _prepare_merge(
    con: duckdb.DuckDBPyConnection, spec: ExtractSpec, table: str, stage: str, old: str
) -> int:
    """First half of a merge: leave in ``stage`` only the rows that change the table, and in
    ``old`` the table's rows they replace (with their rowid); the number of duplicates dropped.

    The table is scanned once, to find the rows the staged keys match. A staged row older than
    the extract's copy is dropped (the latest version wins), and so is one identical to it: the
    overlap window re-reads rows that have not changed, and they change nothing.
    """
    duplicates = _dedup_in_place(con, spec, stage)
    if spec.merge == "replace":
        match = " AND ".join(f"t.{_ident(c)} = s.{_ident(c)}" for c in spec.replace_on)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {old} AS SELECT t.*, t.rowid AS spotlight_rowid "
            f"FROM {table} AS t WHERE EXISTS (SELECT 1 FROM {stage} AS s WHERE {match})"
        )
        return duplicates
    match = " AND ".join(f"t.{_ident(k)} = s.{_ident(k)}" for k in spec.primary_key)
    cursor = _ident(spec.cursor)
    same = " AND ".join(
        f"t.{_ident(c.name)} IS NOT DISTINCT FROM s.{_ident(c.name)}" for c in spec.columns
    )
    # Bounding a single integer key by the staged keys' min and max lets DuckDB skip row
    # groups by their min/max: the newest rows' keys sit together at the end of the table.
    bounds, params = "", []
    key_columns = [spec.table.column(k) for k in spec.primary_key]
    if len(key_columns) == 1 and key_columns[0].type in {"id", "int", "small"}:
        key = _ident(key_columns[0].name)
        bounds = f" AND t.{key} >= ? AND t.{key} <= ?"
        params = list(con.execute(f"SELECT min({key}), max({key}) FROM {stage}").fetchone())
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {old} AS SELECT t.*, t.rowid AS spotlight_rowid "
        f"FROM {table} AS t WHERE EXISTS (SELECT 1 FROM {stage} AS s WHERE {match}){bounds}",
        params,
    )
    con.execute(
        f"DELETE FROM {stage} AS s WHERE EXISTS (SELECT 1 FROM {old} AS t "
        f"WHERE {match} AND (t.{cursor} > s.{cursor} OR ({same})))"
    )
    con.execute(
        f"DELETE FROM {old} AS t WHERE NOT EXISTS (SELECT 1 FROM {stage} AS s WHERE {match})"
    )
    return duplicates


def _apply_merge(
    con: duckdb.DuckDBPyConnection, spec: ExtractSpec, table: str, stage: str, old: str
) -> None:
    """Second half of a merge: replace the rows in ``old`` (by rowid) with those in ``stage``."""
    con.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT spotlight_rowid FROM {old})")
    con.execute(f"ALTER TABLE {old} DROP COLUMN spotlight_rowid")
    con.execute(f"INSERT INTO {table} SELECT * FROM {stage}")


def merge_rows(con: duckdb.DuckDBPyConnection, spec: ExtractSpec, rows: str) -> Change | None:
    """Merge the rows of table ``rows`` (the spec's columns) into the spec's table as an
    incremental sync does, without a warehouse; how the table changed (None: not at all).

    For tests of what depends on the merge (the derived tables' refresh).
    """
    table = _ident(spec.name)
    stage = _ident(f"spotlight_stage_{spec.name}")
    old = _ident(f"spotlight_old_{spec.name}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {stage} AS SELECT * FROM {rows}")
    _prepare_merge(con, spec, table, stage, old)
    if not _touched(con, spec, stage, old):
        return None
    _apply_merge(con, spec, table, stage, old)
    return Change(old=old, new=stage)


def reload_rows(con: duckdb.DuckDBPyConnection, spec: ExtractSpec, rows: str) -> Change | None:
    """Replace the spec's table with the rows of table ``rows`` as a sync of a table re-read
    whole does; how the table changed (None: not at all). For tests, like :func:`merge_rows`."""
    table = _ident(spec.name)
    prev = _ident(f"spotlight_prev_{spec.name}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {prev} AS SELECT * FROM {table}")
    con.execute(f"DELETE FROM {table}")
    con.execute(f"INSERT INTO {table} SELECT * FROM {rows}")
    return _diff(
        con,
        table,
        prev,
        _ident(f"spotlight_stage_{spec.name}"),
        _ident(f"spotlight_old_{spec.name}"),
    )


def _reconcile(
    session: WarehouseSession,
    spec: ExtractSpec,
    suppress: bool,
    theirs: dict[str, tuple[str, ...]],
    ours: dict[str, tuple[str, ...]],
    tr: TableResult,
) -> None:
    """Compare per-partition counts and totals with the source; raise on any difference.

    A full read reconciles every partition. An incremental read reconciles the partitions it
    touched (where its rows went, and where the rows they replaced were); the rest of the
    table is unchanged since the sync that last reconciled it.
    """
    differing = sorted(p for p in set(theirs) | set(ours) if theirs.get(p) != ours.get(p))
    if differing:
        # The source may hold several versions of a key (Redshift does not enforce primary
        # keys); describe those partitions again, de-duplicated the way the sync does.
        again = _stats(
            session.fetch_rows(
                spec.source_stats_sql(
                    session.config.schema,
                    suppress=suppress,
                    partitions=len(differing),
                    dedup=True,
                ),
                differing,
            )
        )
        theirs = {**theirs, **{p: again[p] for p in differing if p in again}}
        differing = sorted(p for p in differing if again.get(p) != ours.get(p))
    tr.partitions_checked = len(set(theirs) | set(ours))
    if differing:
        shown = ", ".join(
            f"{p} (source {_count(theirs.get(p))} rows, extract {_count(ours.get(p))} rows"
            f"{', totals differ' if _count(theirs.get(p)) == _count(ours.get(p)) else ''})"
            for p in differing[:5]
        )
        more = f" and {len(differing) - 5} more" if len(differing) > 5 else ""
        raise ReconciliationError(
            f"{spec.name} does not reconcile with the source in {len(differing)} partition(s): "
            f"{shown}{more}. The live extract was kept. If rows were deleted or changed at the "
            f"source without a newer {spec.cursor}, run python cli.py sync --full --only {spec.name}."
        )


def _count(stats: tuple[str, ...] | None) -> str:
    return stats[0] if stats else "0"


@dataclass(frozen=True)
class TableStatus:
    table: str
    rows: int | None
    watermark: str | None
    synced_at: str | None
    mode: str | None


@dataclass(frozen=True)
class SyncStatus:
    """The live extract's last successful sync (failed attempts are in the audit log)."""

    source: str
    last_sync_at: str | None
    last_sync_full: bool
    tables: tuple[TableStatus, ...]
    suppressed_viewers: int
    generation: str


def sync_status(store: ExtractStore) -> SyncStatus:
    """What the live extract says about its last successful sync, per table."""
    meta = store.read_meta() if store.exists() else {}
    names = sorted(
        {k.split(".", 1)[1] for k in meta if k.startswith(("rows.", _WATERMARK, "synced_at."))}
    )
    tables = tuple(
        TableStatus(
            table=n,
            rows=int(meta[f"rows.{n}"]) if f"rows.{n}" in meta else None,
            watermark=meta.get(_WATERMARK + n),
            synced_at=meta.get(f"synced_at.{n}"),
            mode=meta.get(f"mode.{n}"),
        )
        for n in names
    )
    suppressed = len(suppressed_keys(store.cursor())) if store.exists() else 0
    return SyncStatus(
        source=meta.get("source", "none"),
        last_sync_at=meta.get("last_sync_at"),
        last_sync_full=meta.get("last_sync_full") == "true",
        tables=tables,
        suppressed_viewers=suppressed,
        generation=store.generation() if store.exists() else "",
    )
