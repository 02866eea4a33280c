"""Forecasts: a cold single series with its backtest, a cached one, and a precompute of many.

    .venv/bin/python -m bench.forecast                      # 1M-view demo extract, 200 series
    .venv/bin/python -m bench.forecast --series 60 --workers 2

On the cached 1M-view demo extract of ``bench/queries.py`` (built the first time, var/bench/):

- **cold**: a fresh Python process imports ``models.forecasting`` and Prophet, reads the platform's
  daily views and forecasts them 90 days ahead with the backtest (the app's defaults, US and GB
  holidays); then, in the same process, a second series (a genre) not forecast before: the
  cost of a cache miss once the server is warm. Three processes; medians;
- **backtest cost**: the share of a forecast's time spent in its backtest (four refits and
  their scoring), timed in the precompute's workers, where each forecast runs its fits one
  after the other;
- **by folds**: the platform's forecast, warm, with 1, 2, 3 and 4 backtest folds (two threads,
  as the app runs it): what each fold costs;
- **cached**: a hit in a dict keyed by ``models.forecasting.cache_key`` (computing the key
  included), and in a disk cache (one pickle per key): what a second viewer waits for;
- **precompute**: the platform, every genre and the top titles of the last 91 days, ``--series``
  in all, across ``--workers`` processes (two cores here), as ``cli.py forecast --all`` would.
  A series refused as too short or too sparse counts as done (its message is the result).
  With fewer than 200 series the time for 200 is extrapolated from the measured rate, and the
  results file says so.

- **page** (``--page-runs`` fresh processes, medians): the Forecast page itself, run by
  Streamlit's AppTest on the same extract (linked into a temporary data folder) as the demo
  analyst, from the click to the end of the script run: *cold* (the page's first forecast:
  views, daily, 90 days, with its backtest; Prophet imported beforehand, timed apart), *cached*
  (a second user's session: the query cache answers), and *disk* (the query cache cleared, as
  after a restart: the sealed disk cache that ``cli.py forecast --all`` fills answers). The
  page's own counters (``components.forecast_view.FITS``) say which path each run took.
  ``--page-only`` measures just this and merges it into the existing results file.

Writes bench/results/forecast.json with the machine and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "forecast.json"
TARGET_SERIES = 200
PARAMS_ARGS: dict[str, Any] = {"horizon_days": 90, "countries": ("US", "GB")}


def _store(rows: int):
    from bench.queries import extract

    return extract(rows)


def _definitions(cursor, n: int) -> list[dict[str, Any]]:
    """The platform, every genre, then the top titles of the last 91 days: ``n`` in all."""
    from data.queries import metrics
    from data.queries.filters import Filters, Scope

    first, last = metrics.data_bounds(cursor)
    period = Filters(first, last, comparison="none")
    genres = metrics.breakdown(cursor, period, Scope.everything(), "genre", ("views",))
    defs: list[dict[str, Any]] = [{"kind": "platform"}]
    defs += [{"kind": "genre", "genre": g} for g in sorted(genres["key"].dropna())]
    wanted = max(0, n - len(defs))
    if wanted:
        top = metrics.top_titles(cursor, period, Scope.everything(), 91, wanted)
        defs += [{"kind": "title", "title_id": int(t)} for t in top["title_id"]]
    return defs[:n]


def _series(cursor, definitions: list[dict[str, Any]]):
    """Each definition's daily views as a pandas Series, through data/queries/ only."""
    from data.queries import forecast_inputs, metrics
    from data.queries.filters import Filters, Scope
    from models import forecasting as F

    first, last = metrics.data_bounds(cursor)
    period = Filters(first, last, comparison="none")
    everything = Scope.everything()
    out = []
    ids = tuple(d["title_id"] for d in definitions if d["kind"] == "title")
    titles = forecast_inputs.title_daily(cursor, period, everything, ids) if ids else None
    for d in definitions:
        if d["kind"] == "platform":
            s = F.series_from_trend(metrics.trend(cursor, period, everything, "day"))
        elif d["kind"] == "genre":
            f = period.with_dimension("genre", [d["genre"]])
            s = F.series_from_trend(metrics.trend(cursor, f, everything, "day"))
        else:
            rows = titles[titles["title_id"] == d["title_id"]]
            s = F.series_from_trend(rows.assign(bucket=rows["day"], metric="views"))
        out.append(s)
    return out, last


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the cmdstan fits)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _cold(rows: int) -> dict[str, float]:
    """Run in a fresh process: import, then the first and a second forecast. Wall and CPU
    seconds: on a shared machine the CPU seconds say what the work costs whatever the load."""
    started = time.perf_counter()
    from models import forecasting as F

    F._prophet()  # the import, timed apart
    imported = time.perf_counter() - started
    cursor = _store(rows).cursor()
    defs = _definitions(cursor, 2)
    (platform_series, genre_series), last = _series(cursor, defs)
    params = F.ForecastParams(**PARAMS_ARGS)
    t0, c0 = time.perf_counter(), _cpu()
    F.forecast(platform_series, last, params)
    first, first_cpu = time.perf_counter() - t0, _cpu() - c0
    t0, c0 = time.perf_counter(), _cpu()
    F.forecast(genre_series, last, params)
    second, second_cpu = time.perf_counter() - t0, _cpu() - c0
    return {
        "import_seconds": imported,
        "first_forecast_seconds": first,
        "first_forecast_cpu_seconds": first_cpu,
        "warm_miss_seconds": second,
        "warm_miss_cpu_seconds": second_cpu,
    }


