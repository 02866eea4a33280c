"""Clustering benchmark: viewer features and k-means with k chosen by silhouette, at 500k viewers.

    # an extract with about 500k viewers active over its two years (about a minute to build):
    SPOTLIGHT_DATA_DIR=/tmp/seg-bench/data SPOTLIGHT_KEY_DIR=/tmp/seg-bench/keys \\
      SPOTLIGHT_DEMO_VIEWS=13000000 SPOTLIGHT_DEMO_VIEWERS=640000 .venv/bin/python -c \\
      "from settings import load_settings; from data.demo import ensure_demo_extract; \\
       ensure_demo_extract(load_settings())"
    # then, with the same folders: features of every viewer active in the window, then the fit
    SPOTLIGHT_DATA_DIR=/tmp/seg-bench/data SPOTLIGHT_KEY_DIR=/tmp/seg-bench/keys \\
      .venv/bin/python -m bench.segment_clusters --days 730
    # or without an extract: planted behaviour groups, generated
    .venv/bin/python -m bench.segment_clusters --synthetic 500000

Measured per step: wall time, and memory as the process's resident set sampled every 10 ms
during the step (peak, and peak above the step's start), besides ``ru_maxrss`` for the whole
process (which includes the extract's own reads). ``--tracemalloc`` adds a second fit under
tracemalloc (the peak of Python and NumPy allocations; slower, so its time is not the one
reported). Writes ``bench/results/segment-clusters.json`` (``--no-write`` to leave it alone).

``bench_clustering(features)`` is the part the segments benchmark (bench/segments.py) calls.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "segment-clusters.json"
TARGET_S = 60.0
_MB = 1024 * 1024


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak so far is the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measured(step: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run ``step``; its result and wall seconds, peak RSS and peak RSS above its start (MB)."""
    start_rss = _rss()
    peak = [start_rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        result = step()
    finally:
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    peak[0] = max(peak[0], _rss())
    return result, {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak[0] / _MB, 1),
        "peak_rss_increase_mb": round((peak[0] - start_rss) / _MB, 1),
    }


