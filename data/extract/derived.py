"""Tables derived from the base tables when an extract is built (rollups, denormalised facts).

Every builder of an extract (the demo generator, the sync, an erasure) calls
``build_derived(con)`` after the base tables are complete and before the extract is swapped in,
so derived tables can never disagree with the base tables of the same file.

Implausible source rows (data/extract/plausibility.py: a 68-year session, a negative price, a
start years ahead) are left out of every derived table built from fact_view, fact_subscription
and fact_revenue, and so out of every metric; the base tables keep them as the source has them.
The rules about the future are judged against the extract's own clock, ``as_of`` in
``extract_meta`` (written by the sync, and by the demo generator as the end of its last day).

Money: dv_revenue carries each amount in its own currency and in US dollars at the rate of its
day (``dv_rate_day``: the latest rate on or up to ``RATE_MAX_AGE_DAYS`` days before the day;
NULL when there is none, never 1:1). The metric queries convert to the reporting currency.
"""

from __future__ import annotations

import hashlib
import re
import time as clock
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time

import duckdb

from data.extract.plausibility import RULES, implausible_sql, plausible_sql
from data.schema import BASE_CURRENCY

# How old the latest rate may be for an amount's day: rates are not published on weekends and
# holidays, so an amount on a Sunday takes Friday's; an older one is a gap, not a rate.
RATE_MAX_AGE_DAYS = 7

# The metric catalog (data/queries/metrics.py) reads these, never the base fact tables, so every metric
# has one exact source. Each is a denormalised copy of a fact with the dimension attributes its
# filters use joined in, sorted by day: DuckDB keeps min/max per row group, so a date-range query
# skips everything outside the range, and dictionary-compressed text keeps the copy small.
# LEFT JOINs: a fact row whose dimension row is missing still counts (it just matches no filter
# on that dimension), so totals equal the base tables exactly.

# Every viewer key (from the dimension and the facts, so no view is left out) numbered densely
# from 0. Exact distinct viewers are then counted as set bits of a bitmap (DuckDB's
# bitstring_agg) instead of a hash table: the same exact number, about 2x faster for one group
# and 10x for a trend's daily groups (measured on 10M views, see bench/README.md).
DV_VIEWER_INDEX = """
CREATE TABLE dv_viewer_index AS
SELECT viewer_key, CAST(row_number() OVER (ORDER BY viewer_key) - 1 AS INTEGER) AS viewer_idx
FROM (SELECT viewer_key FROM dim_viewer UNION SELECT viewer_key FROM fact_view)
"""

DV_VIEW = """
CREATE TABLE dv_view AS
SELECT
    CAST(v.started_at AS DATE) AS day,
    v.viewer_key,
    x.viewer_idx,
    v.title_id,
    v.watch_seconds,
    v.completed,
    -- runtime-normalised views of this session (hours viewed / runtime hours); NULL without a runtime
    v.watch_seconds / (NULLIF(t.runtime_min, 0) * 60.0) AS views,
    v.device,
    v.country,
    w.plan,
    w.age_band,
    t.genre,
    t.kind,
    t.creator_id
FROM fact_view v
LEFT JOIN dim_title t ON t.title_id = v.title_id
LEFT JOIN dim_viewer w ON w.viewer_key = v.viewer_key
JOIN dv_viewer_index x ON x.viewer_key = v.viewer_key
WHERE {plausible:fact_view:v} AND {where}
ORDER BY day, t.creator_id
"""

# Per-day totals of the unfiltered views: the Overview's default (no dimension filter, every
# creator) sums a few hundred rows instead of scanning the facts. Distinct viewers are not
# stored here: a stored per-day viewer bitmap (62 KB a day at 500k viewers) was measured slower
# to read back from the encrypted file than counting the range's bits from dv_view directly.
DV_VIEW_DAY = """
CREATE TABLE dv_view_day AS
SELECT
    day,
    count(*) AS starts,
    sum(watch_seconds) AS watch_seconds,
    sum(views) AS views,
    count(*) FILTER (WHERE completed) AS completed
FROM dv_view
WHERE {where}
GROUP BY day
ORDER BY day
"""