def _worker(args: tuple[int, list[tuple[int, Any]], date]) -> list[dict[str, Any]]:
    """Forecast a batch of series in a worker process; time each forecast and its backtest.

    One thread per forecast (the processes already fill the cores), so the fits run one after
    the other and the backtest's share adds up exactly: the four fold fits and predictions
    (every ``_fit_predict`` but the final model's, whose seed is ``params.seed``) and the
    scoring (``_backtest``)."""
    _rows, batch, last = args
    from models import forecasting as F

    params = F.ForecastParams(**PARAMS_ARGS)
    spent = {"backtest": 0.0}
    fit_predict, score = F._fit_predict, F._backtest

    def timed_fit_predict(make_model: Any, train: Any, future: Any, seed: int) -> Any:
        t0 = time.perf_counter()
        try:
            return fit_predict(make_model, train, future, seed)
        finally:
            if seed != params.seed:
                spent["backtest"] += time.perf_counter() - t0

    def timed_score(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return score(*a, **k)
        finally:
            spent["backtest"] += time.perf_counter() - t0

    F._fit_predict, F._backtest = timed_fit_predict, timed_score
    out = []
    for index, series in batch:
        spent["backtest"] = 0.0
        t0, c0 = time.perf_counter(), _cpu()
        try:
            F.forecast(series, last, params, threads=1)
            outcome = "forecast"
        except F.NotForecastableError as exc:
            outcome = type(exc).__name__
        except Exception as exc:  # one failed series never stops the batch
            outcome = f"error: {type(exc).__name__}: {exc}"
        out.append(
            {
                "index": index,
                "seconds": time.perf_counter() - t0,
                "cpu_seconds": _cpu() - c0,
                "backtest_seconds": spent["backtest"],
                "outcome": outcome,
            }
        )
    return out


def _cache_timings(series, last: date, definitions) -> dict[str, float]:
    from models import forecasting as F

    params = F.ForecastParams(**PARAMS_ARGS)
    key_args = ({"metric": "views", **definitions[0]}, None, "bench-build", params, last)
    result = F.forecast(series, last, params)
    memory = {F.cache_key(*key_args): result}
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        hit = memory[F.cache_key(*key_args)]
    dict_hit = (time.perf_counter() - t0) / n
    assert hit is result
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{F.cache_key(*key_args)}.pkl"
        path.write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        size = path.stat().st_size
        reads = []
        for _ in range(20):
            t0 = time.perf_counter()
            path = Path(folder) / f"{F.cache_key(*key_args)}.pkl"
            # S301: the file this run wrote a moment ago into its own temporary folder.
            loaded = pickle.loads(path.read_bytes())  # noqa: S301
            reads.append(time.perf_counter() - t0)
        assert len(loaded.forecast) == len(result.forecast)
    return {
        "dict_hit_seconds": dict_hit,
        "disk_hit_seconds_median": statistics.median(reads),
        "disk_entry_bytes": size,
    }


def _by_folds(series, last: date, repeat: int = 3) -> dict[str, Any]:
    """A warm (cache-miss) forecast of one series with 1 to 4 backtest folds: the backtest's cost
    as the app pays it (two threads)."""
    from models import forecasting as F

    out = {}
    for folds in (1, 2, 3, 4):
        params = F.ForecastParams(**PARAMS_ARGS, folds=folds)
        times, cpu = [], []
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), _cpu()
            F.forecast(series, last, params)
            times.append(time.perf_counter() - t0)
            cpu.append(_cpu() - c0)
        out[str(folds)] = {
            "median_seconds": statistics.median(times),
            "median_cpu_seconds": statistics.median(cpu),
            "runs": times,
        }
    return out


