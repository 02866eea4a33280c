"""Latency of every dashboard query on 1M- and 10M-view demo extracts, against pandas.

``python cli.py bench queries [--rows 1000000 --rows 10000000] [--repeat 15]``

For each extract size it builds (once, cached under var/bench/) a demo extract with the demo
generator, then times every Overview query through ``data.queries.metrics`` -- KPIs, trends by day,
week and month, breakdowns by country, device and genre, top titles over 28 and 91 days -- for
three cases: the default filters (last 28 days), a 90-day range, and a filtered case (three
countries and two devices). The same queries are computed in pandas as the baseline, on columns
loaded into memory first (denormalised views, subscriptions, revenue, titles); only the
computation is timed. Results go to bench/results/queries-<rows>.json.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.extract import build_cache
from data.queries import metrics as M
from data.queries import viewer_index
from data.queries.filters import Filters, Scope

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
RESULTS_DIR = ROOT / "bench" / "results"
END = date(2026, 10, 31)
SEED = 7
KPI_IDS = (*M.OVERVIEW_KPIS, *M.OVERVIEW_MONEY_KPIS)
TREND_IDS = ("views", "watch_hours", "active_viewers")
BREAKDOWN_IDS = ("views", "watch_hours", "active_viewers")


def _bench_key() -> str:
    """A random key for the benchmark extracts, kept beside them, owner-only."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = BENCH_DIR / "extract.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def extract(rows: int, progress: Callable[[str], None] = print):
    """The cached demo extract with ``rows`` view sessions, built the first time."""
    from data.demo import DemoConfig, build_demo_extract
    from data.extract.store import ExtractStore

    store = ExtractStore(BENCH_DIR / f"extract-{rows}.duckdb", _bench_key())
    if not store.exists():
        progress(f"building the {rows:,}-view extract (cached for later runs)")
        config = DemoConfig(viewers=max(20_000, rows // 20), views=rows, seed=SEED, end=END)
        info = build_demo_extract(store, config, secrets.token_hex(32))
        (BENCH_DIR / f"extract-{rows}.json").write_text(json.dumps(info, indent=2))
    return store


def time_derived(store) -> float:
    """Seconds to rebuild the derived tables of an extract (what every extract build pays)."""
    from data.extract.derived import build_derived

    with store.build(copy_current=True) as con:
        started = time.perf_counter()
        build_derived(con)
        return time.perf_counter() - started


def cases(cursor) -> dict[str, Filters]:
    anchor = M.data_bounds(cursor)[1]
    top = cursor.execute(
        "SELECT country FROM dv_view GROUP BY 1 ORDER BY count(*) DESC LIMIT 3"
    ).fetchall()
    return {
        "last_28_days": Filters.for_preset("last_28_days", anchor),
        "last_90_days": Filters.for_preset("last_90_days", anchor),
        "filtered_28_days": Filters.for_preset(
            "last_28_days",
            anchor,
            countries=[r[0] for r in top],
            devices=["tv", "mobile"],
        ),
    }


def dashboard_queries(cursor, f: Filters, scope: Scope) -> dict[str, Callable[[], Any]]:
    """The Overview's queries, as the page issues them."""
    return {
        "kpis": lambda: M.kpis(cursor, f, scope, KPI_IDS),
        "trend_day": lambda: M.trend(cursor, f, scope, "day", TREND_IDS),
        "trend_week": lambda: M.trend(cursor, f, scope, "week", TREND_IDS),
        "trend_month": lambda: M.trend(cursor, f, scope, "month", TREND_IDS),
        "breakdown_country": lambda: M.breakdown(cursor, f, scope, "country", BREAKDOWN_IDS),
        "breakdown_device": lambda: M.breakdown(cursor, f, scope, "device", BREAKDOWN_IDS),
        "breakdown_genre": lambda: M.breakdown(cursor, f, scope, "genre", BREAKDOWN_IDS),
        "top_titles_28": lambda: M.top_titles(cursor, f, scope, 28, 10),
        "top_titles_91": lambda: M.top_titles(cursor, f, scope, 91, 10),
    }


# --- the pandas baseline -------------------------------------------------------------------------
class PandasBaseline:
    """The same queries in pandas over frames loaded once (categoricals for text columns)."""

    def __init__(self, cursor) -> None:
        self.views = cursor.execute(
            "SELECT day, viewer_key, title_id, watch_seconds, completed, views, device, country, "
            "plan, age_band, genre, kind, creator_id FROM dv_view"
        ).df()
        for col in ("device", "country", "plan", "age_band", "genre", "kind"):
            self.views[col] = self.views[col].astype("category")
        self.views["day"] = pd.to_datetime(self.views["day"])
        self.subs = cursor.execute(
            "SELECT s.viewer_key, s.plan, s.started_at, s.ended_at, s.monthly_price, "
            "w.country, w.age_band, w.plan AS viewer_plan FROM fact_subscription s "
            "LEFT JOIN dim_viewer w USING (viewer_key)"
        ).df()
        self.subs["monthly_price"] = self.subs["monthly_price"].astype("float64")
        first = self.subs.sort_values(["viewer_key", "started_at"]).drop_duplicates("viewer_key")
        self.subs["is_first"] = False
        self.subs.loc[first.index, "is_first"] = True
        self.revenue = cursor.execute(
            "SELECT day, net, country, plan, age_band, genre, kind, creator_id FROM dv_revenue"
        ).df()
        self.revenue["net"] = self.revenue["net"].astype("float64")
        self.revenue["day"] = pd.to_datetime(self.revenue["day"])
        self.titles = cursor.execute(
            "SELECT title_id, name, release_date, genre, kind, creator_id FROM dim_title"
        ).df()

    def _vmask(self, f: Filters, lo: date, hi: date, frame: pd.DataFrame | None = None):
        v = self.views if frame is None else frame
        m = (v["day"] >= pd.Timestamp(lo)) & (v["day"] <= pd.Timestamp(hi))
        for dim, col in (
            ("country", "country"),
            ("device", "device"),
            ("genre", "genre"),
            ("kind", "kind"),
            ("plan", "plan"),
            ("age_band", "age_band"),
        ):
            if f.values(dim):
                m &= v[col].isin(f.values(dim))
        return m

    def _view_aggs(self, v: pd.DataFrame) -> dict[str, float]:
        return {
            "starts": len(v),
            "watch_seconds": float(v["watch_seconds"].sum()),
            "views": float(v["views"].sum()),
            "completed": float(v["completed"].sum()),
            "viewers": v["viewer_key"].nunique(),
        }

    def kpis(self, f: Filters) -> dict[str, dict[str, float]]:
        out = {}
        periods = {"current": f.period, "comparison": f.comparison_period}
        for name, (lo, hi) in periods.items():
            a = self._view_aggs(self.views[self._vmask(f, lo, hi)])
            s = self.subs
            lo_ts, hi_ts = pd.Timestamp(lo), pd.Timestamp(hi + timedelta(days=1))
            sm = pd.Series(True, index=s.index)
            for dim, col in (
                ("country", "country"),
                ("plan", "viewer_plan"),
                ("age_band", "age_band"),
            ):
                if f.values(dim):
                    sm &= s[col].isin(f.values(dim))
            active = (s["started_at"] < hi_ts) & (s["ended_at"].isna() | (s["ended_at"] >= lo_ts))
            subscribers = s.loc[active & sm, "viewer_key"].nunique()
            new = (
                s["is_first"] & (s["started_at"] >= lo_ts) & (s["started_at"] < hi_ts) & sm
            ).sum()
            r = self.revenue
            rm = (r["day"] >= lo_ts) & (r["day"] <= pd.Timestamp(hi))
            out[name] = {
                "views": a["views"],
                "watch_hours": a["watch_seconds"] / 3600,
                "avg_view_duration": a["watch_seconds"] / 60 / max(a["starts"], 1),
                "completion_rate": a["completed"] / max(a["starts"], 1),
                "active_viewers": a["viewers"],
                "engagement_rate": a["viewers"] / max(subscribers, 1),
                "new_subscribers": float(new),
                "net_revenue": float(r.loc[rm, "net"].sum()),
            }
        return out

    def trend(self, f: Filters, grain: str) -> pd.DataFrame:
        frames = []
        for name, (lo, hi) in {"current": f.period, "comparison": f.comparison_period}.items():
            v = self.views[self._vmask(f, lo, hi)]
            shift = pd.Timedelta(days=(f.start - lo).days)
            day = (v["day"] + shift).clip(upper=pd.Timestamp(f.end))
            if grain == "week":
                bucket = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
            elif grain == "month":
                bucket = day.dt.to_period("M").dt.to_timestamp()
            else:
                bucket = day
            bucket = bucket.clip(lower=pd.Timestamp(f.start))
            g = v.assign(bucket=bucket).groupby("bucket")
            frames.append(
                pd.DataFrame(
                    {
                        "views": g["views"].sum(),
                        "watch_hours": g["watch_seconds"].sum() / 3600,
                        "active_viewers": g["viewer_key"].nunique(),
                        "series": name,
                    }
                )
            )
        return pd.concat(frames)

    def breakdown(self, f: Filters, dimension: str) -> pd.DataFrame:
        v = self.views[self._vmask(f, f.start, f.end)]
        g = v.groupby(dimension, observed=True)
        return pd.DataFrame(
            {
                "views": g["views"].sum(),
                "watch_hours": g["watch_seconds"].sum() / 3600,
                "active_viewers": g["viewer_key"].nunique(),
            }
        ).sort_values("views", ascending=False)

    def top_titles(self, f: Filters, window: int) -> pd.DataFrame:
        lo = f.end - timedelta(days=window - 1)
        v = self.views[self._vmask(f, lo, f.end)]
        g = v.groupby("title_id")
        per = pd.DataFrame(
            {
                "views": g["views"].sum(),
                "watch_hours": g["watch_seconds"].sum() / 3600,
                "starts": g.size(),
                "completion_rate": g["completed"].mean(),
            }
        )
        available = (self.titles["release_date"] <= pd.Timestamp(f.end)).sum()
        per["demand_multiplier"] = per["views"] / (per["views"].sum() / available)
        top = per.nlargest(10, "views")
        return top.join(self.titles.set_index("title_id")[["name", "genre", "kind"]])

    def queries(self, f: Filters) -> dict[str, Callable[[], Any]]:
        return {
            "kpis": lambda: self.kpis(f),
            "trend_day": lambda: self.trend(f, "day"),
            "trend_week": lambda: self.trend(f, "week"),
            "trend_month": lambda: self.trend(f, "month"),
            "breakdown_country": lambda: self.breakdown(f, "country"),
            "breakdown_device": lambda: self.breakdown(f, "device"),
            "breakdown_genre": lambda: self.breakdown(f, "genre"),
            "top_titles_28": lambda: self.top_titles(f, 28),
            "top_titles_91": lambda: self.top_titles(f, 91),
        }


def _timings(
    fn: Callable[[], Any], repeat: int, warmup: int = 2
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each run. CPU time (all threads of this process) is
    recorded too because the machine is shared: wall time includes waiting for a core."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return wall, cpu


def _summary(times: tuple[list[float], list[float]]) -> dict[str, float]:
    wall, cpu = times
    return {
        "median_ms": round(statistics.median(wall), 2),
        "p95_ms": round(float(np.percentile(wall, 95)), 2),
        "cpu_median_ms": round(statistics.median(cpu), 2),
        "n": len(wall),
    }


def run(
    rows: int,
    repeat: int = 15,
    pandas_repeat: int = 5,
    with_derived_timing: bool = False,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Time every dashboard query on the ``rows``-view extract; write and return the results."""
    store = extract(rows, progress)
    cursor = store.cursor()
    result: dict[str, Any] = {
        "rows": rows,
        "measured_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg(),
        },
        "repeat": repeat,
        "pandas_repeat": pandas_repeat,
        "cases": {},
    }
    build_info = BENCH_DIR / f"extract-{rows}.json"
    if build_info.exists():
        result["extract_build"] = json.loads(build_info.read_text())
    if with_derived_timing:
        progress("timing the derived-table build")
        result["derived_build_seconds"] = round(time_derived(store), 2)
        cursor = store.cursor()
    progress("loading the pandas baseline's frames")
    baseline = PandasBaseline(cursor)
    # The in-memory index (data/queries/viewer_index.py) is built by the first query after a build:
    # time that once, then every query warm, as the app runs them.
    build_cache.clear()
    started = time.perf_counter()
    index = viewer_index.index_for(cursor)
    result["memory_index"] = {
        "build_ms": round((time.perf_counter() - started) * 1000, 1),
        "max_rows": build_cache.max_rows(),
    }
    for case, f in cases(cursor).items():
        progress(f"case {case}")
        queries = dashboard_queries(cursor, f, Scope.everything())
        duck = {name: _summary(_timings(fn, repeat)) for name, fn in queries.items()}
        # The same queries with the in-memory index off: everything in DuckDB SQL.
        build_cache.configure(max_rows=0)
        try:
            sql_only = {name: _summary(_timings(fn, repeat)) for name, fn in queries.items()}
        finally:
            build_cache.configure(max_rows=build_cache.DEFAULT_MAX_ROWS)
            viewer_index.index_for(cursor)
            for fn in queries.values():
                fn()  # load the index's columns again before the next case
        pand = {
            name: _summary(_timings(fn, pandas_repeat, warmup=1))
            for name, fn in baseline.queries(f).items()
        }
        duck_total = sum(v["median_ms"] for v in duck.values())
        pandas_total = sum(v["median_ms"] for v in pand.values())
        sql_total = sum(v["median_ms"] for v in sql_only.values())
        result["cases"][case] = {
            "filters": f.to_query_params(),
            "duckdb": duck,
            "duckdb_sql_only": sql_only,
            "pandas": pand,
            "duckdb_set_median_ms": round(duck_total, 1),
            "duckdb_sql_only_set_median_ms": round(sql_total, 1),
            "sql_only_speedup": round(pandas_total / sql_total, 1),
            "pandas_set_median_ms": round(pandas_total, 1),
            "speedup": round(pandas_total / duck_total, 1),
            "max_p95_ms": max(v["p95_ms"] for v in duck.values()),
        }
    index = viewer_index.index_for(cursor)
    if index is not None:
        result["memory_index"]["megabytes_after_run"] = round(index.nbytes / 1e6, 1)
    result["load_average_at_end"] = os.getloadavg()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"queries-{rows}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(rows: list[int], repeat: int = 15, derived: bool = False) -> None:
    for n in rows:
        r = run(n, repeat, with_derived_timing=derived)
        for case, c in r["cases"].items():
            print(
                f"{n:>11,} {case:<17} duckdb set {c['duckdb_set_median_ms']:>8.1f} ms  "
                f"pandas set {c['pandas_set_median_ms']:>9.1f} ms  x{c['speedup']:<6} "
                f"max p95 {c['max_p95_ms']:.1f} ms  (SQL only: "
                f"{c['duckdb_sql_only_set_median_ms']:.1f} ms, x{c['sql_only_speedup']})"
            )
            for q, t in c["duckdb"].items():
                print(
                    f"    {q:<18} median {t['median_ms']:>7.1f}  p95 {t['p95_ms']:>7.1f}  "
                    f"cpu {t['cpu_median_ms']:>7.1f}   pandas {c['pandas'][q]['median_ms']:>8.1f}"
                    f"   SQL only {c['duckdb_sql_only'][q]['median_ms']:>7.1f}"
                )
        print(f"    in-memory index: {r['memory_index']}")
        print(
            f"    load average {r['machine']['load_average_at_start']} -> {r['load_average_at_end']}"
        )


if __name__ == "__main__":
    main([1_000_000])
