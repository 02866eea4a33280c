"""The incremental refresh of derived tables equals a whole rebuild, whatever changed.

Random changes are applied to the base tables the way an incremental sync applies them
(``data.sync.run.merge_rows`` for incremental tables, ``reload_rows`` for tables re-read whole):
new views, views moved to other days and other viewers, new viewers, dimension attributes
changed, revenue, ads and subscriptions. After each round ``refresh_derived`` must leave every
derived table equal, as a set of rows, to what ``build_derived`` makes from the same base
tables. Viewer numbers may differ from a rebuild's but must be dense, unique and cover the
same keys, so dv_view is compared with viewer_idx mapped back to viewer_key. DuckDB only.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest

from data import schema
from data.demo import DemoConfig, generate
from data.extract.derived import DERIVED_TABLES, build_derived, refresh_derived
from data.sync.extract_specs import SPECS_BY_NAME
from data.sync.run import merge_rows, reload_rows

END = date(2026, 10, 31)
DAYS = 90
LATER = datetime(2026, 11, 1)


@pytest.fixture(scope="module")
def base() -> dict[str, pa.Table]:
    tables: dict[str, list[pa.RecordBatch]] = {}
    config = DemoConfig(viewers=150, views=2_000, seed=3, end=END, days=DAYS)
    for name, table in generate(config, "refresh-test-pseudonym-key-0123456789"):
        tables.setdefault(name, []).extend(table.to_batches())
    return {name: pa.Table.from_batches(batches) for name, batches in tables.items()}


def _extract(base: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for statement in schema.extract_ddl():
        con.execute(statement)
    for name, table in base.items():
        con.register("rows", table)
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM rows")
        con.unregister("rows")
    build_derived(con)
    return con


def _rebuilt(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A second database with the same base tables and clock (``as_of``), its derived tables
    built whole."""
    ref = duckdb.connect()
    for statement in schema.extract_ddl():
        ref.execute(statement)
    for table in schema.TABLES:
        rows = con.execute(f"SELECT * FROM {table.name}").to_arrow_table()
        ref.register("rows", rows)
        ref.execute(f"INSERT INTO {table.name} SELECT * FROM rows")
        ref.unregister("rows")
    clock = con.execute("SELECT value FROM extract_meta WHERE key = 'as_of'").fetchall()
    if clock:
        ref.execute("INSERT INTO extract_meta VALUES ('as_of', ?)", [clock[0][0]])
    build_derived(ref)
    return ref


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    # Doubles are summed in a different order by a refresh than by a rebuild.
    rows = con.execute(sql).fetchall()
    return sorted(
        (tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in rows),
        key=repr,
    )


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(f"SELECT * FROM {table} LIMIT 0").description]


def assert_derived_equal(con: duckdb.DuckDBPyConnection) -> None:
    ref = _rebuilt(con)
    for name, _ in DERIVED_TABLES:
        if name == "dv_viewer_index":
            count, distinct, low, high = con.execute(
                "SELECT count(*), count(DISTINCT viewer_idx), min(viewer_idx), max(viewer_idx) "
                "FROM dv_viewer_index"
            ).fetchone()
            assert count == distinct == high + 1 and low == 0, "dense and unique"
            assert _rows(con, "SELECT viewer_key FROM dv_viewer_index") == _rows(
                ref, "SELECT viewer_key FROM dv_viewer_index"
            ), "the same viewer keys"
            continue
        columns = _columns(ref, name)
        assert _columns(con, name) == columns, name
        if "viewer_idx" in columns:
            # Each row's viewer number must be its viewer's, in this database's numbering.
            (wrong,) = con.execute(
                f"SELECT count(*) FROM {name} AS d LEFT JOIN dv_viewer_index AS x "
                "ON x.viewer_key = d.viewer_key WHERE x.viewer_idx IS DISTINCT FROM d.viewer_idx"
            ).fetchone()
            assert wrong == 0, f"{name}: viewer_idx does not match dv_viewer_index"
            columns = [c for c in columns if c != "viewer_idx"]
        select = f"SELECT {', '.join(columns)} FROM {name}"
        assert _rows(con, select) == _rows(ref, select), f"{name} differs from a rebuild"