def _page_child(rows: int) -> dict[str, Any]:
    """Run in a fresh process: the Forecast page in AppTest on the bench extract (see the module
    docstring); seconds per run and the page's counters."""
    from bench.queries import _bench_key

    store = _store(rows)
    folder = Path(tempfile.mkdtemp(prefix="forecast-page-bench-"))
    data = folder / "data"
    data.mkdir(mode=0o700)
    (data / "extract.duckdb").symlink_to(store.path)
    os.environ.update(
        {
            "SPOTLIGHT_DATA_DIR": str(data),
            "SPOTLIGHT_KEY_DIR": str(folder / "keys"),
            "SPOTLIGHT_EXTRACT_KEY": _bench_key(),
        }
    )
    os.environ.pop("SPOTLIGHT_WAREHOUSE_URL", None)
    from streamlit.testing.v1 import AppTest

    from components import forecast_view
    from models import forecasting as F
    from security.demo import DEMO_PASSWORD

    def signed_in(username: str) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600).run()
        for element in at.text_input:
            if element.label == "Username":
                element.input(username)
            elif element.label == "Password":
                element.input(DEMO_PASSWORD)
        next(b for b in at.button if b.label == "Sign in").click().run()
        return at

    def timed(at: AppTest) -> tuple[float, dict[str, int]]:
        before = dict(forecast_view.FITS)
        t0 = time.perf_counter()
        at.switch_page("app_pages/forecast.py").run()
        seconds = time.perf_counter() - t0
        assert not at.exception, [e.value for e in at.exception]
        assert any(m.label == "MASE, model" for m in at.metric), "the page drew no forecast"
        after = dict(forecast_view.FITS)
        return seconds, {k: after.get(k, 0) - before.get(k, 0) for k in after}

    t0 = time.perf_counter()
    F._prophet()
    imported = time.perf_counter() - t0
    cold, cold_paths = timed(signed_in("analyst"))
    cached, cached_paths = timed(signed_in("manager"))
    import streamlit as st

    st.cache_data.clear()  # as after a restart: only the disk cache holds the forecast
    disk_user = signed_in("analyst")
    disk, disk_paths = timed(disk_user)
    again, again_paths = timed(disk_user)
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "import_seconds": imported,
        "cold_page_seconds": cold,
        "cold_paths": cold_paths,
        "cached_page_seconds": cached,
        "cached_paths": cached_paths,
        "disk_page_seconds": disk,
        "disk_paths": disk_paths,
        "rerun_same_session_seconds": again,
        "rerun_paths": again_paths,
    }


def run_page(rows: int, runs: int) -> dict[str, Any]:
    """The page-level numbers, ``runs`` fresh processes; medians."""
    _store(rows)  # built before anything is timed
    found = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-m", "bench.forecast", "--rows", str(rows), "--page-child"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        found.append(json.loads(done.stdout.strip().splitlines()[-1]))
    numeric = [k for k, v in found[0].items() if isinstance(v, float)]
    return {
        "runs": found,
        **{f"{k}_median": statistics.median(r[k] for r in found) for k in numeric},
        "load_average_at_end": os.getloadavg(),
    }