# Per-day, per-title sums of all views: unfiltered top titles read about a ninth of the rows
# (1.1M day x title pairs for 10M views; 91 days: 6 ms against 23 ms in a probe).
DV_TITLE_DAY = """
CREATE TABLE dv_title_day AS
SELECT
    day,
    title_id,
    -- Narrow integer columns: a stored HUGEINT (what SUM of integers gives) scanned 6x slower.
    CAST(count(*) AS INTEGER) AS starts,
    CAST(sum(watch_seconds) AS BIGINT) AS watch_seconds,
    sum(views) AS views,
    CAST(count(*) FILTER (WHERE completed) AS INTEGER) AS completed
FROM dv_view
WHERE {where}
GROUP BY day, title_id
ORDER BY day, title_id
"""

# Each currency's rate for every day it has one: the latest valid rate dated on that day or up
# to RATE_MAX_AGE_DAYS before. A rate that is not a positive finite number is no rate. The base
# currency has no rows (its rate is 1).
DV_RATE_DAY = f"""
CREATE TABLE dv_rate_day AS
SELECT
    day,
    currency,
    arg_max(rate_to_usd, rate_date) AS rate_to_usd,
    max(rate_date) AS rate_date
FROM (
    SELECT x.rate_date + CAST(k.k AS INTEGER) AS day, x.currency, x.rate_date, x.rate_to_usd
    FROM fact_exchange_rate x CROSS JOIN range(0, {RATE_MAX_AGE_DAYS + 1}) AS k(k)
    WHERE x.rate_to_usd > 0 AND isfinite(x.rate_to_usd) AND x.currency <> '{BASE_CURRENCY}'
) AS r
WHERE {{where}}
GROUP BY day, currency
ORDER BY day, currency
"""

# gross, fees and net stay in the row's currency; net_usd is the same amount in the base currency at the rate
# of its day (NULL without one), which the metric queries sum or convert further.
DV_REVENUE = f"""
CREATE TABLE dv_revenue AS
SELECT
    CAST(r.occurred_at AS DATE) AS day,
    r.stream,
    r.gross,
    r.fees,
    r.net,
    r.currency,
    CASE
        WHEN r.currency = '{BASE_CURRENCY}' THEN CAST(r.net AS DOUBLE)
        ELSE CAST(r.net AS DOUBLE) * x.rate_to_usd
    END AS net_usd,
    -- What one unit of the row's currency was worth in USD that day (1 for USD, NULL: no rate),
    -- to convert gross and fees as net is converted.
    CASE WHEN r.currency = '{BASE_CURRENCY}' THEN 1.0 ELSE x.rate_to_usd END AS rate_usd,
    r.title_id,
    r.creator_id,
    w.country,
    w.age_band,
    w.plan,
    t.genre,
    t.kind
FROM fact_revenue r
LEFT JOIN dim_title t ON t.title_id = r.title_id
LEFT JOIN dim_viewer w ON w.viewer_key = r.viewer_key
LEFT JOIN dv_rate_day x ON x.day = CAST(r.occurred_at AS DATE) AND x.currency = r.currency
WHERE {{plausible:fact_revenue:r}} AND {{where}}
ORDER BY day
"""

DV_AD = """
CREATE TABLE dv_ad AS
SELECT a.ad_date AS day, a.impressions, a.clicks, a.ad_revenue, t.genre, t.kind, t.creator_id
FROM fact_ad a
LEFT JOIN dim_title t ON t.title_id = a.title_id
WHERE {where}
ORDER BY day
"""

# Subscriptions by day: a subscription is active at the end of day d when it started on or before
# d and did not end on or before d. Price in whole cents of its currency so cumulative sums stay
# exact (converted when a metric asks, at the rate of the day it is valued on). A viewer's first
# subscription is the first of the plausible ones.
DV_SUBSCRIPTION = """
CREATE TABLE dv_subscription AS
SELECT
    s.viewer_key,
    s.plan,
    CAST(s.started_at AS DATE) AS start_day,
    CAST(s.ended_at AS DATE) AS end_day,
    CAST(round(s.monthly_price * 100) AS BIGINT) AS price_cents,
    s.currency,
    row_number() OVER (
        PARTITION BY s.viewer_key ORDER BY s.started_at, s.subscription_id
    ) = 1 AS is_first,
    w.country,
    w.age_band,
    w.plan AS viewer_plan
FROM (SELECT * FROM fact_subscription s WHERE {plausible:fact_subscription:s}) AS s
LEFT JOIN dim_viewer w ON w.viewer_key = s.viewer_key
ORDER BY start_day
"""