def _stage(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> str:
    name = f"test_rows_{table}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {table} LIMIT 0")
    if rows:
        marks = ", ".join("?" for _ in rows[0])
        con.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
    return name


def _change_round(con: duckdb.DuckDBPyConnection, rng: random.Random, step: int, spread: bool):
    """One sync's worth of random changes; returns the changes as the sync would record them."""
    now = LATER + timedelta(hours=step)
    changes = {}
    cols = _columns(con, "fact_view")
    views = con.execute("SELECT * FROM fact_view ORDER BY view_id").fetchall()
    viewers = [r[0] for r in con.execute("SELECT viewer_key FROM dim_viewer").fetchall()]
    at = {c: i for i, c in enumerate(cols)}
    staged = []
    # Updates: new watch time, some moved to another day, some to another (or a new) viewer.
    picked = rng.sample(views, 40 if spread else 8)
    new_viewer = 9_000_000_000 + step * 1000
    for i, row in enumerate(picked):
        row = list(row)
        row[at["watch_seconds"]] = row[at["watch_seconds"]] + 1 + i
        if i % 3 == 0:
            row[at["started_at"]] = row[at["started_at"]] + timedelta(days=rng.randint(-5, 5))
        if i % 4 == 1:
            row[at["viewer_key"]] = rng.choice(viewers)
        if i % 7 == 2:
            row[at["viewer_key"]] = new_viewer + i
        row[at["updated_at"]] = now
        staged.append(tuple(row))
    # Re-read rows that did not change (the overlap window) change nothing.
    staged.extend(rng.sample(views, 5))
    # New views of the last days, one by a viewer not yet in dim_viewer.
    top = max(r[at["view_id"]] for r in views)
    for i in range(6):
        row = list(rng.choice(views))
        row[at["view_id"]] = top + 1 + i
        row[at["started_at"]] = datetime(2026, 10, 30, 12) + timedelta(hours=i)
        row[at["viewer_key"]] = new_viewer + 500 if i == 0 else row[at["viewer_key"]]
        row[at["updated_at"]] = now
        staged.append(tuple(row))
    spec = SPECS_BY_NAME["fact_view"]
    if (change := merge_rows(con, spec, _stage(con, "fact_view", staged))) is not None:
        changes["fact_view"] = change

    # dim_viewer: a plan change, and a new viewer (the one who just watched).
    dv_cols = _columns(con, "dim_viewer")
    first = list(con.execute("SELECT * FROM dim_viewer ORDER BY viewer_key LIMIT 1").fetchone())
    first[dv_cols.index("plan")] = (
        "premium" if first[dv_cols.index("plan")] != "premium" else "basic"
    )
    first[dv_cols.index("updated_at")] = now
    fresh = list(first)
    fresh[dv_cols.index("viewer_key")] = new_viewer + 500
    fresh[dv_cols.index("age_band")] = "25-34"
    rows = [tuple(first), tuple(fresh)]
    if change := merge_rows(con, SPECS_BY_NAME["dim_viewer"], _stage(con, "dim_viewer", rows)):
        changes["dim_viewer"] = change

    # dim_title, re-read whole: one genre and one runtime change, one new title.
    titles = con.execute("SELECT * FROM dim_title ORDER BY title_id").fetchall()
    tc = _columns(con, "dim_title")
    titles = [list(t) for t in titles]
    victim = rng.randrange(len(titles))
    if step % 2:
        titles[victim][tc.index("genre")] = "Documentary"
    else:
        titles[victim][tc.index("runtime_min")] += 7
    titles[victim][tc.index("updated_at")] = now
    extra = list(titles[0])
    extra[tc.index("title_id")] = 100_000 + step
    titles.append(extra)
    change = reload_rows(
        con, SPECS_BY_NAME["dim_title"], _stage(con, "dim_title", [tuple(t) for t in titles])
    )
    if change is not None:
        changes["dim_title"] = change

    # Revenue and ads on a few days; a subscription (no incremental rule: rebuilt whole).
    rc = _columns(con, "fact_revenue")
    revenue = [list(r) for r in con.execute("SELECT * FROM fact_revenue").fetchall()]
    staged = []
    for r in rng.sample(revenue, 3):
        r[rc.index("net")] = r[rc.index("net")] + 1
        r[rc.index("occurred_at")] = r[rc.index("occurred_at")] + timedelta(days=1)
        r[rc.index("updated_at")] = now
        staged.append(tuple(r))
    change = merge_rows(con, SPECS_BY_NAME["fact_revenue"], _stage(con, "fact_revenue", staged))
    if change is not None:
        changes["fact_revenue"] = change
    ac = _columns(con, "fact_ad")
    ads = [list(r) for r in con.execute("SELECT * FROM fact_ad").fetchall()]
    staged = []
    for r in rng.sample(ads, 3):
        r[ac.index("clicks")] = r[ac.index("clicks")] + 1
        r[ac.index("updated_at")] = now
        staged.append(tuple(r))
    change = merge_rows(con, SPECS_BY_NAME["fact_ad"], _stage(con, "fact_ad", staged))
    if change is not None:
        changes["fact_ad"] = change
    if step % 3 == 0:
        sc = _columns(con, "fact_subscription")
        sub = list(con.execute("SELECT * FROM fact_subscription LIMIT 1").fetchone())
        sub[sc.index("subscription_id")] = 50_000_000 + step
        sub[sc.index("updated_at")] = now
        change = merge_rows(
            con, SPECS_BY_NAME["fact_subscription"], _stage(con, "fact_subscription", [sub])
        )
        if change is not None:
            changes["fact_subscription"] = change
    return changes


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_incremental_changes_equal_a_rebuild(base, seed):
    con = _extract(base)
    rng = random.Random(seed)
    seen = set()
    for step in range(1, 5):
        changes = _change_round(con, rng, step, spread=False)
        done = refresh_derived(con, changes)
        seen.update(done.values())
        assert_derived_equal(con)
    # The point is to refresh, not to rebuild: small changes refresh the day tables.
    assert any(v.startswith("refreshed") for v in seen), seen
    assert "appended" in seen, seen


