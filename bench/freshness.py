"""Freshness end to end: from a commit in the warehouse to the number changing on an open page.

``python -m bench.freshness [--views 1000000 --views 10000000] [--interval 60] [--samples 5]``

For each size it loads the demo platform into a PostgreSQL schema of its own (the warehouse),
runs a first full sync, then starts what a deployment runs: the app (``streamlit run``, its
``auto_refresh_seconds`` = the interval) and the scheduler (``cli.py sync --every <interval>``),
and opens the Overview in Debian's headless Chromium, signed in as a content manager. Each
sample commits one new view session, a few minutes after the newest, at a random moment of the
interval, then watches the page, never clicking, until "Starts today, to HH:MM UTC" shows the
new time. Latency = that moment minus the commit: the wait for the next scheduled sync, the
sync, and the wait for the page's next refresh.

Also recorded, as the machine's own ceiling in the same run: the seconds each scheduled sync
took (from the sync-state record beside the extract), so the latency can be read as
interval-bound or sync-bound; and the CPU cost of the schedule on an idle day: the scheduler's
and the app's CPU seconds over ``--idle-minutes`` with no new rows and one open page. Results go
to bench/results/freshness-<views>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from data.demo import DemoConfig
from data.sync.freshness import last_attempt
from tests.e2e.app_process import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    running_app,
    warehouse_schema,
    warehouse_settings,
)
from tests.integration.conftest import EXTRACT_KEY, PG_DSN, PgWarehouse, load_demo

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
USER, PASSWORD = "bench-manager", "correct horse battery staple"
LABEL = re.compile(r"Starts today, to (\d\d:\d\d) UTC")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_pid(url: str) -> int | None:
    """The streamlit server serving ``url`` (by its --server.port on the command line)."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(args) and port.encode() in args:
            return int(proc.name)
    return None


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    done = subprocess.run(
        [sys.executable, "cli.py", *args],
        input=stdin,
        text=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=3600,
    )
    if done.returncode:
        raise RuntimeError(f"cli.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def _page_label(tab) -> str:
    text = tab.get_by_text(LABEL).first.inner_text(timeout=60_000)
    found = LABEL.search(text)
    return found.group(1) if found else ""


def run(views: int, interval: int, samples: int, idle_minutes: float) -> dict:
    from playwright.sync_api import sync_playwright

    result: dict = {"views": views, "interval_seconds": interval}
    with warehouse_schema(PG_DSN, "bench_fresh") as schema:
        warehouse = PgWarehouse(schema, PG_DSN)
        started = time.perf_counter()
        # The data ends yesterday, so every new view lands "today" and moves today's label.
        config = DemoConfig(
            viewers=max(1000, views // 20),
            views=views,
            seed=7,
            end=date.today() - timedelta(days=1),
            days=365,
        )
        load_demo(warehouse, config)
        result["load_seconds"] = round(time.perf_counter() - started, 1)
        root = Path(tempfile.mkdtemp(prefix="spotlight-bench-fresh-"))
        settings = warehouse_settings(
            PG_DSN,
            schema,
            EXTRACT_KEY,
            auto_refresh_seconds=str(interval),
            auto_refresh_idle_minutes="600",
        )
        with running_app(root, timeout=600, **settings) as app:
            _cli(
                app.env,
                "users",
                "add",
                USER,
                "-r",
                "manager",
                "--password-stdin",
                stdin=PASSWORD + "\n",
            )
            t = time.perf_counter()
            _cli(app.env, "sync", "--full", "--quiet")
            result["first_full_sync_seconds"] = round(time.perf_counter() - t, 1)
            # The first new view is today, just after midnight UTC; each next one a minute on.
            (newest,) = warehouse.sql("SELECT max(started_at) FROM fact_view")[0]
            today = datetime.now(UTC).replace(hour=0, minute=1, second=0, microsecond=0)
            scheduler = subprocess.Popen(
                [
                    sys.executable,
                    "cli.py",
                    "sync",
                    "--every",
                    f"{interval}s",
                    "--full-every",
                    "off",
                    "--quiet",
                ],
                cwd=ROOT,
                env=app.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                    tab = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
                    tab.set_default_timeout(120_000)
                    tab.goto(app.url)
                    tab.get_by_label("Username").fill(USER)
                    tab.get_by_role("textbox", name="Password").fill(PASSWORD)
                    tab.get_by_role("button", name="Sign in").click()
                    tab.get_by_role("heading", name="Today so far").wait_for(timeout=600_000)
                    latencies, sync_seconds = [], []
                    for i in range(samples):
                        time.sleep(random.uniform(0, interval))
                        at = today + timedelta(minutes=i)
                        before = _page_label(tab)
                        warehouse.sql(
                            "INSERT INTO fact_view SELECT view_id + 900000000 + %s, viewer_key, "
                            "title_id, %s, watch_seconds, device, country, tz_offset_min, "
                            "completed, now() FROM fact_view WHERE started_at = %s LIMIT 1",
                            (i, at, newest),
                        )
                        committed = time.perf_counter()
                        want = f"{at:%H:%M}"
                        while _page_label(tab) != want:
                            if time.perf_counter() - committed > 6 * interval + 600:
                                raise TimeoutError(f"the page still shows {before} for {want}")
                            time.sleep(0.5)
                        latencies.append(round(time.perf_counter() - committed, 1))
                        attempt = last_attempt(app.data_dir / "extract.duckdb")
                        if attempt is not None:
                            sync_seconds.append(
                                round((attempt.finished_at - attempt.started_at).total_seconds(), 1)
                            )
                        print(f"{views:,} views, sample {i + 1}: {latencies[-1]} s", flush=True)
                    result["latency_seconds"] = latencies
                    result["latency_p50"] = statistics.median(latencies)
                    result["latency_p95"] = sorted(latencies)[
                        max(0, round(0.95 * len(latencies)) - 1)
                    ]
                    result["scheduled_sync_seconds"] = sync_seconds
                    # An idle day: no new rows, one open page, the schedule running.
                    server_pid = _server_pid(app.url)
                    cpu0 = _cpu_seconds(scheduler.pid)
                    app0 = _cpu_seconds(server_pid) if server_pid else None
                    time.sleep(idle_minutes * 60)
                    result["idle_minutes"] = idle_minutes
                    result["idle_scheduler_cpu_seconds"] = round(
                        _cpu_seconds(scheduler.pid) - cpu0, 2
                    )
                    if app0 is not None:
                        result["idle_app_cpu_seconds"] = round(_cpu_seconds(server_pid) - app0, 2)
                    browser.close()
            finally:
                scheduler.send_signal(signal.SIGTERM)
                try:
                    scheduler.wait(120)
                except subprocess.TimeoutExpired:
                    scheduler.kill()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--views", type=int, action="append")
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--idle-minutes", type=float, default=5.0)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for views in args.views or [1_000_000]:
        load = os.getloadavg()
        result = run(views, args.interval, args.samples, args.idle_minutes)
        result.update(
            {
                "measured": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                "python": platform.python_version(),
                "load_average_at_start": [round(x, 1) for x in load],
                "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
            }
        )
        path = RESULTS / f"freshness-{views}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