# Each viewer's subscribed days merged into disjoint spells (gaps and islands), with the first
# day of the viewer's next spell. Distinct subscribers active in [a, b] is then exact from sums:
# spells with first_day <= b, minus spells with last_day < a, minus consecutive pairs of one
# viewer's spells that both touch [a, b] (last_day >= a and next_first_day <= b) -- a viewer's
# spells touching a range are a contiguous run, so each viewer counts once.
DV_SUB_SPELL = """
CREATE TABLE dv_sub_spell AS
WITH s AS (
    SELECT viewer_key, start_day, coalesce(end_day, DATE '9999-12-31') AS end_day
    FROM dv_subscription
),
m AS (
    SELECT *, max(end_day) OVER (
        PARTITION BY viewer_key ORDER BY start_day, end_day
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS prev_end
    FROM s
),
i AS (
    SELECT *, sum(CASE WHEN prev_end IS NULL OR start_day > prev_end THEN 1 ELSE 0 END) OVER (
        PARTITION BY viewer_key ORDER BY start_day, end_day ROWS UNBOUNDED PRECEDING
    ) AS island
    FROM m
),
spells AS (
    SELECT viewer_key, min(start_day) AS first_day, max(end_day) AS last_day
    FROM i GROUP BY viewer_key, island
)
SELECT
    p.viewer_key,
    p.first_day,
    p.last_day,
    lead(p.first_day) OVER (PARTITION BY p.viewer_key ORDER BY p.first_day) AS next_first_day,
    w.country,
    w.age_band,
    w.plan AS viewer_plan
FROM spells p
LEFT JOIN dim_viewer w ON w.viewer_key = p.viewer_key
ORDER BY p.first_day
"""

# The registry: (name, CREATE statement) in build order. A statement may reference any base table
# and any derived table listed before it; its inputs are read from the statement itself. A
# ``{where}`` in a statement is the slot where an incremental refresh (REFRESH below) restricts
# the rows it re-inserts; a full build fills it with TRUE. ``{plausible:<table>:<alias>}`` is
# the condition that keeps the plausible rows of a base table (data/extract/plausibility.py),
# judged against the extract's ``as_of``. An entry without a REFRESH rule is rebuilt whole
# whenever one of its inputs changed (or, when it reads a rule about the future, the clock
# moved), and left alone otherwise.
DERIVED_TABLES: tuple[tuple[str, str], ...] = (
    ("dv_viewer_index", DV_VIEWER_INDEX),
    ("dv_view", DV_VIEW),
    ("dv_view_day", DV_VIEW_DAY),
    ("dv_title_day", DV_TITLE_DAY),
    ("dv_rate_day", DV_RATE_DAY),
    ("dv_revenue", DV_REVENUE),
    ("dv_ad", DV_AD),
    ("dv_subscription", DV_SUBSCRIPTION),
    ("dv_sub_spell", DV_SUB_SPELL),
)

_META_PREFIX = "derived."
# The clock the derived tables were last built or refreshed with ("" for none).
_AS_OF_KEY = "derived_as_of"
_PLACEHOLDER = re.compile(r"\{(where|plausible:([a-z_]+):([a-z_]+))\}")
# Any clock: the SQL of the plausibility rules does not depend on its value, only on it being
# known, so a fingerprint taken with this one covers every rule.
_ANY_CLOCK = datetime(2000, 1, 1)


def _render(
    statement: str,
    as_of: datetime | None,
    where: str = "TRUE",
    where_params: Sequence[object] = (),
) -> tuple[str, list[object]]:
    """The statement with its slots filled, and the values to bind, in the order they appear."""
    params: list[object] = []

    def fill(found: re.Match[str]) -> str:
        if found.group(1) == "where":
            params.extend(where_params)
            return where
        sql, values = plausible_sql(found.group(2), as_of, found.group(3))
        params.extend(values)
        return f"({sql})"

    return _PLACEHOLDER.sub(fill, statement), params


def _statement(statement: str, where: str = "TRUE") -> str:
    """The statement without parameters (for parsing it): plausibility conditions left out."""
    return _PLACEHOLDER.sub(lambda m: where if m.group(1) == "where" else "TRUE", statement)


