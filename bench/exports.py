"""Export benchmark: a 1M-row report written to CSV and to Excel, time and peak memory.

    .venv/bin/python -m bench.exports                 # 1M rows, 2 runs each, preview timings
    .venv/bin/python -m bench.exports --rows 200000 --repeat 1 --no-preview

Each measurement runs in a fresh Python process (its peak RSS is the export's, not the bench's):

- **csv** / **csv ;**: ``data.export.streaming.write_csv`` (``,``; ``;`` with decimal commas);
- **xlsx**: ``write_xlsx`` (openpyxl write-only workbook, formatted, with an About sheet);
- **xlsx, openpyxl cells**: the same workbook built the textbook way -- a ``WriteOnlyCell`` with
  a number format for every cell -- on a tenth of the rows, scaled by 10: why write_xlsx
  serialises its rows itself;
- **query csv / xlsx** (when a big extract is configured, as for bench/pages.py:
  ``SPOTLIGHT_DATA_DIR=/tmp/spotlight-bench/data SPOTLIGHT_KEY_DIR=/tmp/spotlight-bench/keys``):
  1M rows (the newest view sessions with their titles and creators) read from the encrypted
  extract with ``batches_from_query`` in 100k-row batches and written.

The rows: a realistic report frame (day, creator, title, country, device, starts, views, watch
hours, completion rate, net revenue: 10 columns), made in 100k-row batches by a seeded
generator; ``net`` is the run's time less the time to generate the same batches (measured in the
same process first). Peak RSS includes the interpreter and its imports (``baseline``).
The **ceiling** is this machine writing the file's own bytes with plain 1 MiB writes: the
ratio says how far each format is from the disk.

**Preview**: ``data.queries.reports.run_report`` on the demo extract the app builds by default
(400k views, built into a temp folder first) and on the big extract when configured: typical
layouts, the median of 5 warm runs and the first (cold) run.

Writes ``bench/results/exports.json`` and prints a Markdown table for bench/README.md.
Targets: CSV under 5 s, Excel under 60 s, peak memory under 1 GB; preview under a second.
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
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "exports.json"
BATCH_ROWS = 100_000
TARGETS = {"csv": 5.0, "xlsx": 60.0, "rss_mb": 1024}
COLUMNS = [
    ("Day", "date"),
    ("Creator", "text"),
    ("Title", "text"),
    ("Country", "text"),
    ("Device", "text"),
    ("Starts", "integer"),
    ("Views", "decimal"),
    ("Watch hours", "decimal"),
    ("Completion rate", "percent"),
    ("Net revenue (USD)", "money"),
]
PREVIEW_LAYOUTS: dict[str, dict[str, Any]] = {
    "country": {"rows": ["country"], "values": ["views", "active_viewers", "net_revenue"]},
    "country × device": {
        "rows": ["country"],
        "columns": ["device"],
        "values": ["views", "completion_rate"],
    },
    "creator × week, comparison": {
        "rows": ["creator", "period"],
        "grain": "week",
        "values": ["views", "watch_hours"],
        "comparison": True,
    },
    "month × plan": {
        "rows": ["period"],
        "columns": ["plan"],
        "grain": "month",
        "values": ["views", "mrr", "engagement_rate"],
    },
    "genre, country × device (heavy)": {
        "rows": ["genre", "country"],
        "columns": ["device"],
        "values": ["views", "active_viewers"],
        "subtotals": True,
    },
}


# --- the rows ------------------------------------------------------------------------------------
def report_batches(rows: int, batch_rows: int = BATCH_ROWS):
    """A realistic report frame in batches: seeded, so every run writes the same bytes."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(2026)
    days = np.array([date(2025, 1, 1) + timedelta(days=i) for i in range(730)], dtype=object)
    creators = np.array([f"Creator {i:03d} Studios" for i in range(300)], dtype=object)
    titles = np.array([f"Title {i:05d}: a long-ish name" for i in range(5000)], dtype=object)
    countries = np.array(["US", "DE", "FR", "GB", "IN", "BR", "JP", "ES", "MX", "AU"], dtype=object)
    devices = np.array(["tv", "mobile", "web", "console", "tablet"], dtype=object)
    for start in range(0, rows, batch_rows):
        n = min(batch_rows, rows - start)
        starts = rng.integers(1, 500, n)
        views = starts * rng.random(n)
        yield pd.DataFrame(
            {
                "Day": days[(start + np.arange(n)) * 730 // rows],
                "Creator": creators[rng.integers(0, 300, n)],
                "Title": titles[rng.integers(0, 5000, n)],
                "Country": countries[rng.integers(0, 10, n)],
                "Device": devices[rng.integers(0, 5, n)],
                "Starts": starts,
                "Views": views,
                "Watch hours": views * rng.uniform(0.3, 2.5, n),
                "Completion rate": rng.random(n),
                "Net revenue (USD)": np.round(rng.gamma(2.0, 40.0, n), 2),
            }
        )


def _formats():
    from data.export.streaming import ColumnFormat

    return [ColumnFormat(name, kind, "USD" if kind == "money" else "") for name, kind in COLUMNS]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- one measurement, in its own process ---------------------------------------------------------
def _naive_xlsx(batches, path: Path) -> int:
    """The textbook write-only workbook: a styled WriteOnlyCell for every cell."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    from data.export.streaming import NUMBER_FORMATS

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Report")
    sheet.freeze_panes = "A2"
    header = []
    for name, _kind in COLUMNS:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = Font(bold=True)
        header.append(cell)
    sheet.append(header)
    formats = [NUMBER_FORMATS[kind].format(currency="USD") for _name, kind in COLUMNS]
    rows = 0
    for batch in batches:
        for values in zip(*(batch[c].tolist() for c, _k in COLUMNS), strict=True):
            cells = []
            for value, fmt in zip(values, formats, strict=True):
                cell = WriteOnlyCell(sheet, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"
                cell.number_format = fmt
                cells.append(cell)
            sheet.append(cells)
            rows += 1
    book.save(path)
    return rows


def _query_batches(rows: int):
    from data.export.streaming import batches_from_query
    from data.extract.store import store_from_settings
    from settings import load_settings

    cursor = store_from_settings(load_settings()).cursor()
    (last,) = cursor.execute("SELECT max(day) FROM dv_view").fetchone()
    # The newest sessions with their titles and creators: a plain scan of the day-sorted table,
    # streamed (no ORDER BY: DuckDB hands batches over as it reads).
    sql = """
        SELECT v.day AS "Day", c.name AS "Creator", t.name AS "Title", v.country AS "Country",
            v.device AS "Device", 1 AS "Starts", v.views AS "Views",
            v.watch_seconds / 3600.0 AS "Watch hours",
            CASE WHEN v.completed THEN 1.0 ELSE 0.0 END AS "Completion rate",
            0.0 AS "Net revenue (USD)"
        FROM dv_view v JOIN dim_title t ON t.title_id = v.title_id
        LEFT JOIN dim_creator c ON c.creator_id = t.creator_id
        WHERE v.day >= ? LIMIT ?
    """
    since = last - timedelta(days=max(30, rows * 2 // 10_000))
    return batches_from_query(cursor, sql, [since, rows], batch_rows=BATCH_ROWS)


def run_case(case: str, rows: int, folder: Path) -> dict[str, Any]:
    from data.export.streaming import SheetSpec, write_csv, write_xlsx

    baseline = _rss_mb()
    out: dict[str, Any] = {"case": case, "rows": rows, "baseline_rss_mb": round(baseline)}
    source = _query_batches if case.startswith("query") else report_batches
    if not case.startswith("query"):
        started = time.perf_counter()
        for _batch in source(rows):
            pass
        out["generate_seconds"] = round(time.perf_counter() - started, 3)
    path = folder / ("out.csv" if "csv" in case else "out.xlsx")
    started = time.perf_counter()
    if case in ("csv", "query csv"):
        written = write_csv(source(rows), path)
    elif case == "csv ;":
        written = write_csv(source(rows), path, delimiter=";")
    elif case in ("xlsx", "query xlsx"):
        about = [("Exported by", "bench"), ("Rows", f"{rows:,}")]
        (written,) = write_xlsx([SheetSpec("Report", source(rows), _formats())], path, about=about)
    elif case == "xlsx, openpyxl cells":
        written = _naive_xlsx(source(rows), path)
    else:
        raise ValueError(case)
    seconds = time.perf_counter() - started
    assert written == rows, (written, rows)
    out["seconds"] = round(seconds, 3)
    out["net_seconds"] = round(seconds - out.get("generate_seconds", 0.0), 3)
    out["peak_rss_mb"] = round(_rss_mb())
    out["bytes"] = path.stat().st_size
    # The ceiling: the same bytes written with plain 1 MiB writes.
    data = path.read_bytes()
    copy = folder / "ceiling.bin"
    started = time.perf_counter()
    with open(copy, "wb") as fh:
        for i in range(0, len(data), 1 << 20):
            fh.write(data[i : i + (1 << 20)])
    out["ceiling_seconds"] = round(time.perf_counter() - started, 5)
    copy.unlink()
    path.unlink()
    return out


def measure(case: str, rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="spotlight-bench-exports-") as folder:
        done = subprocess.run(
            [sys.executable, __file__, "--case", case, "--rows", str(rows), "--folder", folder],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
    if done.returncode != 0:
        raise RuntimeError(f"{case}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- report preview ------------------------------------------------------------------------------
def preview(store, label: str, runs: int = 5) -> list[dict[str, Any]]:
    from data.queries.filters import Filters, Scope
    from data.queries.metrics import data_bounds
    from data.queries.reports import parse_report, run_report

    cursor = store.cursor()
    bounds = data_bounds(cursor)
    assert bounds is not None
    filters = Filters.for_preset("last_90_days", bounds[1])
    views = cursor.execute("SELECT count(*) FROM fact_view").fetchone()[0]
    out = []
    for name, layout in PREVIEW_LAYOUTS.items():
        d = parse_report({"version": 1, **layout})
        times = []
        for _ in range(runs + 1):
            started = time.perf_counter()
            result = run_report(cursor, d, filters, Scope.everything(), can_see_money=True)
            times.append(time.perf_counter() - started)
        out.append(
            {
                "extract": label,
                "views": views,
                "layout": name,
                "cold_seconds": round(times[0], 3),
                "median_seconds": round(statistics.median(times[1:]), 3),
                "max_seconds": round(max(times[1:]), 3),
                "catalog_calls": result.queries,
                "rows": len(result.frame),
            }
        )
    return out


def run_previews() -> list[dict[str, Any]]:
    from data.demo import DemoConfig, build_demo_extract
    from data.extract.store import ExtractStore

    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="spotlight-bench-demo-") as folder:
        store = ExtractStore(Path(folder) / "extract.duckdb", "bench-extract-key-0123456789abcdef")
        config = DemoConfig(end=date(2026, 10, 31))  # the app's default size
        build_demo_extract(store, config, "bench-pseudonym-key-0123456789abcdef")
        out += preview(store, f"demo ({config.views:,} views)")
    if _big_extract():
        from data.extract.store import store_from_settings
        from settings import load_settings

        out += preview(store_from_settings(load_settings()), "big extract")
    return out


def _big_extract() -> bool:
    data_dir = os.environ.get("SPOTLIGHT_DATA_DIR")
    return bool(data_dir) and (Path(data_dir) / "extract.duckdb").exists()


# --- report ----------------------------------------------------------------------------------------
def _machine() -> dict[str, Any]:
    import duckdb
    import openpyxl
    import pandas

    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    try:
        import lxml

        lxml_version = lxml.__version__
    except ImportError:
        lxml_version = None
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024**2),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "duckdb": duckdb.__version__,
        "pandas": pandas.__version__,
        "openpyxl": openpyxl.__version__,
        "lxml": lxml_version,
        "load_average_at_start": list(os.getloadavg()),
    }


def _table(summary: list[dict[str, Any]]) -> str:
    lines = [
        "| export | rows | best s | net s | ceiling s | ratio | peak RSS MB (baseline) | file MB | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in summary:
        target = s.get("target_seconds")
        ok = (
            ""
            if target is None
            else (
                "✅"
                if s["best_seconds"] <= target and s["peak_rss_mb"] <= TARGETS["rss_mb"]
                else "❌"
            )
            + f" < {target:g} s"
        )
        lines.append(
            f"| {s['case']} | {s['rows']:,} | {s['best_seconds']:.2f} | {s['net_seconds']:.2f} | "
            f"{s['ceiling_seconds']:.3f} | {s['ratio']:.0f}× | {s['peak_rss_mb']} ({s['baseline_rss_mb']}) | "
            f"{s['bytes'] / 1e6:.0f} | {ok} |"
        )
    return "\n".join(lines)


def _preview_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| extract | layout | cold s | median s | max s | catalog calls | rows |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['extract']} | {r['layout']} | {r['cold_seconds']:.3f} | "
            f"{r['median_seconds']:.3f} | {r['max_seconds']:.3f} | {r['catalog_calls']} | {r['rows']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-preview", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.rows, Path(args.folder))))
        return

    machine = _machine()
    plan: list[tuple[str, int, int, float | None]] = [
        # (case, rows measured, scale to the reported rows, target seconds)
        ("csv", args.rows, 1, TARGETS["csv"]),
        ("csv ;", args.rows, 1, TARGETS["csv"]),
        ("xlsx", args.rows, 1, TARGETS["xlsx"]),
        ("xlsx, openpyxl cells", max(1, args.rows // 10), 10, None),
    ]
    if _big_extract():
        plan += [
            ("query csv", args.rows, 1, TARGETS["csv"]),
            ("query xlsx", args.rows, 1, TARGETS["xlsx"]),
        ]
    runs: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    for case, rows, scale, target in plan:
        mine = []
        for _ in range(args.repeat if scale == 1 else 1):
            run = measure(case, rows)
            run["load_average"] = os.getloadavg()[0]
            mine.append(run)
            runs.append(run)
            print(f"{case}: {run['seconds']:.2f} s, {run['peak_rss_mb']} MB", file=sys.stderr)
        best = min(mine, key=lambda r: r["seconds"])
        summary.append(
            {
                "case": case + (f" (×{scale} of {rows:,})" if scale != 1 else ""),
                "rows": rows * scale,
                "best_seconds": best["seconds"] * scale,
                "net_seconds": best["net_seconds"] * scale,
                "ceiling_seconds": best["ceiling_seconds"] * scale,
                "ratio": best["seconds"] / best["ceiling_seconds"]
                if best["ceiling_seconds"]
                else 0,
                "peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
                "baseline_rss_mb": best["baseline_rss_mb"],
                "bytes": best["bytes"] * scale,
                "target_seconds": target,
            }
        )
    previews = [] if args.no_preview else run_previews()
    machine["load_average_at_end"] = list(os.getloadavg())
    result = {
        "machine": machine,
        "targets": TARGETS,
        "summary": summary,
        "runs": runs,
        "preview": previews,
    }
    if not args.no_write:
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(_table(summary))
    if previews:
        print()
        print(_preview_table(previews))


if __name__ == "__main__":
    main()
