"""Benchmark of the demo generator: build encrypted demo extracts of several sizes.

    .venv/bin/python bench/demo.py                 # 400k (the default demo), 1M and 10M views
    .venv/bin/python bench/demo.py --sizes 1000000 --repeat 3

Each build runs in its own process, so its peak RSS (``ru_maxrss``) is that build's alone.
Writes ``bench/results/demo.json`` and prints a Markdown table for bench/README.md. Viewers are
views / 20, the ratio of the default demo. ``seconds`` is the whole build: generation, inserts
into the encrypted extract, derived tables and the final checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "demo.json"


def _one(views: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from data.demo import DemoConfig, build_demo_extract
    from data.extract.store import ExtractStore

    with tempfile.TemporaryDirectory() as tmp:
        store = ExtractStore(Path(tmp) / "extract.duckdb", "bench-extract-key-" * 3)
        config = DemoConfig(
            viewers=max(1_000, views // 20), views=views, seed=7, end=date(2026, 10, 31)
        )
        phases: dict[str, float] = {}
        started = time.perf_counter()

        def progress(fraction: float, message: str) -> None:
            if message in {"derived tables", "writing the encrypted extract", "done"}:
                phases[message] = time.perf_counter() - started

        result = build_demo_extract(store, config, "bench-pseudonym-key-" * 3, progress)
        size = store.path.stat().st_size
    seconds = float(result["seconds"])
    return {
        "views": views,
        "viewers": config.viewers,
        "seconds": seconds,
        "generate_and_insert_seconds": round(phases["derived tables"], 3),
        "derived_seconds": round(
            phases["writing the encrypted extract"] - phases["derived tables"], 3
        ),
        "insert_seconds": result["insert_seconds"],
        "views_per_second": round(views / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "extract_mb": round(size / 1e6, 1),
        "rows": result["rows"],
    }


def _machine() -> dict:
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    import duckdb
    import numpy

    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024**2),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "numpy": numpy.__version__,
        "load_average_at_start": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[400_000, 1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(_one(args.one)))
        return

    machine = _machine()
    runs = []
    for views in args.sizes:
        for i in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(views)],
                check=True,
                capture_output=True,
                text=True,
            )
            run = json.loads(out.stdout.strip().splitlines()[-1])
            runs.append(run)
            print(
                f"{views:>11,} views  run {i + 1}: {run['seconds']:6.1f} s  "
                f"{run['views_per_second']:>9,} views/s  peak RSS {run['peak_rss_mb']:,} MB",
                file=sys.stderr,
            )
    summary = []
    for views in args.sizes:
        mine = [r for r in runs if r["views"] == views]
        best = min(mine, key=lambda r: r["seconds"])
        summary.append(
            {
                "views": views,
                "viewers": best["viewers"],
                "median_seconds": round(statistics.median(r["seconds"] for r in mine), 1),
                "best_seconds": round(best["seconds"], 1),
                "best_views_per_second": best["views_per_second"],
                "derived_seconds_of_best": best["derived_seconds"],
                "max_peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
                "extract_mb": best["extract_mb"],
            }
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"machine": machine, "summary": summary, "runs": runs}, indent=2) + "\n"
    )
    print(
        "| views | viewers | build (median of runs) | best | views/s (best) | of which derived tables | peak RSS | extract |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in summary:
        print(
            f"| {s['views']:,} | {s['viewers']:,} | {s['median_seconds']} s | {s['best_seconds']} s "
            f"| {s['best_views_per_second']:,} | {s['derived_seconds_of_best']} s "
            f"| {s['max_peak_rss_mb']:,} MB | {s['extract_mb']} MB |"
        )


if __name__ == "__main__":
    main()