def _fingerprint(statement: str) -> str:
    # Over the rules as well: a changed plausibility rule rebuilds what it filters.
    rendered = _render(statement, _ANY_CLOCK)[0]
    return hashlib.sha256(rendered.encode()).hexdigest()[:16]


def _dated_inputs(statement: str) -> set[str]:
    """Base tables the statement filters with a rule about the future (it depends on as_of)."""
    return {
        table
        for table in re.findall(r"\{plausible:([a-z_]+):", statement)
        if any(rule.dated for rule in RULES.get(table, ()))
    }


def extract_as_of(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The extract's clock: ``as_of`` in extract_meta (ISO 8601; UTC, returned without a zone),
    or None when the extract does not say. An unreadable value raises ``ValueError``."""
    if not _has_table(con, "extract_meta"):
        return None
    row = con.execute("SELECT value FROM extract_meta WHERE key = 'as_of'").fetchone()
    if row is None or row[0] in (None, ""):
        return None
    moment = datetime.fromisoformat(str(row[0]))
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = ?",
            [name],
        ).fetchone()[0]
    )


def _record_fingerprints(con: duckdb.DuckDBPyConnection, names: Iterable[str]) -> None:
    """Note which version of each statement built a table, so a changed statement rebuilds it."""
    if not _has_table(con, "extract_meta"):
        return
    statements = dict(DERIVED_TABLES)
    for name in names:
        con.execute(
            "INSERT INTO extract_meta VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [_META_PREFIX + name, _fingerprint(statements[name])],
        )


def _record_as_of(con: duckdb.DuckDBPyConnection, as_of: datetime | None) -> None:
    if not _has_table(con, "extract_meta"):
        return
    con.execute(
        "INSERT INTO extract_meta VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [_AS_OF_KEY, as_of.isoformat() if as_of is not None else ""],
    )


def _rebuild(
    con: duckdb.DuckDBPyConnection, name: str, statement: str, as_of: datetime | None
) -> None:
    con.execute(f"DROP TABLE IF EXISTS {name}")
    if "{max_viewer_idx}" in statement:
        statement = statement.replace("{max_viewer_idx}", str(max_viewer_idx(con)))
    sql, params = _render(statement, as_of)
    con.execute(sql, params)


def build_derived(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)build every derived table from the base tables in the connection's current database,
    leaving out the rows the plausibility rules catch as of the extract's ``as_of``."""
    as_of = extract_as_of(con)
    for name, statement in DERIVED_TABLES:
        _rebuild(con, name, statement, as_of)
    _record_fingerprints(con, [name for name, _ in DERIVED_TABLES])
    _record_as_of(con, as_of)


def max_viewer_idx(con: duckdb.DuckDBPyConnection) -> int:
    """The largest dense viewer number (bitmaps over viewers span 0..this); 0 when empty."""
    (count,) = con.execute("SELECT count(*) FROM dv_viewer_index").fetchone()
    return max(int(count) - 1, 0)


# --- incremental refresh ----------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """How one table changed in this build, as the incremental refresh sees it.

    ``old`` and ``new`` name (temporary) tables with the base table's columns: the previous
    versions of changed or removed rows, and the current versions of changed or added rows.
    ``whole``: anything may have changed (rebuilt, or re-read without a comparison).
    ``days``: a derived table refreshed for the days in that (temporary) table's ``day`` column.
    ``appended``: rows were only appended (dense viewer numbers), none changed.
    """

    old: str = ""
    new: str = ""
    whole: bool = False
    days: str = ""
    appended: bool = False


WHOLE = Change(whole=True)


@dataclass(frozen=True)
class RowDays:
    """A fact input: the days (``day``, SQL over the fact's columns) of its changed rows, old
    and new versions, are re-inserted, with the ``span`` days after each (a rate is used for
    the days after its own)."""

    day: str
    span: int = 0


@dataclass(frozen=True)
class KeyDays:
    """A dimension input: the days of the fact rows that join a dimension row whose
    ``columns`` changed are re-inserted; ``days`` selects them, ``{keys}`` being a subquery of
    the changed keys (column ``key``)."""

    key: str
    columns: tuple[str, ...]
    days: str


@dataclass(frozen=True)
class KeyUpdate:
    """A dimension input whose attributes are copied into the derived table: rows whose
    ``target_key`` matches a dimension row with changed ``columns`` are updated in place with
    ``set`` (column -> SQL over ``k``, the dimension row; NULLs when it was removed)."""

    key: str
    target_key: str
    columns: tuple[str, ...]
    set: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SameDays:
    """A derived input refreshed by day: the same days are re-aggregated here."""


@dataclass(frozen=True)
class Appended:
    """An input that may only append (dense viewer numbers): no existing row changes."""


Input = RowDays | KeyDays | KeyUpdate | SameDays | Appended


@dataclass(frozen=True)
class DayRefresh:
    """Refresh a day-sorted derived table by deleting and re-inserting the changed days.

    ``where`` restricts the statement to the days in ``{days}`` (a table with a ``day``
    column). When the changed days are more than ``max_share`` of the table's days, or an
    input changed in a way ``inputs`` does not describe, the table is rebuilt whole.
    """

    where: str
    inputs: dict[str, Input]
    day: str = "day"
    max_share: float = 0.2
    # The column the statement's day comes from: bounded by the first and last changed day as
    # well, so that DuckDB skips row groups by their min/max (an IN on CAST(...) cannot).
    bounds: str = ""
    # The bounds are bound as timestamps for a TIMESTAMP column: compared with a DATE value,
    # DuckDB casts every row instead of skipping row groups (measured: 0.4 s against 3 ms on
    # 10M views).
    bounds_timestamp: bool = False


@dataclass(frozen=True)
class AppendViewers:
    """dv_viewer_index: new viewer keys get the next dense numbers; existing numbers never
    change (bitmaps over viewer_idx count distinct viewers, so numbers stay dense and unique).
    Rebuilt whole when a key may have left (a view moved to another viewer)."""


Rule = DayRefresh | AppendViewers

_VIEWER_DIM = ("viewer_key", ("plan", "age_band"))
REFRESH: dict[str, Rule] = {
    "dv_viewer_index": AppendViewers(),
    "dv_view": DayRefresh(
        where="CAST(v.started_at AS DATE) IN (SELECT day FROM {days})",
        bounds="v.started_at",
        bounds_timestamp=True,
        inputs={
            "fact_view": RowDays("CAST(started_at AS DATE)"),
            "dv_viewer_index": Appended(),
            "dim_viewer": KeyUpdate(
                "viewer_key",
                "viewer_key",
                ("plan", "age_band"),
                (("plan", "k.plan"), ("age_band", "k.age_band")),
            ),
            "dim_title": KeyUpdate(
                "title_id",
                "title_id",
                ("runtime_min", "genre", "kind", "creator_id"),
                (
                    ("views", "watch_seconds / (NULLIF(k.runtime_min, 0) * 60.0)"),
                    ("genre", "k.genre"),
                    ("kind", "k.kind"),
                    ("creator_id", "k.creator_id"),
                ),
            ),
        },
    ),
    "dv_view_day": DayRefresh(
        where="day IN (SELECT day FROM {days})", inputs={"dv_view": SameDays()}
    ),
    "dv_title_day": DayRefresh(
        where="day IN (SELECT day FROM {days})", inputs={"dv_view": SameDays()}
    ),
    "dv_rate_day": DayRefresh(
        where="day IN (SELECT day FROM {days})",
        inputs={"fact_exchange_rate": RowDays("rate_date", span=RATE_MAX_AGE_DAYS)},
        # A few rows a day: rebuilding it is cheap, but would rebuild dv_revenue whole.
        max_share=0.5,
    ),
    "dv_revenue": DayRefresh(
        where="CAST(r.occurred_at AS DATE) IN (SELECT day FROM {days})",
        bounds="r.occurred_at",
        bounds_timestamp=True,
        inputs={
            "fact_revenue": RowDays("CAST(occurred_at AS DATE)"),
            "dv_rate_day": SameDays(),
            "dim_title": KeyDays(
                "title_id",
                ("genre", "kind"),
                "SELECT CAST(occurred_at AS DATE) FROM fact_revenue "
                "WHERE title_id IN (SELECT key FROM {keys})",
            ),
            "dim_viewer": KeyDays(
                "viewer_key",
                ("country", "age_band", "plan"),
                "SELECT CAST(occurred_at AS DATE) FROM fact_revenue "
                "WHERE viewer_key IN (SELECT key FROM {keys})",
            ),
        },
    ),
    "dv_ad": DayRefresh(
        where="a.ad_date IN (SELECT day FROM {days})",
        bounds="a.ad_date",
        inputs={
            "fact_ad": RowDays("ad_date"),
            "dim_title": KeyDays(
                "title_id",
                ("genre", "kind", "creator_id"),
                "SELECT ad_date FROM fact_ad WHERE title_id IN (SELECT key FROM {keys})",
            ),
        },
    ),
}


def derived_inputs(con: duckdb.DuckDBPyConnection, statement: str) -> set[str]:
    """The tables a derived statement reads (parsed by DuckDB; names, unqualified)."""
    return {str(n) for n in con.get_table_names(_statement(statement))}


def refresh_derived(
    con: duckdb.DuckDBPyConnection,
    changes: Mapping[str, Change],
    timings: dict[str, float] | None = None,
) -> dict[str, str]:
    """Bring every derived table up to date after the base tables in ``changes`` changed.

    ``changes`` names every base table that changed since the derived tables were last built
    (absent: unchanged). Each derived table is left alone when none of its inputs changed,
    refreshed by its REFRESH rule when it has one and the change is small, and rebuilt whole
    otherwise (also when it is missing or its statement is not the one that built it). The
    result equals ``build_derived`` except that dv_viewer_index may number viewers
    differently (densely and uniquely all the same). Returns what was done per table; seconds
    per table go to ``timings`` when given.

    When the extract's clock (``as_of``) moved since the last build, rows may have crossed the
    "more than a day in the future" line without changing: the rows the plausibility rules
    judge differently under the two clocks count as changed rows of their table, for every
    derived table that reads such a rule (usually there are none, and nothing is redone).
    """
    done: dict[str, str] = {}
    outcome: dict[str, Change] = dict(changes)
    built = _built_fingerprints(con)
    as_of = extract_as_of(con)
    before = _recorded_as_of(con)
    crossed: dict[str, str | None] = {}
    for name, statement in DERIVED_TABLES:
        started = clock.perf_counter()
        inputs = derived_inputs(con, statement) - {name}
        changed = {i: outcome[i] for i in sorted(inputs) if i in outcome}
        if before != as_of:
            for table in sorted(_dated_inputs(statement)):
                if table not in crossed:
                    crossed[table] = _crossed_rows(con, table, before, as_of)
                if crossed[table]:
                    changed[table] = _with_rows(con, table, changed.get(table), crossed[table])
        rule = REFRESH.get(name)
        result: Change | None
        if not _has_table(con, name) or built.get(name) != _fingerprint(statement):
            result = None
        elif not changed:
            done[name] = "kept"
            if timings is not None:
                timings[name] = round(clock.perf_counter() - started, 3)
            continue
        elif rule is None:
            result = None
        elif isinstance(rule, AppendViewers):
            result = _append_viewers(con, name, changed)
        else:
            result = _refresh_days(con, name, statement, rule, changed, as_of)
        if result is None:
            _rebuild(con, name, statement, as_of)
            _record_fingerprints(con, [name])
            result = WHOLE
            done[name] = "rebuilt"
        else:
            done[name] = _describe(con, result)
        outcome[name] = result
        if timings is not None:
            timings[name] = round(clock.perf_counter() - started, 3)
    _record_as_of(con, as_of)
    return done


def _recorded_as_of(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The clock the derived tables were last built with (None: none, or not recorded)."""
    if not _has_table(con, "extract_meta"):
        return None
    row = con.execute("SELECT value FROM extract_meta WHERE key = ?", [_AS_OF_KEY]).fetchone()
    return datetime.fromisoformat(str(row[0])) if row and row[0] else None


def _crossed_rows(
    con: duckdb.DuckDBPyConnection, table: str, before: datetime | None, after: datetime | None
) -> str | None:
    """A temporary table of the rows of ``table`` that the plausibility rules judge
    differently under the two clocks (a row dated between the two "a day after the clock"
    lines), or None when there are none."""
    old_sql, old_params = implausible_sql(table, before)
    new_sql, new_params = implausible_sql(table, after)
    rows = f"spotlight_crossed_{table}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {rows} AS SELECT * FROM {table} AS src "
        f"WHERE ({old_sql}) <> ({new_sql})",
        [*old_params, *new_params],
    )
    (n,) = con.execute(f"SELECT count(*) FROM {rows}").fetchone()
    return rows if n else None


def _with_rows(
    con: duckdb.DuckDBPyConnection, table: str, change: Change | None, rows: str
) -> Change:
    """``change`` with ``rows`` added to its changed rows (their days are redone too)."""
    if change is None:
        return Change(new=rows)
    if change.whole or not change.new:
        return change if change.whole else Change(old=change.old, new=rows)
    both = f"spotlight_changed_{table}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {both} AS "
        f"SELECT * FROM {change.new} UNION ALL SELECT * FROM {rows}"
    )
    return Change(old=change.old, new=both)


