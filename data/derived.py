"""Tables derived from the base tables when an extract is built (rollups, denormalised facts).

Every builder of an extract (the demo generator, the sync, an erasure) calls
``build_derived(con)`` after the base tables are complete and before the extract is swapped in,
so derived tables can never disagree with the base tables of the same file.
"""

from __future__ import annotations

import duckdb

# The metric catalog (data/metrics.py) reads these, never the base fact tables, so every metric
# has one exact source. Each is a denormalised copy of a fact with the dimension attributes its
# filters use joined in, sorted by day: DuckDB keeps min/max per row group, so a date-range query
# skips everything outside the range, and dictionary-compressed text keeps the copy small.
# LEFT JOINs: a fact row whose dimension row is missing still counts (it just matches no filter
# on that dimension), so totals equal the base tables exactly.

# Every viewer key (from the dimension and the facts, so no view is left out) numbered densely
# from 0. Exact distinct viewers are then counted as set bits of a bitmap (DuckDB's
# bitstring_agg) instead of a hash table: the same exact number, about 2x faster for one group
# and 10x for a trend's daily groups (measured on 10M views, see README Benchmarks).
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
GROUP BY day
ORDER BY day
"""

DV_REVENUE = """
CREATE TABLE dv_revenue AS
SELECT
    CAST(r.occurred_at AS DATE) AS day,
    r.stream,
    r.net,
    r.creator_id,
    w.country,
    w.age_band,
    w.plan,
    t.genre,
    t.kind
FROM fact_revenue r
LEFT JOIN dim_title t ON t.title_id = r.title_id
LEFT JOIN dim_viewer w ON w.viewer_key = r.viewer_key
ORDER BY day
"""

DV_AD = """
CREATE TABLE dv_ad AS
SELECT a.ad_date AS day, a.impressions, a.clicks, a.ad_revenue, t.genre, t.kind, t.creator_id
FROM fact_ad a
LEFT JOIN dim_title t ON t.title_id = a.title_id
ORDER BY day
"""

# Subscriptions by day: a subscription is active at the end of day d when it started on or before
# d and did not end on or before d. Price in whole cents so cumulative sums stay exact.
DV_SUBSCRIPTION = """
CREATE TABLE dv_subscription AS
SELECT
    s.viewer_key,
    s.plan,
    CAST(s.started_at AS DATE) AS start_day,
    CAST(s.ended_at AS DATE) AS end_day,
    CAST(round(s.monthly_price * 100) AS BIGINT) AS price_cents,
    row_number() OVER (
        PARTITION BY s.viewer_key ORDER BY s.started_at, s.subscription_id
    ) = 1 AS is_first,
    w.country,
    w.age_band,
    w.plan AS viewer_plan
FROM fact_subscription s
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

DERIVED_TABLES: tuple[tuple[str, str], ...] = (
    ("dv_viewer_index", DV_VIEWER_INDEX),
    ("dv_view", DV_VIEW),
    ("dv_view_day", DV_VIEW_DAY),
    ("dv_revenue", DV_REVENUE),
    ("dv_ad", DV_AD),
    ("dv_subscription", DV_SUBSCRIPTION),
    ("dv_sub_spell", DV_SUB_SPELL),
)


def build_derived(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)build every derived table from the base tables in the connection's current database."""
    for name, statement in DERIVED_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {name}")
        if "{max_viewer_idx}" in statement:
            statement = statement.replace("{max_viewer_idx}", str(max_viewer_idx(con)))
        con.execute(statement)


def max_viewer_idx(con: duckdb.DuckDBPyConnection) -> int:
    """The largest dense viewer number (bitmaps over viewers span 0..this); 0 when empty."""
    (count,) = con.execute("SELECT count(*) FROM dv_viewer_index").fetchone()
    return max(int(count) - 1, 0)