def run(rows: int, n_series: int, workers: int, cold_runs: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "rows": rows,
        "measured_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "machine": _machine(),
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in PARAMS_ARGS.items()},
    }
    store = _store(rows)  # build it once before anything is timed
    print("cold forecasts, each in a fresh process")
    cold = []
    for _ in range(cold_runs):
        done = subprocess.run(
            [sys.executable, "-m", "bench.forecast", "--rows", str(rows), "--cold-child"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        cold.append(json.loads(done.stdout.strip().splitlines()[-1]))
    result["cold"] = {
        "runs": cold,
        **{f"{k}_median": statistics.median(c[k] for c in cold) for k in cold[0]},
    }
    print(json.dumps(result["cold"], indent=2, default=str))

    cursor = store.cursor()
    t0 = time.perf_counter()
    definitions = _definitions(cursor, n_series)
    series, last = _series(cursor, definitions)
    result["load_series_seconds"] = time.perf_counter() - t0
    print(f"{len(series)} series loaded in {result['load_series_seconds']:.1f} s")

    result["cached"] = _cache_timings(series[0], last, definitions)
    print(json.dumps(result["cached"], indent=2))

    result["by_folds"] = _by_folds(series[0], last)
    print(json.dumps(result["by_folds"], indent=2))

    print(f"precompute of {len(series)} series on {workers} worker processes")
    batches = [
        (rows, [(i, s) for i, s in enumerate(series) if i % workers == w], last)
        for w in range(workers)
    ]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        done_batches = list(pool.map(_worker, batches))
    wall = time.perf_counter() - t0
    per = sorted((r for b in done_batches for r in b), key=lambda r: r["index"])
    outcomes: dict[str, int] = {}
    for r, d in zip(per, definitions, strict=True):
        r["definition"] = d
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    forecast_rows = [r for r in per if r["outcome"] == "forecast"]
    worker_seconds = sum(r["seconds"] for r in per)
    result["precompute"] = {
        "series": len(per),
        "workers": workers,
        "wall_seconds": wall,
        "outcomes": outcomes,
        "seconds_per_series_in_worker_median": statistics.median(r["seconds"] for r in per),
        "forecast_seconds_median": statistics.median(r["seconds"] for r in forecast_rows)
        if forecast_rows
        else None,
        "backtest_share_of_forecast": sum(r["backtest_seconds"] for r in forecast_rows)
        / max(1e-9, sum(r["seconds"] for r in forecast_rows)),
        "backtest_seconds_median": statistics.median(r["backtest_seconds"] for r in forecast_rows)
        if forecast_rows
        else None,
        "summed_worker_seconds": worker_seconds,
        "summed_cpu_seconds": sum(r["cpu_seconds"] for r in per),
        "cpu_seconds_per_forecast_median": statistics.median(
            r["cpu_seconds"] for r in forecast_rows
        )
        if forecast_rows
        else None,
        "extrapolated_to_200_seconds": wall * TARGET_SERIES / len(per)
        if len(per) != TARGET_SERIES
        else None,
        "per_series": per,
    }
    result["load_average_at_end"] = os.getloadavg()
    print(
        json.dumps({k: v for k, v in result["precompute"].items() if k != "per_series"}, indent=2)
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return result


def _machine() -> dict[str, Any]:
    from importlib import metadata

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "prophet": metadata.version("prophet"),
        "cmdstanpy": metadata.version("cmdstanpy"),
        "pandas": metadata.version("pandas"),
        "load_average_at_start": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="views in the demo extract")
    parser.add_argument("--series", type=int, default=TARGET_SERIES, help="series to precompute")
    parser.add_argument("--workers", type=int, default=2, help="processes for the precompute")
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh processes for 'cold'")
    parser.add_argument("--page-runs", type=int, default=3, help="fresh processes for 'page'")
    parser.add_argument(
        "--page-only", action="store_true", help="only the page-level numbers, merged in"
    )
    parser.add_argument("--cold-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--page-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_child:
        print(json.dumps(_cold(args.rows)))
        return
    if args.page_child:
        print(json.dumps(_page_child(args.rows)))
        return
    if args.page_only:
        started_at = datetime.now(UTC).replace(microsecond=0).isoformat()
        machine = _machine()
        page = run_page(args.rows, args.page_runs)
        print(json.dumps({k: v for k, v in page.items() if k != "runs"}, indent=2))
        merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": args.rows}
        merged["page"] = {**page, "measured_at": started_at, "machine": machine}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(merged, indent=2, default=str) + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)}")
        return
    result = run(args.rows, args.series, args.workers, args.cold_runs)
    result["page"] = run_page(args.rows, args.page_runs)
    print(json.dumps({k: v for k, v in result["page"].items() if k != "runs"}, indent=2))
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