def test_changes_in_many_days_rebuild_and_still_equal(base):
    con = _extract(base)
    rng = random.Random(9)
    changes = _change_round(con, rng, 1, spread=True)
    con.execute("UPDATE fact_view SET watch_seconds = watch_seconds + 1, updated_at = ?", [LATER])
    done = refresh_derived(con, {**changes, "fact_view": _whole()})
    assert done["dv_view"] == "rebuilt"
    assert_derived_equal(con)


def _whole():
    from data.extract.derived import WHOLE

    return WHOLE


def test_nothing_changed_keeps_every_derived_table(base):
    con = _extract(base)
    assert set(refresh_derived(con, {}).values()) == {"kept"}


def test_a_viewer_that_leaves_renumbers_densely(base):
    con = _extract(base)
    # Every view of one viewer without a dim_viewer row moves to another viewer: the key leaves.
    con.execute(
        "INSERT INTO fact_view SELECT view_id + 10000000, 777, title_id, started_at, "
        "watch_seconds, device, country, tz_offset_min, completed, updated_at "
        "FROM fact_view LIMIT 2"
    )
    build_derived(con)
    cols = ", ".join(
        c if c != "viewer_key" else "888 AS viewer_key" for c in _columns(con, "fact_view")
    )
    con.execute(
        f"CREATE TEMP TABLE moved AS SELECT {cols.replace('updated_at', 'updated_at + INTERVAL 1 DAY AS updated_at')} "
        "FROM fact_view WHERE viewer_key = 777"
    )
    change = merge_rows(con, SPECS_BY_NAME["fact_view"], "moved")
    done = refresh_derived(con, {"fact_view": change})
    assert done["dv_viewer_index"] == "rebuilt"
    assert done["dv_view"] == "rebuilt"
    assert_derived_equal(con)


