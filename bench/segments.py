"""Audience segments: live size and profile for five typical definitions at 10M views / 500k viewers.

    .venv/bin/python -m bench.segments [--build] [--views 10000000] [--viewers 500000] [--repeat 20]

The extract is a demo extract in the benchmark's own folders (``SPOTLIGHT_DATA_DIR`` and
``SPOTLIGHT_KEY_DIR``; default ``/tmp/spotlight-bench-seg/data`` and ``.../keys``), built first
with ``--build`` when missing (``SPOTLIGHT_DEMO_VIEWS`` / ``SPOTLIGHT_DEMO_VIEWERS``, as the app
builds its demo; about a minute at 10M views). For each definition (data/queries/segments.py,
window: the last 30 days) it times, through the functions the page calls:

- ``segment_size``: *cold* (the first query of a freshly opened extract: nothing decrypted or
  cached yet) and ``--repeat`` warm runs (p50, p95, max);
- ``segment_funnel`` and ``segment_profile``: cold and warm the same way.

In the same run it measures the machine's own ceiling for this kind of query: DuckDB counting the
window's distinct viewers (``SELECT count(DISTINCT viewer_key) FROM dv_view WHERE day >= ?``, the
least any segment statement must do), and reports each size's warm p50 as a multiple of it. The
machine (cores, memory, load average before and after) is recorded: it is shared, and a number
without its load says little. Writes ``bench/results/segments.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "segments.json"
DEFAULT_DIR = Path(tempfile.gettempdir()) / "spotlight-bench-seg"
TARGET_SIZE_P95_MS = 300
TARGET_PROFILE_MS = 1000
WINDOW = {"last_days": 30}

# Five typical definitions: a genre-and-device audience, a property-led one, a churn-risk one
# with a nested OR, a monetisation one (OR of two sources), and a binge-watchers one with the
# distinct counts.
DEFINITIONS: dict[str, dict[str, Any]] = {
    "drama_on_tv": {
        "op": "and",
        "items": [
            {"type": "watch_hours", "min": 5, "genre": "Drama"},
            {"type": "device", "any_of": ["tv"]},
        ],
    },
    "premium_north_america": {
        "op": "and",
        "items": [
            {"type": "country", "any_of": ["US", "CA"]},
            {"type": "plan", "any_of": ["premium"]},
            {"type": "active_days", "min": 3},
        ],
    },
    "churn_risk": {
        "op": "and",
        "items": [
            {"type": "sessions", "max": 1},
            {"type": "subscribed", "negate": True},
            {"op": "or", "items": [{"type": "churned"}, {"type": "plan", "any_of": ["basic"]}]},
        ],
    },
    "ppv_or_polls": {
        "op": "or",
        "items": [
            {"type": "ppv_purchases", "min": 1},
            {"type": "interactions", "min": 2, "kind": "poll"},
        ],
    },
    "binge_watchers": {
        "op": "and",
        "items": [
            {"type": "distinct_titles", "min": 5},
            {"type": "completed", "min": 3, "kind": "episode"},
            {"type": "signup_date", "after": "2025-01-01"},
        ],
    },
}


def _env() -> None:
    os.environ.setdefault("SPOTLIGHT_DATA_DIR", str(DEFAULT_DIR / "data"))
    os.environ.setdefault("SPOTLIGHT_KEY_DIR", str(DEFAULT_DIR / "keys"))


def _build(views: int, viewers: int) -> float:
    env = {
        **os.environ,
        "SPOTLIGHT_DEMO_VIEWS": str(views),
        "SPOTLIGHT_DEMO_VIEWERS": str(viewers),
    }
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from settings import load_settings; from data.demo import ensure_demo_extract; "
            "ensure_demo_extract(load_settings())",
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return time.perf_counter() - started


def _store():
    from data.extract.store import store_from_settings
    from settings import load_settings

    return store_from_settings(load_settings())


def _fresh_cursor():
    """A cursor of a newly opened DuckDB instance: nothing of the extract read yet."""
    return _store().cursor()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def _warm(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    fn()  # one more warm-up after the cold run
    samples = []
    for _ in range(repeat):
        samples.append(_time(fn)[0])
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50_ms": _ms(statistics.median(ordered)),
        "p95_ms": _ms(p95),
        "max_ms": _ms(ordered[-1]),
        "n": len(ordered),
    }


def measure(repeat: int, profile_repeat: int) -> dict[str, Any]:
    from data.queries.filters import Scope
    from data.queries.segments import (
        describe,
        parse_definition,
        resolve_window,
        segment_funnel,
        segment_profile,
        segment_size,
    )

    scope = Scope.everything()
    cursor = _fresh_cursor()
    (last_day,) = cursor.execute("SELECT max(day) FROM dv_view").fetchone()
    rows = {
        "fact_view": cursor.execute("SELECT count(*) FROM fact_view").fetchone()[0],
        "dim_viewer": cursor.execute("SELECT count(*) FROM dim_viewer").fetchone()[0],
    }
    start = last_day - timedelta(days=29)
    rows["window_views"] = cursor.execute(
        "SELECT count(*) FROM dv_view WHERE day >= ?", [start]
    ).fetchone()[0]

    # The ceiling: the least work any segment statement over the window does.
    ceiling_sql = "SELECT count(DISTINCT viewer_key) FROM dv_view WHERE day >= ?"
    fresh = _fresh_cursor()
    cold, (active,) = _time(lambda: fresh.execute(ceiling_sql, [start]).fetchone())
    ceiling = {"cold_ms": _ms(cold), "active_viewers": int(active)}
    ceiling.update(_warm(lambda: cursor.execute(ceiling_sql, [start]).fetchone(), repeat))

    results: dict[str, Any] = {}
    for name, match in DEFINITIONS.items():
        defn = parse_definition({"version": 1, "window": WINDOW, "match": match})
        entry: dict[str, Any] = {"describe": describe(defn), "definition": defn.to_json()}
        entry["window"] = [d.isoformat() for d in resolve_window(defn, last_day)]
        for what, fn, n in (
            ("size", segment_size, repeat),
            ("funnel", segment_funnel, profile_repeat),
            ("profile", segment_profile, profile_repeat),
        ):
            fresh = _fresh_cursor()  # cold: a new instance, nothing decrypted yet
            cold, out = _time(lambda fn=fn, c=fresh, d=defn: fn(c, d, scope))
            timing = {"cold_ms": _ms(cold)}
            timing.update(_warm(lambda fn=fn, d=defn: fn(cursor, d, scope), n))
            entry[what] = timing
            if what == "size":
                entry["viewers"] = out["viewers"]
                entry["share_of_active"] = round(out["share_of_active"], 4)
        entry["size_p50_over_ceiling"] = round(
            entry["size"]["p50_ms"] / max(ceiling["p50_ms"], 0.1), 1
        )
        results[name] = entry
        print(
            f"{name}: {entry['viewers']:,} viewers, size p95 {entry['size']['p95_ms']} ms, "
            f"profile p50 {entry['profile']['p50_ms']} ms",
            flush=True,
        )
    return {
        "rows": rows,
        "last_day": last_day.isoformat(),
        "ceiling": ceiling,
        "definitions": results,
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| definition | viewers | size cold | size p50 | size p95 | × ceiling | funnel p50 "
        "| profile cold | profile p50 | profile p95 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in result["definitions"].items():
        s, f, p = r["size"], r["funnel"], r["profile"]
        lines.append(
            f"| {name} | {r['viewers']:,} | {s['cold_ms']:.0f} ms | {s['p50_ms']:.0f} ms "
            f"| {s['p95_ms']:.0f} ms | {r['size_p50_over_ceiling']:.1f} | {f['p50_ms']:.0f} ms "
            f"| {p['cold_ms']:.0f} ms | {p['p50_ms']:.0f} ms | {p['p95_ms']:.0f} ms |"
        )
    c = result["ceiling"]
    lines.append(
        f"| *ceiling: distinct viewers of the window* | {c['active_viewers']:,} "
        f"| {c['cold_ms']:.0f} ms | {c['p50_ms']:.0f} ms | {c['p95_ms']:.0f} ms | 1.0 | | | | |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--build", action="store_true", help="build the extract if missing")
    parser.add_argument("--views", type=int, default=10_000_000)
    parser.add_argument("--viewers", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=20, help="warm runs of each size")
    parser.add_argument(
        "--profile-repeat", type=int, default=10, help="warm runs of each funnel and profile"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    _env()
    build_seconds = _build(args.views, args.viewers) if args.build else None
    load_before = os.getloadavg()
    started = datetime.now(UTC).replace(microsecond=0)
    measured = measure(args.repeat, args.profile_repeat)
    import duckdb

    result = {
        "measured_at": started.isoformat(),
        "machine": {
            "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in load_before],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "note": "shared machine: other engineers' tests and builds may have been running",
        },
        "extract": {
            "data_dir": os.environ["SPOTLIGHT_DATA_DIR"],
            "views_requested": args.views,
            "viewers_requested": args.viewers,
            "build_seconds": round(build_seconds, 1) if build_seconds else None,
        },
        "window": WINDOW,
        "targets": {"size_warm_p95_ms": TARGET_SIZE_P95_MS, "profile_ms": TARGET_PROFILE_MS},
        **measured,
    }
    print()
    print(table(result))
    m = result["machine"]
    print(
        f"\n{m['cores']} cores, {m['memory_gb']} GB, load average {m['load_average_at_start']} "
        f"-> {m['load_average_at_end']}; {result['rows']['fact_view']:,} views, "
        f"{result['rows']['dim_viewer']:,} viewers, {result['rows']['window_views']:,} views in "
        "the window"
    )
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