def bench_clustering(
    features: pd.DataFrame,
    params: Any = None,
    *,
    rules: bool = True,
    window: dict[str, Any] | None = None,
    trace: bool = False,
) -> dict[str, Any]:
    """Time and memory of fit_clusters (k chosen by silhouette unless ``params`` says),
    describe_clusters and, with ``rules``, cluster_rule for every cluster, on ``features``."""
    from models.segmentation import ClusterParams, cluster_rule, describe_clusters, fit_clusters

    params = params or ClusterParams()
    model, fit = measured(lambda: fit_clusters(features, params))
    described, describe = measured(lambda: describe_clusters(model, features))
    out: dict[str, Any] = {
        "viewers": len(features),
        "columns": len(model.features),
        "params": params.as_dict(),
        "k": model.k,
        "quality": model.quality,
        "fingerprint": model.fingerprint[:16],
        "fit": fit,
        "describe": describe,
        "clusters": [
            {"cluster": d.cluster, "share": round(d.share, 4), "text": d.text} for d in described
        ],
    }
    if rules:
        start, end = features.attrs.get("start"), features.attrs.get("end")
        if window is None and isinstance(start, date) and isinstance(end, date):
            window = {"last_days": (end - start).days + 1}
        seconds = []
        for d, entry in zip(described, out["clusters"], strict=True):
            rule, took = measured(
                lambda c=d.cluster: cluster_rule(model, features, c, window=window or {})
            )
            seconds.append(took["seconds"])
            entry["rule"] = rule.text
            entry["precision"] = round(rule.precision, 4)
            entry["recall"] = round(rule.recall, 4)
        out["rule_seconds"] = seconds
    if trace:
        tracemalloc.start()
        try:
            fit_clusters(features, params)
            out["fit_tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / _MB, 1)
        finally:
            tracemalloc.stop()
    return out


def synthetic_features(n: int, seed: int = 11) -> pd.DataFrame:
    """Viewer features of ``n`` viewers in five overlapping behaviour groups (the columns of
    data/queries/viewer_features.py), for a run without an extract."""
    rng = np.random.default_rng(seed)
    genres = ("Action", "Drama", "Comedy", "Documentary", "Animation", "Horror")
    devices = ("tv", "mobile", "web", "tablet", "console")
    plans = ("ad_supported", "basic", "premium", "standard")
    # share of viewers, mean sessions, sessions per day, hours per session, completion, genre mix,
    # device mix, weekend, evening
    groups = (
        (0.35, 4, 1.0, 0.6, 0.35, (3, 1, 3, 1, 1, 1), (1, 5, 1, 1, 0.5), 0.3, 0.4),
        (0.25, 18, 1.3, 1.0, 0.6, (4, 2, 1, 1, 1, 2), (5, 1, 1, 1, 2), 0.35, 0.6),
        (0.2, 35, 2.5, 1.3, 0.8, (1, 4, 1, 3, 0.5, 1), (6, 0.5, 1, 0.5, 0.5), 0.3, 0.8),
        (0.12, 12, 1.5, 0.8, 0.6, (1, 0.5, 1, 0.5, 5, 0.5), (2, 1, 0.5, 4, 0.5), 0.8, 0.3),
        (0.08, 25, 2.0, 1.1, 0.5, (2, 0.5, 0.5, 0.5, 0.5, 5), (2, 1, 3, 0.5, 4), 0.3, 0.9),
    )
    sizes = rng.multinomial(n, [g[0] for g in groups])
    frames = []
    for (_, s_mean, per_day, h_per, comp, gmix, dmix, wk, ev), m in zip(groups, sizes, strict=True):
        sessions = rng.poisson(s_mean, m) + 1
        active = np.clip(np.round(sessions / per_day * rng.uniform(0.7, 1.3, m)), 1, sessions)
        hours = sessions * rng.gamma(4, h_per / 4, m)
        completed = rng.binomial(sessions, comp)
        shares = rng.dirichlet(np.array((*gmix, 0.2)) * 3, m)
        used = rng.multinomial(sessions, np.array(dmix) / sum(dmix)) / sessions[:, None]
        f: dict[str, Any] = {
            "hours": hours,
            "sessions": sessions,
            "active_days": active.astype("int64"),
            "distinct_titles": np.clip(np.round(sessions * rng.uniform(0.4, 1, m)), 1, sessions),
            "completed": completed,
            "completion": completed / sessions,
        }
        f |= {f"genre_hours_{g}": shares[:, i] * hours for i, g in enumerate(genres)}
        f |= {f"genre_share_{g}": shares[:, i] for i, g in enumerate(genres)}
        f["genre_share_other"] = shares[:, -1]
        f |= {f"device_share_{d}": used[:, i] for i, d in enumerate(devices)}
        f["weekend_share"] = rng.binomial(sessions, wk) / sessions
        f["evening_share"] = rng.binomial(sessions, ev) / sessions
        f["tenure_days"] = rng.integers(0, 1500, m).astype("float64")
        f["plan"] = rng.choice(plans, m)
        frames.append(pd.DataFrame(f))
    out = pd.concat(frames, ignore_index=True)
    out["distinct_titles"] = out["distinct_titles"].astype("int64")
    out.index = pd.Index(rng.choice(2**62, n, replace=False).astype("int64"), name="viewer_key")
    end = date(2026, 12, 7)
    out.attrs |= {
        "start": end - timedelta(days=89),
        "end": end,
        "genres": list(genres),
        "devices": list(devices),
        "plans": list(plans),
    }
    return out


def _machine() -> dict[str, Any]:
    import duckdb
    import sklearn

    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "load_1min": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", type=int, default=0, help="viewers to generate instead")
    parser.add_argument("--days", type=int, default=730, help="window: the last N days of data")
    parser.add_argument("--no-rules", action="store_true", help="skip cluster_rule")
    parser.add_argument("--tracemalloc", action="store_true", help="also a traced fit")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    result: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
    }
    if args.synthetic:
        features, took = measured(lambda: synthetic_features(args.synthetic))
        result["source"] = f"synthetic, {args.synthetic} viewers"
    else:
        from data.extract.store import store_from_settings
        from data.queries.filters import Scope
        from data.queries.viewer_features import viewer_features
        from settings import load_settings

        cursor = store_from_settings(load_settings()).cursor()
        views, last = cursor.execute("SELECT count(*), max(day) FROM dv_view").fetchone()
        start = last - timedelta(days=args.days - 1)
        features, took = measured(
            lambda: viewer_features(cursor, start=start, end=last, scope=Scope.everything())
        )
        result["source"] = f"extract, {views} views, {start} to {last}"
        result["viewer_features"] = took
    result["clustering"] = bench_clustering(
        features, rules=not args.no_rules, trace=args.tracemalloc
    )
    fit = result["clustering"]["fit"]
    total = fit["seconds"] + (took["seconds"] if not args.synthetic else 0.0)
    result["features_plus_fit_seconds"] = round(total, 2)
    result["ru_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["target_seconds"] = TARGET_S
    print(json.dumps(result, indent=2, default=str))
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