def test_a_changed_statement_is_rebuilt(base, monkeypatch):
    from data.extract import derived

    con = _extract(base)
    changed = tuple(
        (n, s.replace("count(*) AS starts", "count(*) + 0 AS starts")) for n, s in DERIVED_TABLES
    )
    monkeypatch.setattr(derived, "DERIVED_TABLES", changed)
    done = refresh_derived(con, {})
    assert done["dv_view_day"] == "rebuilt"
    assert done["dv_view"] == "kept"


# --- plausibility and the extract's clock -----------------------------------------------------
def _set_clock(con: duckdb.DuckDBPyConnection, moment: datetime | None) -> None:
    con.execute("DELETE FROM extract_meta WHERE key = 'as_of'")
    if moment is not None:
        con.execute("INSERT INTO extract_meta VALUES ('as_of', ?)", [moment.isoformat()])


def _changed_copies(con, table: str, edits: list[dict], key: str, now: datetime) -> list[tuple]:
    """Copies of the first rows of ``table`` under new keys, each with one edit applied."""
    cols = _columns(con, table)
    rows = con.execute(f"SELECT * FROM {table} ORDER BY {key} LIMIT {len(edits)}").fetchall()
    (top,) = con.execute(f"SELECT max({key}) FROM {table}").fetchone()
    out = []
    for i, (row, edit) in enumerate(zip(rows, edits, strict=True)):
        values = list(row)
        values[cols.index(key)] = top + 1 + i
        for column, value in edit.items():
            values[cols.index(column)] = value
        values[cols.index("updated_at")] = now
        out.append(tuple(values))
    return out


def test_implausible_rows_are_left_out_by_a_refresh_as_by_a_rebuild(base):
    con = _extract(base)
    _set_clock(con, LATER)
    build_derived(con)
    now = LATER + timedelta(hours=1)
    views = _changed_copies(
        con,
        "fact_view",
        [
            {"watch_seconds": 68 * 365 * 86_400},  # a 68-year session
            {"watch_seconds": -5},
            {"started_at": datetime(2030, 1, 1, 20)},
            {"started_at": LATER + timedelta(hours=30)},  # 30 hours after the clock
        ],
        "view_id",
        now,
    )
    subs = _changed_copies(
        con, "fact_subscription", [{"monthly_price": -9}], "subscription_id", now
    )
    revenue = _changed_copies(con, "fact_revenue", [{"fees": -1}, {"net": 999}], "revenue_id", now)
    changes = {}
    for table, rows in (
        ("fact_view", views),
        ("fact_subscription", subs),
        ("fact_revenue", revenue),
    ):
        change = merge_rows(con, SPECS_BY_NAME[table], _stage(con, table, rows))
        assert change is not None
        changes[table] = change
    refresh_derived(con, changes)
    assert_derived_equal(con)
    (kept, total) = con.execute(
        "SELECT (SELECT count(*) FROM dv_view), (SELECT count(*) FROM fact_view)"
    ).fetchone()
    assert kept == total - 4, "no implausible session reaches dv_view"
    (negative,) = con.execute(
        "SELECT count(*) FROM dv_subscription WHERE price_cents < 0"
    ).fetchone()
    assert negative == 0

    # The clock moves on by 10 hours: the session 30 hours after the old clock is now less
    # than a day ahead, so it counts, though the row itself did not change.
    _set_clock(con, LATER + timedelta(hours=10))
    done = refresh_derived(con, {})
    assert done["dv_view"].startswith("refreshed"), done
    assert done["dv_subscription"] == "kept", "no subscription is near either clock"
    assert_derived_equal(con)
    (found,) = con.execute(
        "SELECT count(*) FROM dv_view WHERE day = ? AND watch_seconds = ?",
        [
            (LATER + timedelta(hours=30)).date(),
            views[3][_columns(con, "fact_view").index("watch_seconds")],
        ],
    ).fetchone()
    assert found >= 1
    # Back to no clock at all: nothing is "in the future" any more, the 2030 session counts.
    _set_clock(con, None)
    done = refresh_derived(con, {})
    assert done["dv_view"].startswith("refreshed"), done
    assert_derived_equal(con)
    # The clock moves again, but no row is near it: nothing to redo.
    _set_clock(con, LATER + timedelta(days=3000))
    refresh_derived(con, {})
    _set_clock(con, LATER + timedelta(days=3001))
    assert set(refresh_derived(con, {}).values()) == {"kept"}


