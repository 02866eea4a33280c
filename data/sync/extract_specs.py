"""Declarative extract specs: what the sync reads from the warehouse for each extract table.

A spec says where a table's rows come from (a raw warehouse table, or an aggregate that runs in
the warehouse, for event tables too large to copy), its primary key and cursor column, how it is
refreshed (``incremental``: rows whose cursor is at or after the watermark minus an overlap
window; ``full``: everything, every time), how rows merge into the extract, the expected schema
(taken from :mod:`data.schema`), the schema drift it tolerates, and how it is partitioned for
reconciliation.

Every SQL statement the sync sends to the warehouse is rendered here, from identifiers in the
specs and the schema only; values are ``$n`` placeholders. The statements are plain SQL that
both Redshift and PostgreSQL run (``TO_CHAR``, ``NOT EXISTS``, ``DATE_PART('epoch', ...)``, window functions, temporary tables);
:func:`warehouse_statements` lists them so that a test parses each in sqlglot's Redshift dialect.
The DuckDB side of the reconciliation is rendered by the same functions, so that both sides
compute their control totals the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from data import schema
from data.schema import Column, Table
from data.sync.source_map import SourceMap, WarehouseMapping

Mode = Literal["incremental", "full"]
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
Side = Literal["warehouse", "duckdb"]

# The warehouse-side table of suppressed (erased) viewer keys: a temporary table of the sync's
# own session, filled from the extract's suppression list, so erased viewers never leave the
# warehouse at all.
SUPPRESSED_TEMP_TABLE = "spotlight_suppressed"


@dataclass(frozen=True)
class Partition:
    """How a table is cut into partitions whose row counts and checksums are reconciled."""

    kind: Literal["month", "bucket", "whole"]
    column: str = ""
    buckets: int = 16

    def sql(self, side: Side, alias: str = "src") -> str:
        """The partition key of a row: text for months, an integer bucket, or one constant."""
        if self.kind == "month":
            if side == "duckdb":
                return f"strftime({alias}.{self.column}, '%Y-%m')"
            return f"TO_CHAR({alias}.{self.column}, 'YYYY-MM')"
        if self.kind == "bucket":
            return f"MOD({alias}.{self.column}, {int(self.buckets)})"
        return "'*'"

    def group_sql(self, alias: str = "src") -> str:
        """What statistics group rows by: for months the month's first instant, which costs a
        fraction of formatting every row's label (the label is formatted once per group, by
        :meth:`label_sql`); the same spelling in the warehouse and DuckDB."""
        if self.kind == "month":
            return schema.month_key_sql(f"{alias}.{self.column}")
        if self.kind == "whole":
            # PostgreSQL refuses a bare string constant in GROUP BY; an expression is fine.
            return "CAST('*' AS VARCHAR)"
        return self.sql("warehouse", alias)

    def label_sql(self, side: Side, key: str) -> str:
        """The partition label (text) of a group whose key is ``key`` (see :meth:`group_sql`)."""
        if self.kind == "month":
            if side == "duckdb":
                return f"strftime({key}, '%Y-%m')"
            return f"TO_CHAR({key}, 'YYYY-MM')"
        return f"CAST({key} AS VARCHAR)"

    def ranges(self, partitions: Sequence[str]) -> list[tuple[str, str]]:
        """[start, end) bounds of the partition column covering ``partitions``, one per run of
        consecutive months, as 'YYYY-MM-DD' text; empty when the partitions are not months.

        The bounds only restate what the partition list says (a month is exactly the rows from
        its first day to the next month's first day), so adding them to a query changes no
        result; they let the warehouse skip blocks: Redshift's zone maps on the sort key, an
        index in PostgreSQL, DuckDB's min/max per row group.
        """
        if self.kind != "month":
            return []
        months: list[tuple[int, int]] = []
        for p in sorted(set(partitions)):
            if not _MONTH.fullmatch(p):
                return []
            months.append((int(p[:4]), int(p[5:])))
        runs: list[tuple[str, str]] = []
        for year, month in months:
            start = f"{year:04d}-{month:02d}-01"
            after = (year + month // 12, month % 12 + 1)
            end = f"{after[0]:04d}-{after[1]:02d}-01"
            if runs and runs[-1][1] == start:
                runs[-1] = (runs[-1][0], end)
            else:
                runs.append((start, end))
        return runs


@dataclass(frozen=True)
class ExtractSpec:
    """One extract table and how the sync fills it."""

    table: Table  # the extract table: name, columns and types, primary key, cursor
    mode: Mode = "incremental"
    partition: Partition = Partition("whole")
    # A raw spec copies ``source_table``; an aggregate spec runs ``aggregate`` in the warehouse.
    # The aggregate template has {source} (the qualified source table, aliased src) and {where}.
    source_table: str = ""
    aggregate: str = ""
    # For an aggregate, the columns of the source table it reads (checked for drift).
    source_columns: tuple[Column, ...] = ()
    # Rows selected by an incremental read: $1 is the lower bound (watermark minus overlap).
    incremental_filter: str = ""
    # "upsert": rows replace rows with the same primary key (latest cursor wins).
    # "replace": every extract row whose ``replace_on`` values appear in the new rows is replaced
    # (an aggregate recomputed for whole days).
    merge: Literal["upsert", "replace"] = "upsert"
    replace_on: tuple[str, ...] = ()
    # The column holding the viewer's keyed pseudonym in the source (suppression is applied there).
    viewer_column: str = ""
    # New source columns that may appear without failing the sync (they are not read).
    allowed_new_columns: frozenset[str] = frozenset()
    # Set to tolerate any new source column (never a changed or missing one).
    allow_any_new_column: bool = False
    # Columns whose source type may change as long as the value still casts to the extract type.
    allowed_type_changes: frozenset[str] = frozenset()
    doc: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    # For an aggregate: how its source rows fall into the aggregate's partitions (its months are
    # those of the source's started_at), to re-read some partitions of it.
    source_partition: Partition | None = None
    # Where the source lives in the operator's warehouse when its names are not the model's
    # (data/sync/source_map.py); None: ``source_table`` in the connection's schema.
    source_map: SourceMap | None = None

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def primary_key(self) -> tuple[str, ...]:
        return self.table.primary_key

    @property
    def cursor(self) -> str:
        return self.table.cursor

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.table.columns

    @property
    def is_aggregate(self) -> bool:
        return bool(self.aggregate)

    @property
    def checked_source_columns(self) -> tuple[Column, ...]:
        """The source table's expected columns, compared with the warehouse for schema drift."""
        return self.source_columns if self.is_aggregate else self.table.columns

    # --- warehouse SQL -----------------------------------------------------------------------
    def _source(self, source_schema: str) -> str:
        if self.source_map is not None:
            return self.source_map.relation(source_schema, self.checked_source_columns)
        return f"{source_schema}.{self.source_table}"

    def source_relation(self, source_schema: str) -> str:
        """What the sync's statements read ``FROM`` (aliased ``src``), in model names."""
        return self._source(source_schema)

    def source_location(self, source_schema: str) -> tuple[str, str]:
        """(schema, table) of the source as the warehouse's catalog names it."""
        if self.source_map is not None:
            return self.source_map.location(source_schema)
        return (source_schema, self.source_table)

    def source_column(self, model_column: str) -> str:
        """The source's name for a model column (the same name unless mapped)."""
        return self.source_map.column(model_column) if self.source_map else model_column

    def with_source(self, source_map: SourceMap | None) -> ExtractSpec:
        """This spec reading from ``source_map`` (a mapped source may allow extra columns)."""
        if source_map is None:
            return self
        return replace(
            self,
            source_map=source_map,
            allow_any_new_column=self.allow_any_new_column or source_map.allow_extra_columns,
        )

    def _where(self, source_schema: str, *, incremental: bool, suppress: bool) -> str:
        conditions = []
        if incremental:
            conditions.append(
                self.incremental_filter.format(source=self._source(source_schema))
                if self.incremental_filter
                else f"src.{self.cursor} >= $1"
            )
        if suppress and self.viewer_column:
            conditions.append(
                f"NOT EXISTS (SELECT 1 FROM {SUPPRESSED_TEMP_TABLE} AS sup "
                f"WHERE sup.viewer_key = src.{self.viewer_column})"
            )
        return " AND ".join(conditions) if conditions else "1 = 1"

    def select_sql(self, source_schema: str, *, incremental: bool, suppress: bool) -> str:
        """The rows to load: the whole source, or those changed since ``$1`` when incremental."""
        where = self._where(source_schema, incremental=incremental, suppress=suppress)
        if self.is_aggregate:
            return self.aggregate.format(source=self._source(source_schema), where=where)
        columns = ", ".join(f"src.{c.name}" for c in self.columns)
        return f"SELECT {columns} FROM {self._source(source_schema)} AS src WHERE {where}"

    def source_stats_sql(
        self,
        source_schema: str,
        *,
        suppress: bool,
        partitions: int | None = None,
        dedup: bool = False,
        ranges: int = 0,
    ) -> str:
        """Row count and control totals per partition of the source, as the extract should hold.

        With ``partitions``, only the partitions bound as ``$1..$n`` are described; with
        ``ranges`` instead (months), ``$1..$2*ranges`` bind the [start, end) bounds of
        :meth:`Partition.ranges`, so the warehouse reads only those blocks (bind
        :meth:`stats_params`). With ``dedup``, rows are de-duplicated on the primary key first
        (Redshift does not enforce primary keys, so the source may hold several versions of a
        row).
        """
        if self.is_aggregate:
            source = (
                "(" + self.select_sql(source_schema, incremental=False, suppress=suppress) + ")"
            )
            where = "1 = 1"
        else:
            source = self._source(source_schema)
            where = self._where(source_schema, incremental=False, suppress=suppress)
        return _stats_sql(self, source, where, "warehouse", partitions, dedup, ranges)

    def extract_stats_sql(self, partitions: int | None = None, ranges: int = 0) -> str:
        """The same statistics over the extract table in DuckDB (``?`` placeholders)."""
        return _stats_sql(self, self.name, "1 = 1", "duckdb", partitions, False, ranges)

    def stats_params(self, partitions: Sequence[str]) -> tuple[int, list[str]]:
        """For a statistics query limited to ``partitions``: the number of ranges to render,
        and the values to bind (each range's start and end; the partitions themselves when
        they are not months)."""
        ranges = self.partition.ranges(partitions)
        if not ranges:
            return 0, list(partitions)
        return len(ranges), [bound for r in ranges for bound in r]

    def survivor_order(self, alias: str) -> str:
        """ORDER BY that puts first the row kept among several with one primary key: the latest
        cursor, then (a documented, deterministic tie-break for equal cursors) the greater value
        of each other column in schema order, NULLs last. Text compares by code point in DuckDB
        and Redshift; a PostgreSQL warehouse should use a C (or C.UTF-8) collation for the same
        order."""
        rest = [c.name for c in self.columns if c.name not in (*self.primary_key, self.cursor)]
        return ", ".join(
            [f"{alias}.{self.cursor} DESC NULLS LAST"]
            + [f"{alias}.{name} DESC NULLS LAST" for name in rest]
        )

    @property
    def drift_columns(self) -> tuple[Column, ...]:
        """What the drift check totals per partition besides the row count: the cursor (a row
        changed with a new cursor) and a single integer key (a row replaced by another)."""
        picked = [self.table.column(self.cursor)]
        if len(self.primary_key) == 1 and self.table.column(self.primary_key[0]).type in {
            "id",
            "int",
            "small",
        }:
            picked.append(self.table.column(self.primary_key[0]))
        return tuple(picked)

    def source_drift_sql(self, source_schema: str, *, suppress: bool) -> str:
        """Cheap statistics of every partition of the source: row count and the drift columns'
        totals. Compared with :meth:`extract_drift_sql` on every incremental sync, they find
        partitions the watermark cannot see: rows deleted at the source, rows committed later
        than the overlap window."""
        where = self._where(source_schema, incremental=False, suppress=suppress)
        return _stats_sql(
            self,
            self._source(source_schema),
            where,
            "warehouse",
            None,
            False,
            0,
            self.drift_columns,
        )

    def extract_drift_sql(self) -> str:
        """The drift check's statistics over the extract table in DuckDB."""
        return _stats_sql(self, self.name, "1 = 1", "duckdb", None, False, 0, self.drift_columns)

    def select_partitions_sql(
        self, source_schema: str, *, suppress: bool, partitions: int, ranges: int = 0
    ) -> str:
        """Every source row of some partitions (bound as for :meth:`source_stats_sql`), to
        re-read the partitions the drift check found different."""
        where = self._where(source_schema, incremental=False, suppress=suppress)
        if self.is_aggregate:
            # The aggregate's months are its source rows' months (view_date of started_at).
            where += partition_filter(
                self, "warehouse", partitions, ranges, partition=self.source_partition
            )
            return self.aggregate.format(source=self._source(source_schema), where=where)
        where += partition_filter(self, "warehouse", partitions, ranges)
        columns = ", ".join(f"src.{c.name}" for c in self.columns)
        return f"SELECT {columns} FROM {self._source(source_schema)} AS src WHERE {where}"

    def columns_sql(self) -> str:
        """The source table's columns as the warehouse describes them ($1 schema, $2 table)."""
        return (
            "SELECT column_name, data_type, numeric_precision, numeric_scale "
            "FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 "
            "ORDER BY ordinal_position"
        )


# --- reconciliation totals: one definition for both sides -----------------------------------------
def _totals(column: Column, side: Side, alias: str) -> list[str]:
    """Control totals of one column, spelled so that the warehouse and DuckDB agree exactly.

    Integers and decimals are summed exactly; booleans count their trues; dates and timestamps
    sum their whole epoch seconds;
    floating-point values sum their thousandths (FLOOR of the same IEEE double is the same
    everywhere); text sums its length in characters. Nullable columns also count non-NULLs.
    """
    ref = f"{alias}.{column.name}"
    kind = column.type
    # SUM of a BIGINT is NUMERIC in PostgreSQL and Redshift and HUGEINT in DuckDB: no overflow,
    # and no per-row cast to DECIMAL, which PostgreSQL computes slowly.
    if kind == "bool":
        totals = [f"SUM(CASE WHEN {ref} THEN 1 ELSE 0 END)"]
    elif kind in {"money", "ratio"}:
        totals = [f"SUM({ref})"]
    elif kind == "real":
        totals = [f"SUM(CAST(FLOOR({ref} * 1000) AS BIGINT))"]
    elif kind in {"date", "ts"}:
        totals = [f"SUM(CAST(FLOOR(DATE_PART('epoch', CAST({ref} AS TIMESTAMP))) AS BIGINT))"]
    elif column.is_text:
        totals = [f"SUM(LENGTH({ref}))"]
    elif kind == "id":
        totals = [f"SUM({ref})"]
    else:
        totals = [f"SUM(CAST({ref} AS BIGINT))"]
    if column.nullable:
        totals.append(f"COUNT({ref})")
    return totals


def partition_filter(
    spec: ExtractSpec,
    side: Side,
    partitions: int | None,
    ranges: int = 0,
    alias: str = "src",
    partition: Partition | None = None,
) -> str:
    """`` AND (...)`` selecting the partitions bound as parameters, or "" for all of them.

    Months bind ``2 * ranges`` [start, end) bounds (sargable: each run of months as column >=
    start AND column < end, OR'd; they select exactly the listed months, see Partition.ranges);
    other partitions bind ``partitions`` labels. DuckDB binds ``?``, the warehouse ``$n``.
    """
    partition = partition or spec.partition
    if ranges and partition.kind == "month":
        column = partition.column
        table = spec.table if partition is spec.partition else None
        kind = "DATE" if table is not None and table.column(column).type == "date" else "TIMESTAMP"
        bounds = []
        for i in range(ranges):
            lo, hi = ("?", "?") if side == "duckdb" else (f"${2 * i + 1}", f"${2 * i + 2}")
            bounds.append(
                f"({alias}.{column} >= CAST({lo} AS {kind}) "
                f"AND {alias}.{column} < CAST({hi} AS {kind}))"
            )
        return f" AND ({' OR '.join(bounds)})"
    if partitions is not None:
        marks = (
            ", ".join("?" for _ in range(partitions))
            if side == "duckdb"
            else ", ".join(f"${i + 1}" for i in range(partitions))
        )
        part = f"CAST({partition.sql(side, alias)} AS VARCHAR)"
        return f" AND {part} IN ({marks or 'NULL'})"
    return ""


def _stats_sql(
    spec: ExtractSpec,
    source: str,
    where: str,
    side: Side,
    partitions: int | None,
    dedup: bool,
    ranges: int = 0,
    columns: Sequence[Column] | None = None,
) -> str:
    """Per partition: partition key as text, row count, then the control totals of each column
    (of ``columns`` when given: the drift check's cheap subset).

    With ``dedup`` the rows are first de-duplicated on the primary key as the sync does (the
    latest cursor wins); that costs a sort, so it is only asked for partitions that did not
    reconcile without it.
    """
    where = where + partition_filter(spec, side, partitions, ranges)
    if dedup:
        keys = ", ".join(f"src.{k}" for k in spec.primary_key)
        source = (
            f"(SELECT src.*, ROW_NUMBER() OVER (PARTITION BY {keys} "
            f"ORDER BY {spec.survivor_order('src')}) AS spotlight_rank FROM {source} AS src "
            f"WHERE {where})"
        )
        where = "src.spotlight_rank = 1"
    totals = [t for c in (columns or spec.columns) for t in _totals(c, side, "src")]
    key = spec.partition.group_sql("src")
    # Grouped by the key, labelled outside: every dialect accepts a GROUP BY of exactly what is
    # selected, and the label is formatted once per group.
    named = ", ".join(f"{t} AS spotlight_t{i}" for i, t in enumerate(totals))
    picked = ", ".join(f"g.spotlight_t{i}" for i in range(len(totals)))
    return (
        f"SELECT {spec.partition.label_sql(side, 'g.spotlight_key')} AS part, g.row_count, "
        f"{picked} FROM (SELECT {key} AS spotlight_key, COUNT(*) AS row_count, {named} "
        f"FROM {source} AS src WHERE {where} GROUP BY {key}) AS g ORDER BY 1"
    )


# --- expected source types, for schema drift -------------------------------------------------------
# information_schema.columns.data_type as PostgreSQL and Redshift report each logical type.
_SOURCE_TYPES: dict[str, tuple[str, int | None, int | None]] = {
    "id": ("bigint", None, None),
    "int": ("integer", None, None),
    "small": ("smallint", None, None),
    "real": ("double precision", None, None),
    "money": ("numeric", 14, 2),
    "ratio": ("numeric", 5, 4),
    "bool": ("boolean", None, None),
    "date": ("date", None, None),
    "ts": ("timestamp without time zone", None, None),
}


def expected_source_type(column: Column) -> tuple[str, int | None, int | None]:
    """(data_type, precision, scale) the warehouse should report; text length may vary."""
    if column.is_text:
        return ("character varying", None, None)
    return _SOURCE_TYPES[column.type]


@dataclass(frozen=True)
class ColumnIssue:
    """One way the source's columns differ from what the spec reads.

    ``kind``: ``missing_table`` (no columns visible at all), ``missing``, ``retyped`` or
    ``extra``; ``column`` is the model's name (the source's for an extra column), ``source``
    the source's name, ``found`` and ``expected`` the types as the catalog spells them.
    ``allowed`` marks a difference the spec tolerates (an extra column it was told to ignore).
    """

    kind: str
    column: str = ""
    source: str = ""
    found: str = ""
    expected: str = ""
    allowed: bool = False

    def describe(self) -> str:
        named = (
            self.column
            if self.source in ("", self.column)
            else (f"{self.column} (source column {self.source})")
        )
        if self.kind == "missing":
            return f"column {named} is missing"
        if self.kind == "retyped":
            return f"column {named} is {self.found}, expected {self.expected}"
        if self.kind == "extra":
            return f"new column {self.source} ({self.found})"
        return "source table not found"


def _shown_type(dtype: str, prec: int | None, scale: int | None, exact: bool) -> str:
    # A type without a precision (text where numeric(14,2) was expected) shows none.
    return f"{dtype}({prec},{scale})" if exact and prec is not None else dtype


def compare_columns(
    spec: ExtractSpec, found: list[tuple[str, str, int | None, int | None]]
) -> list[ColumnIssue]:
    """Every difference between the source's columns (name, data_type, precision, scale as
    information_schema.columns says) and the spec, allowed ones included (marked)."""
    actual = {name: (dtype, prec, scale) for name, dtype, prec, scale in found}
    if not actual:
        return [ColumnIssue("missing_table")]
    issues: list[ColumnIssue] = []
    read: set[str] = set()
    for column in spec.checked_source_columns:
        source = spec.source_column(column.name)
        read.add(source)
        if source not in actual:
            issues.append(ColumnIssue("missing", column.name, source))
            continue
        want = expected_source_type(column)
        dtype, prec, scale = actual[source]
        exact = want[1] is not None
        got = (dtype, prec, scale) if exact else (dtype, None, None)
        if dtype in {"character varying", "character", "text"} and column.is_text:
            continue
        if got != want:
            issues.append(
                ColumnIssue(
                    "retyped",
                    column.name,
                    source,
                    _shown_type(dtype, prec, scale, exact),
                    _shown_type(*want, exact),
                    allowed=column.name in spec.allowed_type_changes,
                )
            )
    for name, (dtype, _prec, _scale) in actual.items():
        if name not in read:
            allowed = spec.allow_any_new_column or name in spec.allowed_new_columns
            issues.append(ColumnIssue("extra", source=name, found=dtype, allowed=allowed))
    return issues


def describe_drift(
    spec: ExtractSpec, found: list[tuple[str, str, int | None, int | None]]
) -> list[str]:
    """The differences between the source's columns and the spec that the spec does not allow."""
    problems = []
    for issue in compare_columns(spec, found):
        if issue.kind == "missing_table":
            table = spec.source_map.table if spec.source_map else spec.source_table
            return [f"source table {table or spec.source_table} not found"]
        if not issue.allowed:
            problems.append(issue.describe())
    return problems


# --- the specs ------------------------------------------------------------------------------------
def _raw(table: Table, partition: Partition, **kwargs) -> ExtractSpec:
    viewer = "viewer_key" if table.has_viewer else ""
    return ExtractSpec(
        table=table, partition=partition, source_table=table.name, viewer_column=viewer, **kwargs
    )


def _month(column: str) -> Partition:
    return Partition("month", column)


def _bucket(column: str) -> Partition:
    return Partition("bucket", column)


FACT_VIEW_DAILY = Table(
    "fact_view_daily",
    (
        Column("view_date", "date"),
        Column("title_id", "int"),
        Column("country", "text:2"),
        Column("device", "text:16"),
        Column("views", "id"),
        Column("viewers", "id", doc="distinct viewers that day in this cell"),
        Column("watch_seconds", "id"),
        Column("completions", "id"),
        Column("updated_at", "ts", doc="latest updated_at of the views in the cell"),
    ),
    ("view_date", "title_id", "country", "device"),
    "Daily view rollup per title x country x device, aggregated in the warehouse.",
)

# The rollup runs in the warehouse: for billions of view events only the cells travel. An
# incremental read recomputes whole days touched by a changed view, and those days replace the
# extract's. It holds no viewer key, so it is not personal data; erased viewers are filtered out
# in the warehouse before aggregating, by the sync.
_DAILY_SQL = (
    "SELECT CAST(src.started_at AS DATE) AS view_date, src.title_id, src.country, src.device, "
    "COUNT(*) AS views, COUNT(DISTINCT src.viewer_key) AS viewers, "
    "SUM(CAST(src.watch_seconds AS BIGINT)) AS watch_seconds, "
    "SUM(CASE WHEN src.completed THEN 1 ELSE 0 END) AS completions, "
    "MAX(src.updated_at) AS updated_at "
    "FROM {source} AS src WHERE {where} "
    "GROUP BY CAST(src.started_at AS DATE), src.title_id, src.country, src.device"
)
_DAILY_INCREMENTAL = (
    "CAST(src.started_at AS DATE) IN (SELECT DISTINCT CAST(chg.started_at AS DATE) "
    "FROM {source} AS chg WHERE chg.updated_at >= $1)"
)

FACT_VIEW_DAILY_SPEC = ExtractSpec(
    table=FACT_VIEW_DAILY,
    partition=_month("view_date"),
    source_table="fact_view",
    aggregate=_DAILY_SQL,
    source_columns=schema.FACT_VIEW.columns,
    incremental_filter=_DAILY_INCREMENTAL,
    merge="replace",
    replace_on=("view_date",),
    viewer_column="viewer_key",
    doc=FACT_VIEW_DAILY.doc,
    source_partition=_month("started_at"),
)

SPECS: tuple[ExtractSpec, ...] = (
    # Small dimensions and payouts are re-read whole: cheap, and deletions follow at once.
    _raw(schema.DIM_CREATOR, _bucket("creator_id"), mode="full"),
    _raw(schema.DIM_TITLE, _bucket("title_id"), mode="full"),
    _raw(schema.DIM_VIEWER, _bucket("viewer_key")),
    _raw(schema.FACT_VIEW, _month("started_at")),
    _raw(schema.FACT_SUBSCRIPTION, _month("started_at")),
    _raw(schema.FACT_REVENUE, _month("occurred_at")),
    _raw(schema.FACT_AD, _month("ad_date")),
    _raw(schema.FACT_INTERACTION, _month("occurred_at")),
    _raw(schema.FACT_PAYOUT, _month("period"), mode="full"),
    _raw(schema.FACT_EXCHANGE_RATE, _month("rate_date")),
    FACT_VIEW_DAILY_SPEC,
)
SPECS_BY_NAME: dict[str, ExtractSpec] = {s.name: s for s in SPECS}
# What a sync builds unless told otherwise: every base table the app reads. The warehouse-side
# rollup is opt-in (settings.sync_tables), for deployments whose view events are too many to copy.
DEFAULT_TABLES: tuple[str, ...] = tuple(t.name for t in schema.TABLES)


def resolve(
    names: Iterable[str] | None = None, mapping: WarehouseMapping | None = None
) -> tuple[ExtractSpec, ...]:
    """The specs for the given extract table names (default: DEFAULT_TABLES), in sync order,
    each reading its source where ``mapping`` says (an aggregate: where its source table is)."""
    wanted = list(names) if names else list(DEFAULT_TABLES)
    unknown = [n for n in wanted if n not in SPECS_BY_NAME]
    if unknown:
        raise KeyError(
            f"unknown extract table(s): {', '.join(unknown)}; known: {', '.join(SPECS_BY_NAME)}"
        )
    mapping = mapping or WarehouseMapping()
    return tuple(s.with_source(mapping.get(s.source_table)) for s in SPECS if s.name in wanted)


def session_statements() -> list[str]:
    """Statements the sync runs once per warehouse session (snapshot and suppression list)."""
    return [
        SNAPSHOT_SQL,
        SUPPRESSED_CREATE_SQL,
        suppressed_insert_sql(3),
    ]


# One snapshot for reading a table and reconciling it, so that the checksums describe exactly
# the rows read even while the warehouse keeps loading. Redshift runs every transaction
# serializable and accepts this spelling; PostgreSQL needs it said.
SNAPSHOT_SQL = "BEGIN ISOLATION LEVEL REPEATABLE READ"
COMMIT_SQL = "COMMIT"
# The warehouse's own clock (UTC, no zone) at the start of the snapshot's transaction: no
# watermark may pass it, and rows dated after it are from the future. Redshift's SYSDATE is the
# transaction's start in UTC; PostgreSQL (the stand-in) has no SYSDATE and says it with now().
VERSION_SQL = "SELECT version()"
CLOCK_SQL = {
    "redshift": "SELECT SYSDATE",
    "postgres": "SELECT CAST(now() AT TIME ZONE 'UTC' AS TIMESTAMP)",
}
SUPPRESSED_CREATE_SQL = (
    f"CREATE TEMPORARY TABLE {SUPPRESSED_TEMP_TABLE} (viewer_key BIGINT NOT NULL)"
)


def suppressed_insert_sql(rows: int) -> str:
    """INSERT of ``rows`` suppressed keys into the session's temporary table, all bound."""
    values = ", ".join(f"(${i + 1})" for i in range(rows))
    return f"INSERT INTO {SUPPRESSED_TEMP_TABLE} (viewer_key) VALUES {values}"


def warehouse_statements(
    source_schema: str = "public", mapping: WarehouseMapping | None = None
) -> list[str]:
    """Every statement the sync can send to the warehouse, for the Redshift-dialect test."""
    statements = [*session_statements(), COMMIT_SQL, VERSION_SQL, CLOCK_SQL["redshift"]]
    for spec in resolve(SPECS_BY_NAME, mapping):
        statements.append(spec.columns_sql())
        for suppress in (False, True):
            statements.append(spec.source_drift_sql(source_schema, suppress=suppress))
            statements.append(
                spec.select_partitions_sql(source_schema, suppress=suppress, partitions=2)
            )
            statements.append(
                spec.select_partitions_sql(source_schema, suppress=suppress, partitions=3, ranges=2)
            )
        for suppress in (False, True):
            statements.append(spec.source_stats_sql(source_schema, suppress=suppress))
            statements.append(
                spec.source_stats_sql(source_schema, suppress=suppress, partitions=2, dedup=True)
            )
            statements.append(
                spec.source_stats_sql(
                    source_schema, suppress=suppress, partitions=3, dedup=True, ranges=2
                )
            )
            statements.append(
                spec.source_stats_sql(source_schema, suppress=suppress, partitions=3, ranges=2)
            )
            for incremental in (False, True):
                statements.append(
                    spec.select_sql(source_schema, incremental=incremental, suppress=suppress)
                )
    return statements