def _describe(con: duckdb.DuckDBPyConnection, change: Change) -> str:
    if change.days:
        (n,) = con.execute(f"SELECT count(*) FROM {change.days}").fetchone()
        return f"refreshed {n} day(s)"
    return "appended"


def _built_fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    if not _has_table(con, "extract_meta"):
        return {}
    rows = con.execute(
        "SELECT key, value FROM extract_meta WHERE starts_with(key, ?)", [_META_PREFIX]
    ).fetchall()
    return {str(k)[len(_META_PREFIX) :]: str(v) for k, v in rows}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [str(r[0]) for r in con.execute(f"SELECT * FROM {table} LIMIT 0").description]


def _versions(change: Change, column: str) -> str:
    """Both versions of the changed rows' ``column`` (old and new), as one subquery."""
    parts = [f"SELECT {column} AS v FROM {t}" for t in (change.old, change.new) if t]
    return " UNION ALL ".join(parts) if parts else "SELECT NULL AS v WHERE FALSE"


def _changed_keys(change: Change, key: str, columns: Sequence[str]) -> str:
    """Keys of dimension rows added, removed, or with any of ``columns`` changed."""
    old = change.old or f"(SELECT * FROM {change.new} WHERE FALSE)"
    new = change.new or f"(SELECT * FROM {change.old} WHERE FALSE)"
    differs = " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in columns)
    return (
        f"SELECT DISTINCT coalesce(n.{key}, o.{key}) AS key FROM {new} AS n "
        f"FULL OUTER JOIN {old} AS o ON o.{key} = n.{key} "
        f"WHERE o.{key} IS NULL OR n.{key} IS NULL OR {differs or 'FALSE'}"
    )


