"""The warehouse model (a star schema) and its DDL for Redshift, PostgreSQL and the DuckDB extract.

One description of each table drives every dialect, so the warehouse, the extract, the demo
generator and the sync cannot disagree on a column. Redshift-only clauses (DISTKEY, SORTKEY,
ENCODE) are rendered here and nowhere else, and are checked by parsing them in the Redshift
dialect (tests/unit/data/test_schema.py).

Conventions: timestamps are UTC without a zone; money is DECIMAL(14, 2) in the row's currency
(ISO 4217 code in its ``currency`` column; money on a table without one -- a title's licensing cost
and budget, ad delivery revenue -- is in the base currency, ``BASE_CURRENCY``); exchange rates are
dated, against the base currency (``fact_exchange_rate``); viewer keys are keyed pseudonyms (the first 63 bits of HMAC-SHA256 of the source id, see
``data.extract.pseudonym``), never a raw id; every table has ``updated_at``, the cursor an incremental
sync reads from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Dialect = Literal["redshift", "postgres", "duckdb"]

# The currency exchange rates are quoted against: one unit of it is 1 by definition, so it needs
# no rows in fact_exchange_rate, and a rate between two other currencies is the ratio of theirs.
BASE_CURRENCY = "USD"

# Logical type -> the type each dialect spells it with.
_TYPES: dict[str, dict[Dialect, str]] = {
    "id": {"redshift": "BIGINT", "postgres": "BIGINT", "duckdb": "BIGINT"},
    "int": {"redshift": "INTEGER", "postgres": "INTEGER", "duckdb": "INTEGER"},
    "small": {"redshift": "SMALLINT", "postgres": "SMALLINT", "duckdb": "SMALLINT"},
    "real": {"redshift": "DOUBLE PRECISION", "postgres": "DOUBLE PRECISION", "duckdb": "DOUBLE"},
    "money": {"redshift": "DECIMAL(14,2)", "postgres": "NUMERIC(14,2)", "duckdb": "DECIMAL(14,2)"},
    "ratio": {"redshift": "DECIMAL(5,4)", "postgres": "NUMERIC(5,4)", "duckdb": "DECIMAL(5,4)"},
    "bool": {"redshift": "BOOLEAN", "postgres": "BOOLEAN", "duckdb": "BOOLEAN"},
    "date": {"redshift": "DATE", "postgres": "DATE", "duckdb": "DATE"},
    "ts": {"redshift": "TIMESTAMP", "postgres": "TIMESTAMP", "duckdb": "TIMESTAMP"},
}


def _text_type(dialect: Dialect, length: int) -> str:
    return "VARCHAR" if dialect == "duckdb" else f"VARCHAR({length})"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # a key of _TYPES, or "text:N" for text of at most N characters
    nullable: bool = False
    doc: str = ""

    def sql_type(self, dialect: Dialect) -> str:
        if self.type.startswith("text:"):
            return _text_type(dialect, int(self.type.split(":", 1)[1]))
        return _TYPES[self.type][dialect]

    @property
    def is_text(self) -> bool:
        return self.type.startswith("text:")


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    doc: str
    cursor: str = "updated_at"
    # Redshift physical design: how rows are spread over slices and sorted on disk.
    dist_key: str | None = None
    sort_key: tuple[str, ...] = field(default_factory=tuple)
    has_viewer: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def ddl(self, dialect: Dialect, schema: str | None = None) -> str:
        """CREATE TABLE for one dialect; identifiers come from this module, never from input."""
        qualified = f"{schema}.{self.name}" if schema else self.name
        lines = [
            f"  {c.name} {c.sql_type(dialect)}{'' if c.nullable else ' NOT NULL'}"
            for c in self.columns
        ]
        if dialect != "duckdb":
            # In the extract, uniqueness is the loader's job (it de-duplicates on the key and the
            # reconciliation checks it); an index would slow every load and hold memory for nothing.
            lines.append(f"  PRIMARY KEY ({', '.join(self.primary_key)})")
        body = ",\n".join(lines)
        tail = ""
        if dialect == "redshift":
            tail = (
                f"\nDISTSTYLE KEY DISTKEY ({self.dist_key})" if self.dist_key else "\nDISTSTYLE ALL"
            )
            if self.sort_key:
                tail += f"\nCOMPOUND SORTKEY ({', '.join(self.sort_key)})"
        return f"CREATE TABLE IF NOT EXISTS {qualified} (\n{body}\n){tail}"


def _cols(*specs: tuple) -> tuple[Column, ...]:
    return tuple(Column(*spec) for spec in specs)


UPDATED = ("updated_at", "ts", False, "when the row last changed at the source (sync cursor)")

DIM_CREATOR = Table(
    "dim_creator",
    _cols(
        ("creator_id", "int"),
        ("name", "text:200"),
        ("kind", "text:20", False, "independent | studio | distributor"),
        ("revenue_share", "ratio", False, "share of attributed net revenue paid to the creator"),
        ("country", "text:2"),
        UPDATED,
    ),
    ("creator_id",),
    "Creators and studios who supply titles and are paid a revenue share.",
)

DIM_TITLE = Table(
    "dim_title",
    _cols(
        ("title_id", "int"),
        ("name", "text:300"),
        ("kind", "text:10", False, "movie | episode | live"),
        ("series_name", "text:300", True, "the series an episode belongs to"),
        ("season", "small", True),
        ("episode", "small", True),
        ("genre", "text:40", False, "primary genre, the one filters use"),
        ("genres", "text:200", False, "all genres, '|' separated"),
        ("release_date", "date"),
        ("runtime_min", "int"),
        ("language", "text:8"),
        ("maturity", "text:10"),
        ("creator_id", "int"),
        ("licensing_cost", "money"),
        ("budget", "money"),
        UPDATED,
    ),
    ("title_id",),
    "The catalog: movies, series episodes and live events.",
)

DIM_VIEWER = Table(
    "dim_viewer",
    _cols(
        ("viewer_key", "id", False, "keyed pseudonym of the viewer"),
        ("country", "text:2", False, "ISO 3166-1 alpha-2"),
        ("region", "text:40"),
        ("age_band", "text:8"),
        ("signup_date", "date"),
        ("plan", "text:16", False, "current plan: basic | standard | premium | ad_supported"),
        ("acquisition_channel", "text:24"),
        UPDATED,
    ),
    ("viewer_key",),
    "Viewers, pseudonymous: no name, e-mail or address ever reaches the extract.",
    dist_key="viewer_key",
    has_viewer=True,
)

FACT_VIEW = Table(
    "fact_view",
    _cols(
        ("view_id", "id"),
        ("viewer_key", "id"),
        ("title_id", "int"),
        ("started_at", "ts", False, "UTC"),
        ("watch_seconds", "int"),
        ("device", "text:16", False, "tv | mobile | web | tablet | console"),
        ("country", "text:2", False, "where the session was played"),
        ("tz_offset_min", "small", False, "the device's UTC offset at start, for local-time views"),
        ("completed", "bool", False, "reached at least 90% of the runtime"),
        UPDATED,
    ),
    ("view_id",),
    "One row per view session.",
    dist_key="viewer_key",
    sort_key=("started_at",),
    has_viewer=True,
)

FACT_SUBSCRIPTION = Table(
    "fact_subscription",
    _cols(
        ("subscription_id", "id"),
        ("viewer_key", "id"),
        ("plan", "text:16"),
        ("started_at", "ts"),
        ("ended_at", "ts", True, "NULL while active"),
        ("monthly_price", "money"),
        ("currency", "text:3"),
        UPDATED,
    ),
    ("subscription_id",),
    "Subscriptions; a resubscription is a new row.",
    dist_key="viewer_key",
    sort_key=("started_at",),
    has_viewer=True,
)

FACT_REVENUE = Table(
    "fact_revenue",
    _cols(
        ("revenue_id", "id"),
        ("occurred_at", "ts"),
        ("viewer_key", "id", True, "NULL for ad revenue"),
        ("title_id", "int", True, "NULL for subscription revenue"),
        ("creator_id", "int", True),
        ("stream", "text:12", False, "subscription | ppv | ad"),
        ("gross", "money"),
        ("fees", "money"),
        ("net", "money"),
        ("currency", "text:3"),
        UPDATED,
    ),
    ("revenue_id",),
    "Revenue events: subscription charges, pay-per-view purchases, ad revenue.",
    dist_key="revenue_id",
    sort_key=("occurred_at",),
    has_viewer=True,
)

FACT_AD = Table(
    "fact_ad",
    _cols(
        ("ad_date", "date"),
        ("title_id", "int"),
        ("campaign", "text:60"),
        ("impressions", "id"),
        ("clicks", "id"),
        ("ad_revenue", "money"),
        UPDATED,
    ),
    ("ad_date", "title_id", "campaign"),
    "Ad delivery per day, title and campaign.",
    dist_key="title_id",
    sort_key=("ad_date",),
)

FACT_INTERACTION = Table(
    "fact_interaction",
    _cols(
        ("interaction_id", "id"),
        ("occurred_at", "ts"),
        ("viewer_key", "id"),
        ("title_id", "int"),
        ("kind", "text:10", False, "poll | qa | reaction"),
        ("sentiment", "real", True, "-1 (negative) .. 1 (positive); reactions and Q&A"),
        UPDATED,
    ),
    ("interaction_id",),
    "Viewer interactions during playback.",
    dist_key="viewer_key",
    sort_key=("occurred_at",),
    has_viewer=True,
)

FACT_PAYOUT = Table(
    "fact_payout",
    _cols(
        ("payout_id", "id"),
        ("creator_id", "int"),
        ("period", "date", False, "first day of the month paid for"),
        ("amount", "money"),
        ("currency", "text:3"),
        ("status", "text:10", False, "estimated | finalised | held | paid"),
        ("paid_at", "ts", True),
        UPDATED,
    ),
    ("payout_id",),
    "Creator payouts by period.",
    sort_key=("period",),
)

# One base currency rather than a rate per pair: N rows a day instead of N x N, and every cross
# rate follows exactly (EUR -> JPY = rate_to_usd(EUR) / rate_to_usd(JPY)), as central banks
# publish them (the ECB quotes every currency against the euro).
FACT_EXCHANGE_RATE = Table(
    "fact_exchange_rate",
    _cols(
        ("rate_date", "date", False, "the UTC day the rate is for"),
        ("currency", "text:3", False, "ISO 4217 code; never the base currency (its rate is 1)"),
        ("rate_to_usd", "real", False, "US dollars one unit of the currency buys on rate_date"),
        UPDATED,
    ),
    ("rate_date", "currency"),
    "Daily exchange rates against the base currency (USD). An amount is converted at the latest "
    "rate on or up to 7 days before its day; with none, it is left out of converted totals.",
    sort_key=("rate_date",),
)

TABLES: tuple[Table, ...] = (
    DIM_CREATOR,
    DIM_TITLE,
    DIM_VIEWER,
    FACT_VIEW,
    FACT_SUBSCRIPTION,
    FACT_REVENUE,
    FACT_AD,
    FACT_INTERACTION,
    FACT_PAYOUT,
    FACT_EXCHANGE_RATE,
)
TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}
VIEWER_TABLES: tuple[Table, ...] = tuple(t for t in TABLES if t.has_viewer)

# The extract's own bookkeeping, created by the store: what built it and when, sync watermarks.
EXTRACT_META_DDL = (
    "CREATE TABLE IF NOT EXISTS extract_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)"
)


def warehouse_ddl(dialect: Literal["redshift", "postgres"], schema: str | None = None) -> list[str]:
    """Statements that create the warehouse model in Redshift or PostgreSQL.

    The tables come first, then (PostgreSQL only) their indexes, so a loader may run the
    tables, load, and create the indexes after (:func:`warehouse_index_ddl`).
    """
    tables = [t.ddl(dialect, schema) for t in TABLES]
    return tables + (warehouse_index_ddl(schema) if dialect == "postgres" else [])


def month_key_sql(column: str) -> str:
    """The first instant of ``column``'s month, spelled alike for Redshift, PostgreSQL and
    DuckDB (a date is made a timestamp first: PostgreSQL would otherwise truncate it as a
    timestamp with time zone, in the session's zone)."""
    return f"DATE_TRUNC('month', CAST({column} AS TIMESTAMP))"


def warehouse_index_ddl(schema: str | None = None) -> list[str]:
    """PostgreSQL's counterpart of what Redshift prunes blocks with, for the sync's reads.

    A B-tree on each table's sort key stands for Redshift's SORTKEY: the sync's reconciliation
    bounds each month it checks with a range on it, which Redshift answers from the zone maps
    of the sorted blocks and PostgreSQL from this index. A B-tree on the cursor (updated_at)
    serves the incremental read ``updated_at >= $1``; Redshift needs no index for it, since it
    keeps zone maps on every column, which prune that read as long as updated_at follows load
    order (rows are appended as they change).

    Statistics on the month of the sort key let PostgreSQL's planner see that the sync's
    reconciliation (grouped by :func:`month_key_sql`) makes a few dozen groups: without them it
    guesses one per distinct timestamp and sorts every row, spilling to disk (10M views:
    11.3 s with 800 MB of temporary files, against 7.2 s hashed). Redshift hashes anyway.
    """
    statements = []
    for t in TABLES:
        prefix = f"{schema}." if schema else ""
        qualified = f"{prefix}{t.name}"
        if t.sort_key:
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {t.name}_sort_idx ON {qualified} "
                f"({', '.join(t.sort_key)})"
            )
            if t.column(t.sort_key[0]).type in {"date", "ts"}:
                statements.append(
                    # Unlike an index, a statistics object lives in the current schema
                    # unless named with the table's.
                    f"CREATE STATISTICS IF NOT EXISTS {prefix}{t.name}_month_stats "
                    f"ON ({month_key_sql(t.sort_key[0])}) FROM {qualified}"
                )
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {t.name}_{t.cursor}_idx ON {qualified} ({t.cursor})"
        )
    return statements


def extract_ddl() -> list[str]:
    """Statements that create the extract's base tables in DuckDB."""
    return [t.ddl("duckdb") for t in TABLES] + [EXTRACT_META_DDL]