def test_new_changed_and_missing_exchange_rates_refresh_the_days_they_price(base):
    con = _extract(base)
    cols = _columns(con, "fact_exchange_rate")
    (last,) = con.execute("SELECT max(rate_date) FROM fact_exchange_rate").fetchone()
    # A new day of EUR rates, and one EUR rate corrected.
    euro = [
        list(r)
        for r in con.execute(
            "SELECT * FROM fact_exchange_rate WHERE currency = 'EUR' AND rate_date IN (?, ?)",
            [last, last - timedelta(days=3)],
        ).fetchall()
    ]
    euro[0][cols.index("rate_date")] = last + timedelta(days=1)
    euro[1][cols.index("rate_to_usd")] *= 1.01
    for r in euro:
        r[cols.index("updated_at")] = LATER
    change = merge_rows(
        con,
        SPECS_BY_NAME["fact_exchange_rate"],
        _stage(con, "fact_exchange_rate", [tuple(r) for r in euro]),
    )
    done = refresh_derived(con, {"fact_exchange_rate": change})
    assert done["dv_rate_day"].startswith("refreshed"), done
    assert done["dv_revenue"].startswith("refreshed"), done
    assert_derived_equal(con)

    # Eight days of one currency's rates, up to a day with revenue in it, become unusable
    # (zero): that day has no rate within 7 days.
    code, gap_day = con.execute(
        "SELECT currency, max(day) FROM dv_revenue WHERE currency NOT IN ('USD', 'EUR') "
        "AND day <= ? GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
        [last - timedelta(days=10)],
    ).fetchone()
    gap = [
        list(r)
        for r in con.execute(
            "SELECT * FROM fact_exchange_rate WHERE currency = ? AND rate_date BETWEEN ? AND ? "
            "ORDER BY rate_date",
            [code, gap_day - timedelta(days=7), gap_day],
        ).fetchall()
    ]
    assert len(gap) == 8
    for r in gap:
        r[cols.index("rate_to_usd")] = 0.0
        r[cols.index("updated_at")] = LATER + timedelta(hours=1)
    change = merge_rows(
        con,
        SPECS_BY_NAME["fact_exchange_rate"],
        _stage(con, "fact_exchange_rate", [tuple(r) for r in gap]),
    )
    done = refresh_derived(con, {"fact_exchange_rate": change})
    assert done["dv_rate_day"].startswith("refreshed"), done
    assert done["dv_revenue"].startswith("refreshed"), done
    assert_derived_equal(con)
    (priced,) = con.execute(
        "SELECT count(*) FROM dv_rate_day WHERE currency = ? AND day = ?", [code, gap_day]
    ).fetchone()
    assert priced == 0
    (amounts, converted) = con.execute(
        "SELECT count(*), count(net_usd) FROM dv_revenue WHERE currency = ? AND day = ?",
        [code, gap_day],
    ).fetchone()
    assert amounts > 0 and converted == 0, "an amount without a rate is never converted"
    # The day before takes the last usable rate, 7 days old: the oldest allowed.
    (kept,) = con.execute(
        "SELECT rate_date FROM dv_rate_day WHERE currency = ? AND day = ?",
        [code, gap_day - timedelta(days=1)],
    ).fetchone()
    assert kept == gap_day - timedelta(days=8)