def _refresh_days(
    con: duckdb.DuckDBPyConnection,
    name: str,
    statement: str,
    rule: DayRefresh,
    changed: Mapping[str, Change],
    as_of: datetime | None = None,
) -> Change | None:
    """Delete and re-insert the changed days; None when the table should be rebuilt whole."""
    if "{where}" not in statement:
        return None
    day_sources: list[str] = []
    updates: list[tuple[str, KeyUpdate, Change]] = []
    for table, change in changed.items():
        how = rule.inputs.get(table)
        if how is None or change.whole:
            return None
        if isinstance(how, RowDays):
            day = f"{how.day} + CAST(s.s AS INTEGER)" if how.span else how.day
            spread = f" CROSS JOIN range(0, {int(how.span) + 1}) AS s(s)" if how.span else ""
            day_sources.append(
                " UNION ALL ".join(
                    f"SELECT {day} AS day FROM {t}{spread}" for t in (change.old, change.new) if t
                )
            )
        elif isinstance(how, KeyDays):
            if not (change.old or change.new):
                return None
            keys = f"({_changed_keys(change, how.key, how.columns)})"
            day_sources.append(f"SELECT day FROM ({how.days.replace('{keys}', keys)}) AS d(day)")
        elif isinstance(how, KeyUpdate):
            if not (change.old or change.new):
                return None
            updates.append((table, how, change))
        elif isinstance(how, SameDays):
            if not change.days:
                return None
            day_sources.append(f"SELECT day FROM {change.days}")
        elif isinstance(how, Appended) and not change.appended:
            return None
    days = f"spotlight_days_{name}"
    sources = [d for d in day_sources if d] or ["SELECT CAST(NULL AS DATE) AS day WHERE FALSE"]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {days} AS SELECT DISTINCT CAST(day AS DATE) AS day "
        f"FROM ({' UNION ALL '.join(f'SELECT day FROM ({q})' for q in sources)}) "
        "WHERE day IS NOT NULL"
    )
    (n_days,) = con.execute(f"SELECT count(*) FROM {days}").fetchone()
    if n_days:
        (total,) = con.execute(f"SELECT count(DISTINCT {rule.day}) FROM {name}").fetchone()
        if n_days > rule.max_share * max(int(total), 1):
            return None
        low, high = con.execute(f"SELECT min(day), max(day) + 1 FROM {days}").fetchone()
        con.execute(
            f"DELETE FROM {name} WHERE {rule.day} IN (SELECT day FROM {days}) "
            f"AND {rule.day} >= ? AND {rule.day} < ?",
            [low, high],
        )
        where = rule.where.replace("{days}", days)
        params: list[object] = []
        if rule.bounds:
            where = f"{where} AND {rule.bounds} >= ? AND {rule.bounds} < ?"
            params = (
                [datetime.combine(low, time()), datetime.combine(high, time())]
                if rule.bounds_timestamp
                else [low, high]
            )
        insert, params = _render(statement, as_of, where, params)
        found = re.match(rf"\s*CREATE\s+TABLE\s+{name}\s+AS\s", insert, re.IGNORECASE)
        if found is None:
            return None
        select = insert[found.end() :]
        con.execute(f"INSERT INTO {name} {select}", params)
    for table, how, change in updates:
        keys = f"spotlight_keys_{name}"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {keys} AS SELECT c.key AS spotlight_key, "
            + ", ".join(f"d.{c}" for c in how.columns)
            + f" FROM ({_changed_keys(change, how.key, how.columns)}) AS c "
            f"LEFT JOIN {table} AS d ON d.{how.key} = c.key"
        )
        (n_keys,) = con.execute(f"SELECT count(*) FROM {keys}").fetchone()
        if not n_keys:
            continue
        assignments = ", ".join(f"{column} = {expr}" for column, expr in how.set)
        match = f"{how.target_key} IN (SELECT spotlight_key FROM {keys})"
        # The updated rows' days changed too, for tables aggregated from this one.
        con.execute(
            f"INSERT INTO {days} SELECT DISTINCT {rule.day} FROM {name} WHERE {match} "
            f"AND {rule.day} NOT IN (SELECT day FROM {days})"
        )
        con.execute(
            f"UPDATE {name} SET {assignments} FROM {keys} AS k "
            f"WHERE {name}.{how.target_key} = k.spotlight_key"
        )
    return Change(days=days)


