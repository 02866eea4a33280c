"""Page-load benchmark: time from navigation to every chart drawn, in Chromium, per dashboard.

    # build a 10M-view demo extract once (about two minutes), into its own folders:
    SPOTLIGHT_DATA_DIR=/tmp/spotlight-bench/data SPOTLIGHT_KEY_DIR=/tmp/spotlight-bench/keys \\
      .venv/bin/python bench/pages.py --build --views 10000000
    # then measure (the same folders):
    SPOTLIGHT_DATA_DIR=/tmp/spotlight-bench/data SPOTLIGHT_KEY_DIR=/tmp/spotlight-bench/keys \\
      .venv/bin/python bench/pages.py --repeat 10

The app is started by Streamlit exactly as in production (``streamlit run app.py``) on a free
port, signed in as the demo manager (the dashboards) and then as finance (Revenue and Earnings,
with 2FA enrolled in the run on a fresh app database), and each page is reached
through the sidebar menu, as a user does. A measurement starts at the click and ends when the
page's title is shown, the script has finished running and every Plotly chart on the page has
drawn its SVG. The first visit of each page is *cold* (its queries run); later visits are
*warm* (the query cache answers, as for every user after the first with the same filters).
Writes ``bench/results/pages.json`` and prints a Markdown table for bench/README.md.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "pages.json"
# Who opens which pages: the manager the dashboards, finance (2FA, enrolled in the run) the
# money pages.
ACCOUNTS: dict[str, tuple[tuple[str, str], ...]] = {
    "manager": (
        ("Overview", "📊 Overview"),
        ("Engagement", "🔥 Engagement"),
        ("Compare titles", "⚖️ Compare titles"),
    ),
    "finance": (
        ("Revenue", "💵 Revenue"),
        ("Earnings", "💰 Earnings"),
    ),
}
PAGES = tuple(page for pages in ACCOUNTS.values() for page in pages)
TARGET_P95_S = 1.5

_DRAWN = """(title) => {
    const h1 = [...document.querySelectorAll('h1')].some(h => h.textContent.includes(title));
    const app = document.querySelector('[data-testid="stApp"]');
    const idle = app && app.getAttribute('data-test-script-state') !== 'running'
        && !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]');
    const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
    const stale = document.querySelector('[data-stale="true"]');
    return h1 && idle && !stale && charts.length > 0 && charts.every(c => c.querySelector('.main-svg'));
}"""


def _build(views: int) -> float:
    env = {
        **os.environ,
        "SPOTLIGHT_DEMO_VIEWS": str(views),
        "SPOTLIGHT_DEMO_VIEWERS": str(max(1000, views // 25)),
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


def _extract_rows() -> int:
    sys.path.insert(0, str(ROOT))
    from data.extract.store import store_from_settings
    from settings import load_settings

    return int(
        store_from_settings(load_settings())
        .cursor()
        .execute("SELECT count(*) FROM fact_view")
        .fetchone()[0]
    )


def measure(url: str, repeat: int) -> dict:
    import pyotp
    from playwright.sync_api import sync_playwright

    from security.demo import DEMO_PASSWORD
    from tests.e2e.app_process import CHROMIUM, CHROMIUM_FLAGS

    samples: dict[str, list[float]] = {label: [] for label, _ in PAGES}
    cold: dict[str, float] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        for username, pages in ACCOUNTS.items():
            tab = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
            tab.set_default_timeout(120_000)
            # Land on the account page (no dashboard query), so every page's first visit is cold.
            tab.goto(f"{url}/account")
            tab.get_by_label("Username").fill(username)
            tab.get_by_role("textbox", name="Password").fill(DEMO_PASSWORD)
            tab.get_by_role("button", name="Sign in").click()
            nav = tab.locator('[data-testid="stSidebarNav"]')
            code = tab.get_by_label("6-digit code")
            code.or_(nav).first.wait_for()
            if code.count():
                # A fresh app database: the account enrols in 2FA on its first sign-in.
                secret = tab.get_by_label("Key for typing in by hand").input_value()
                code.fill(pyotp.TOTP(secret).now())
                tab.get_by_role("button", name="Verify").click()
            nav.wait_for()
            for _round in range(repeat + 1):
                for label, title in pages:
                    started = time.perf_counter()
                    nav.get_by_role("link", name=label).click()
                    tab.wait_for_function(_DRAWN, arg=title, polling="raf")
                    elapsed = time.perf_counter() - started
                    if label not in cold:
                        cold[label] = elapsed
                    else:
                        samples[label].append(elapsed)
            tab.context.close()
        browser.close()
    pages = {}
    for label, values in samples.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        pages[label] = {
            "cold_s": round(cold[label], 3),
            "warm_median_s": round(statistics.median(ordered), 3),
            "warm_p95_s": round(p95, 3),
            "warm_max_s": round(ordered[-1], 3),
            "warm_samples": len(ordered),
        }
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--build", action="store_true", help="build the demo extract first if missing"
    )
    parser.add_argument("--views", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=10, help="warm visits per page")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if "SPOTLIGHT_DATA_DIR" not in os.environ or "SPOTLIGHT_KEY_DIR" not in os.environ:
        sys.exit("Set SPOTLIGHT_DATA_DIR and SPOTLIGHT_KEY_DIR to the benchmark's own folders.")
    build_seconds = _build(args.views) if args.build else None
    rows = _extract_rows()
    from tests.e2e.app_process import running_app

    load_before = os.getloadavg()[0]
    with running_app(
        Path(tempfile.mkdtemp(prefix="spotlight-bench-pages-")),
        timeout=300,
        data_dir=os.environ["SPOTLIGHT_DATA_DIR"],
        key_dir=os.environ["SPOTLIGHT_KEY_DIR"],
        # A fresh app database each run: its demo accounts enrol in 2FA in the run.
        app_db=str(Path(tempfile.mkdtemp(prefix="spotlight-bench-appdb-")) / "app.sqlite"),
    ) as app:
        pages = measure(app.url, args.repeat)
    result = {
        "machine": {
            "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "python": platform.python_version(),
            "load_average_at_start": round(load_before, 2),
            "note": "other processes (other engineers' tests and builds) were running",
        },
        "fact_view_rows": rows,
        "build_seconds": round(build_seconds, 1) if build_seconds else None,
        "target_warm_p95_s": TARGET_P95_S,
        "pages": pages,
    }
    print("| page | cold (first visit) | warm median | warm p95 | warm max | n |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, r in pages.items():
        print(
            f"| {label} | {r['cold_s']:.2f} s | {r['warm_median_s']:.2f} s | {r['warm_p95_s']:.2f} s "
            f"| {r['warm_max_s']:.2f} s | {r['warm_samples']} |"
        )
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