def _append_viewers(
    con: duckdb.DuckDBPyConnection, name: str, changed: Mapping[str, Change]
) -> Change | None:
    """Number new viewer keys after the existing ones; None when a rebuild is needed."""
    if set(changed) - {"dim_viewer", "fact_view"}:
        return None
    if any(c.whole or not (c.old or c.new) for c in changed.values()):
        return None
    count, high = con.execute(f"SELECT count(*), max(viewer_idx) FROM {name}").fetchone()
    if int(count) != (-1 if high is None else int(high)) + 1:
        return None  # not dense: renumber from scratch
    new_keys = (
        " UNION ".join(f"SELECT viewer_key FROM {c.new}" for c in changed.values() if c.new)
        or "SELECT CAST(NULL AS BIGINT) AS viewer_key WHERE FALSE"
    )
    old_keys = " UNION ".join(f"SELECT viewer_key FROM {c.old}" for c in changed.values() if c.old)
    if old_keys:
        # A key held only by rows that moved to another viewer may have left both tables; a
        # whole rebuild would drop it, so do the same (rare: a view re-attributed).
        (gone,) = con.execute(
            f"SELECT count(*) FROM (({old_keys}) EXCEPT ({new_keys})) AS c "
            "WHERE NOT EXISTS (SELECT 1 FROM dim_viewer d WHERE d.viewer_key = c.viewer_key) "
            "AND NOT EXISTS (SELECT 1 FROM fact_view f WHERE f.viewer_key = c.viewer_key)"
        ).fetchone()
        if gone:
            return None
    con.execute(
        f"INSERT INTO {name} SELECT viewer_key, "
        f"CAST({int(count)} + row_number() OVER (ORDER BY viewer_key) - 1 AS INTEGER) "
        f"FROM (SELECT DISTINCT viewer_key FROM ({new_keys}) AS n WHERE viewer_key IS NOT NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {name} AS x WHERE x.viewer_key = n.viewer_key))"
    )
    return Change(appended=True)
