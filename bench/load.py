"""Concurrency benchmark: signed-in users speaking Streamlit's own websocket protocol to one replica.

    # the curve: a fresh server per level and config, 30 s think time, the default demo extract
    .venv/bin/python -m bench.load curve --levels 25,50,100,200 --gc on,off
    # memory: a large extract (built once, a few minutes), 100 sessions, a soak with RSS sampled
    SPOTLIGHT_DATA_DIR=/tmp/big/data SPOTLIGHT_KEY_DIR=/tmp/big/keys \\
      .venv/bin/python cli.py demo --views 10000000
    .venv/bin/python -m bench.load memory --data-dir /tmp/big/data --key-dir /tmp/big/keys \\
      --sessions 100 --soak 300 --gc off

The recipe is the verified one in ``shared/notes/streamlit-load.md``: every simulated user has
its own server-side session, created through ``security.service`` (``create_session``) and
carried in a sign-in cookie signed exactly as ``components/session_cookie.py`` signs it; it
opens ``/_stcore/stream`` with that cookie, sends ``BackMsg.rerun_script`` as a browser does on
connect, then after an exponential think time picks another Period in the filter bar (the
selectbox's widget state, not the query string: pitfall 1) and times the rerun from the send to
``script_finished``. Users are managers, analysts, marketers and partners (roles without 2FA,
pitfall 2) spread over the Overview, Engagement and Compare titles pages, ramped in over about
two think times and settled before the window (pitfall 8).

The machine is shared with other workers, so every level also measures the ceiling in the same
run: one user rerunning back to back on the warmed, otherwise idle server (its p50 is the
fastest a rerun goes on this machine at that moment), the machine's busy CPU outside the server
and this generator during the window, and the load average. Results: ``bench/results/load.json``
(``curve``) and ``bench/results/load-memory.json`` (``memory``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jwt  # noqa: E402 - after the path set-up, as the other benches
import streamlit  # noqa: E402
import websockets  # noqa: E402
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

from tests.e2e.app_process import RunningApp, running_app  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_P95_S = 2.0
RUN_TIMEOUT_S = 60.0
# Roles without 2FA (a fresh session of a 2FA role is mfa_pending and gets the sign-in form),
# and the pages each may open: the heading proves the page was drawn, not the sign-in form.
PAGES = {"overview": "Overview", "engagement": "Engagement", "compare": "Compare titles"}
ROLE_PAGES = {
    "manager": ("overview", "engagement", "compare"),
    "analyst": ("overview", "engagement", "compare"),
    "marketer": ("overview",),
    "partner": ("overview",),
}
ROLES = tuple(ROLE_PAGES)


# --- the machine ------------------------------------------------------------------------------
def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _machine_busy_seconds() -> float:
    """Busy CPU-seconds of the whole machine since boot (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _machine(note: str = "") -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "streamlit": streamlit.__version__,
        "websockets": websockets.__version__,
        "platform": platform.platform(),
        "note": note,
    }


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# --- sign-in cookies --------------------------------------------------------------------------
def mint_cookies(env: dict[str, str], n: int, tag: str) -> list[dict[str, str]]:
    """N signed-in users: one server-side session each, and its cookie as the app signs it."""
    saved = {k: os.environ.get(k) for k in env if k.startswith("SPOTLIGHT_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("SPOTLIGHT_")})
    try:
        from security.service import open_security
        from settings import load_settings

        settings = load_settings()
        security = open_security(settings)
        key = settings.secret("cookie_key")
        expiry = (datetime.now() + timedelta(days=settings.cookie_expiry_days)).timestamp()
        out = []
        for i in range(n):
            role = ROLES[i % len(ROLES)]
            pages = ROLE_PAGES[role]
            page = pages[(i // len(ROLES)) % len(pages)]
            token = security.create_session(role, f"client-loadgen-{tag}-{i:04d}")
            value = jwt.encode({"username": role, "sid": token, "exp_date": expiry}, key, "HS256")
            out.append({"user": role, "page": page, "cookie": f"{settings.cookie_name}={value}"})
        return out
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- one simulated user -----------------------------------------------------------------------
@dataclass
class UserState:
    page_path: str
    query: str = ""
    page_hash: str = ""
    preset: tuple[str, list[str]] | None = None
    current_label: str = ""


@dataclass
class Run:
    ended: float  # perf_counter at script_finished
    seconds: float
    page: str
    first: bool
    error: str | None = None


@dataclass
class Recorder:
    runs: list[Run] = field(default_factory=list)
    connect_errors: list[str] = field(default_factory=list)


def _rerun_message(base_url: str, state: UserState, first: bool, widgets=()) -> bytes:
    back = BackMsg()
    cs = back.rerun_script
    cs.query_string = state.query
    if first:
        cs.page_name = state.page_path
    else:
        cs.page_script_hash = state.page_hash
    cs.context_info.timezone = "UTC"
    cs.context_info.locale = "en-US"
    cs.context_info.url = f"{base_url}/{state.page_path}"
    for widget_id, label in widgets:
        w = cs.widget_states.widgets.add()
        w.id = widget_id
        w.string_value = label
    return back.SerializeToString()


async def _one_run(ws, base_url: str, state: UserState, page: str, first: bool, widgets=()) -> Run:
    started = time.perf_counter()
    error = None
    heading_seen = False
    await ws.send(_rerun_message(base_url, state, first, widgets))
    while True:
        msg = ForwardMsg()
        msg.ParseFromString(await asyncio.wait_for(ws.recv(), RUN_TIMEOUT_S))
        kind = msg.WhichOneof("type")
        if kind == "navigation" and msg.navigation.page_script_hash:
            state.page_hash = msg.navigation.page_script_hash
        elif kind == "page_info_changed":
            state.query = msg.page_info_changed.query_string
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            which = element.WhichOneof("type")
            if which == "exception":
                error = f"exception: {element.exception.message[:120]}"
            elif which == "heading" and PAGES[page] in element.heading.body:
                heading_seen = True
            elif which == "selectbox" and element.selectbox.id.endswith("-filters-preset"):
                options = [o for o in element.selectbox.options if o != "Custom range"]
                state.preset = (element.selectbox.id, options)
        elif kind == "script_finished":
            if msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                continue
            if msg.script_finished != ForwardMsg.FINISHED_SUCCESSFULLY:
                error = error or ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)
            if not heading_seen and error is None:
                error = "no page heading (signed out?)"
            now = time.perf_counter()
            return Run(now, now - started, page, first, error)


async def user(
    base_url: str,
    who: dict[str, str],
    think: float,
    stop_at: float,
    recorder: Recorder,
    rng: random.Random,
    back_to_back: bool = False,
) -> None:
    """One signed-in user: open the page, then change the Period after each think time."""
    page = who["page"]
    state = UserState(page_path="" if page == "overview" else page)
    ws_url = base_url.replace("http://", "ws://") + "/_stcore/stream"
    try:
        async with websockets.connect(
            ws_url,
            subprotocols=["streamlit"],
            max_size=None,
            open_timeout=RUN_TIMEOUT_S,
            additional_headers={"Cookie": who["cookie"]},
        ) as ws:
            recorder.runs.append(await _one_run(ws, base_url, state, page, first=True))
            while True:
                pause = 0.0 if back_to_back else rng.expovariate(1 / think)
                if time.perf_counter() + pause >= stop_at:
                    return
                await asyncio.sleep(pause)
                widgets = ()
                if state.preset:
                    widget_id, labels = state.preset
                    choices = [label for label in labels if label != state.current_label]
                    state.current_label = rng.choice(choices or labels)
                    widgets = ((widget_id, state.current_label),)
                try:
                    recorder.runs.append(await _one_run(ws, base_url, state, page, False, widgets))
                except TimeoutError:
                    recorder.runs.append(
                        Run(time.perf_counter(), RUN_TIMEOUT_S, page, False, "timeout")
                    )
                    return
    except (OSError, websockets.exceptions.WebSocketException, TimeoutError) as exc:
        recorder.connect_errors.append(f"{type(exc).__name__}: {exc}"[:160])


# --- measuring ----------------------------------------------------------------------------------
@dataclass
class Sampler:
    pid: int
    rss: list[tuple[float, float]] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)

    async def run(self, until: float, every: float = 0.5) -> None:
        while time.perf_counter() < until:
            before = time.perf_counter()
            await asyncio.sleep(every)
            self.lag.append(time.perf_counter() - before - every)
            try:
                self.rss.append((time.perf_counter(), _proc_rss_mb(self.pid)))
            except FileNotFoundError:
                return


def _snapshot(pid: int) -> dict[str, float]:
    return {
        "t": time.perf_counter(),
        "server_cpu": _proc_cpu_seconds(pid),
        "self_cpu": time.process_time(),
        "machine_busy": _machine_busy_seconds(),
        "load1": os.getloadavg()[0],
    }


def _summary(runs: list[Run]) -> dict[str, Any]:
    times = [r.seconds for r in runs if not r.error]
    return {
        "reruns": len(runs),
        "errors": sum(1 for r in runs if r.error),
        "p50_s": _round(_pct(times, 0.50)),
        "p95_s": _round(_pct(times, 0.95)),
        "max_s": _round(max(times) if times else None),
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


async def _drive(
    app: RunningApp,
    cookies: list[dict[str, str]],
    think: float,
    ramp: float,
    settle: float,
    window: float,
    seed: int,
) -> dict[str, Any]:
    """N users ramped in, settled, then measured over the window."""
    rng = random.Random(seed)
    recorder = Recorder()
    t0 = time.perf_counter()
    window_start = t0 + ramp + settle
    window_end = window_start + window
    sampler = Sampler(app.pid)
    sampler_task = asyncio.create_task(sampler.run(window_end + 1))
    tasks = []
    for i, who in enumerate(cookies):
        start = t0 + ramp * i / max(1, len(cookies))
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        tasks.append(asyncio.create_task(user(app.url, who, think, window_end, recorder, rng)))
    await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
    rss_at_window = _proc_rss_mb(app.pid)
    before = _snapshot(app.pid)
    await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
    after = _snapshot(app.pid)
    await asyncio.wait(tasks, timeout=RUN_TIMEOUT_S + 5)
    for task in tasks:
        task.cancel()
    await sampler_task
    in_window = [r for r in recorder.runs if window_start <= r.ended <= window_end]
    steady = [r for r in in_window if not r.first]
    span = after["t"] - before["t"]
    server_cpu = after["server_cpu"] - before["server_cpu"]
    self_cpu = after["self_cpu"] - before["self_cpu"]
    busy = after["machine_busy"] - before["machine_busy"]
    window_rss = [mb for t, mb in sampler.rss if window_start <= t <= window_end]
    n = len(cookies)
    result = {
        "sessions": n,
        **_summary(steady),
        "rate_per_s": round(len(steady) / span, 2),
        "initial_runs_in_window": sum(1 for r in in_window if r.first),
        "errors_all": sum(1 for r in recorder.runs if r.error),
        "error_kinds": sorted({r.error for r in recorder.runs if r.error})[:5],
        "connect_errors": recorder.connect_errors[:5],
        "pages": {
            page: _summary([r for r in steady if r.page == page])
            for page in PAGES
            if any(r.page == page for r in steady)
        },
        "server_cpu_cores": round(server_cpu / span, 3),
        "cpu_s_per_rerun": _round(server_cpu / max(1, len(in_window)), 4),
        "cpu_ms_per_session_per_s": round(1000 * server_cpu / span / n, 2),
        "generator_cpu_cores": round(self_cpu / span, 3),
        "others_cpu_cores": round(max(0.0, busy - server_cpu - self_cpu) / span, 3),
        "machine_busy_cores": round(busy / span, 3),
        "generator_loop_lag_p95_ms": _round(1000 * (_pct(sampler.lag, 0.95) or 0.0), 1),
        "rss_mb_at_window": round(rss_at_window, 1),
        "rss_mb_max": round(max(window_rss), 1) if window_rss else None,
        "load1": [before["load1"], after["load1"]],
    }
    result["first_runs"] = _summary([r for r in recorder.runs if r.first])
    # RSS every 5 s from the first user's start: (seconds, MB).
    series, next_t = [], t0
    for t, mb in sampler.rss:
        if t >= next_t:
            series.append((round(t - t0, 1), round(mb, 1)))
            next_t = t + 5
    result["rss_series"] = series
    result["window_start_s"] = round(window_start - t0, 1)
    return result


async def _warm(app: RunningApp, cookies: list[dict[str, str]], seconds: float) -> None:
    """Fill the caches: a few users cycling every period on every page, back to back."""
    recorder = Recorder()
    stop = time.perf_counter() + seconds
    rng = random.Random(1)
    await asyncio.gather(
        *(user(app.url, who, 0.0, stop, recorder, rng, back_to_back=True) for who in cookies)
    )
    errors = [r.error for r in recorder.runs if r.error] + recorder.connect_errors
    if errors:
        raise RuntimeError(f"warm-up failed: {errors[:3]}; server log: {app.log}")


async def _ceiling(app: RunningApp, who: dict[str, str], seconds: float) -> dict[str, Any]:
    """One user rerunning back to back on the warmed server: the fastest rerun right now."""
    recorder = Recorder()
    before = _snapshot(app.pid)
    await user(app.url, who, 0.0, time.perf_counter() + seconds, recorder, random.Random(2), True)
    after = _snapshot(app.pid)
    steady = [r for r in recorder.runs if not r.first]
    span = after["t"] - before["t"]
    return {
        "page": who["page"],
        **_summary(steady),
        "cpu_s_per_rerun": _round(
            (after["server_cpu"] - before["server_cpu"]) / max(1, len(recorder.runs)), 4
        ),
        "others_cpu_cores": round(
            max(
                0.0,
                (after["machine_busy"] - before["machine_busy"])
                - (after["server_cpu"] - before["server_cpu"])
                - (after["self_cpu"] - before["self_cpu"]),
            )
            / span,
            3,
        ),
    }


def _gc_args(gc: str) -> tuple[str, ...]:
    # Explicit both ways: .streamlit/config.toml turns the collection off, Streamlit's default on.
    return ("--runner.postScriptGC", "true" if gc == "on" else "false")


async def first_run_signed_out(base_url: str, timeout: float = 900.0) -> None:
    """The app's first script run (keys, demo accounts, the demo extract if none), signed out."""
    ws_url = base_url.replace("http://", "ws://") + "/_stcore/stream"
    async with websockets.connect(ws_url, subprotocols=["streamlit"], max_size=None) as ws:
        await ws.send(_rerun_message(base_url, UserState(page_path=""), first=True))
        deadline = time.monotonic() + timeout
        while True:
            msg = ForwardMsg()
            msg.ParseFromString(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            finished = msg.WhichOneof("type") == "script_finished"
            if finished and msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return


def _prepare(root: Path, settings: dict[str, str]) -> None:
    """The app's first run builds the keys, demo accounts and extract: do it once, unmeasured."""
    with running_app(root / "prepare", **settings) as app:
        asyncio.run(first_run_signed_out(app.url))
        cookies = mint_cookies(app.env, 1, "prepare")
        asyncio.run(_warm(app, cookies, 1.0))


def _level(root: Path, settings: dict[str, str], gc: str, n: int, args) -> dict[str, Any]:
    with running_app(root / f"{gc}-{n}", streamlit_args=_gc_args(gc), **settings) as app:
        warmers = mint_cookies(app.env, 8, f"warm-{gc}-{n}")
        ceiling_users = mint_cookies(app.env, 12, f"ceil-{gc}-{n}")
        asyncio.run(_warm(app, warmers, args.warm))
        ceilings = {}
        for page in PAGES:
            who = next(c for c in ceiling_users if c["page"] == page)
            ceilings[page] = asyncio.run(_ceiling(app, who, args.ceiling))
        cookies = mint_cookies(app.env, n, f"{gc}-{n}")
        result = asyncio.run(
            _drive(app, cookies, args.think, args.ramp, args.settle, args.window, seed=n)
        )
    result["config"] = "default" if gc == "on" else "runner.postScriptGC=false"
    result["ceiling"] = ceilings
    best = statistics.median([c["p50_s"] for c in ceilings.values() if c["p50_s"]])
    result["ceiling_p50_s"] = best
    result["p50_over_ceiling"] = _round(result["p50_s"] / best, 2) if result["p50_s"] else None
    result["p95_over_ceiling"] = _round(result["p95_s"] / best, 2) if result["p95_s"] else None
    return result


def _print_level(r: dict[str, Any]) -> None:
    print(
        f"{r['config']:>26} N={r['sessions']:>3}: {r['reruns']} reruns ({r['rate_per_s']}/s) "
        f"p50 {r['p50_s']} p95 {r['p95_s']} max {r['max_s']} err {r['errors_all']} | "
        f"server {r['server_cpu_cores']} cores, {r['cpu_s_per_rerun']} CPU-s/run, "
        f"others {r['others_cpu_cores']} | RSS {r['rss_mb_at_window']}->{r['rss_mb_max']} MB | "
        f"ceiling p50 {r['ceiling_p50_s']} | load1 {r['load1']}",
        flush=True,
    )


def curve(args) -> None:
    root = Path(tempfile.mkdtemp(prefix="spotlight-load-"))
    settings = {
        "data_dir": str(args.data_dir or root / "data"),
        "key_dir": str(args.key_dir or root / "keys"),
    }
    started = datetime.now(UTC)
    machine = _machine(args.machine_note) | {"load_average_at_start": list(os.getloadavg())}
    _prepare(root, settings)
    levels = []
    # Configs interleaved per level, so both see the same machine load as nearly as can be.
    for n in (int(x) for x in args.levels.split(",")):
        for gc in args.gc.split(","):
            result = _level(root, settings, gc, n, args)
            _print_level(result)
            result.pop("rss_series")
            levels.append(result)
    machine["load_average_at_end"] = list(os.getloadavg())
    out = {
        "benchmark": "load",
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "extract": args.extract_label,
        "protocol": {
            "nice": args.nice,
            "think_s": args.think,
            "ramp_s": args.ramp,
            "settle_s": args.settle,
            "window_s": args.window,
            "warm_s": args.warm,
            "ceiling_s_per_page": args.ceiling,
            "roles": ROLE_PAGES,
            "vary": "Period (filter bar selectbox) on every rerun",
        },
        "target": {"p95_s": TARGET_P95_S},
        "levels": levels,
    }
    _write(args, "load.json", out)


def memory(args) -> None:
    """One replica with a large extract: RSS idle, with N sessions connected, and over a soak."""
    root = Path(tempfile.mkdtemp(prefix="spotlight-load-mem-"))
    settings = {"data_dir": str(args.data_dir), "key_dir": str(args.key_dir)}
    started = datetime.now(UTC)
    machine = _machine(args.machine_note) | {"load_average_at_start": list(os.getloadavg())}
    with running_app(root, timeout=300, streamlit_args=_gc_args(args.gc), **settings) as app:
        extract = Path(args.data_dir) / "extract.duckdb"
        asyncio.run(first_run_signed_out(app.url))
        rss_started = _proc_rss_mb(app.pid)
        warmers = mint_cookies(app.env, 8, "mem-warm")
        asyncio.run(_warm(app, warmers, args.warm))
        rss_warm = _proc_rss_mb(app.pid)
        cookies = mint_cookies(app.env, args.sessions, "mem")
        ramp, settle = args.ramp, args.settle
        result = asyncio.run(
            _drive(app, cookies, args.think, ramp, settle, args.soak, seed=args.sessions)
        )
    # RSS over the soak window: the first and last minute's medians, and a least-squares slope.
    soak = [(t, mb) for t, mb in result["rss_series"] if t >= result["window_start_s"]]
    first = [mb for t, mb in soak if t < soak[0][0] + 60]
    last = [mb for t, mb in soak if t > soak[-1][0] - 60]
    slope = statistics.linear_regression([t for t, _ in soak], [mb for _, mb in soak]).slope
    out = {
        "benchmark": "load-memory",
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine | {"load_average_at_end": list(os.getloadavg())},
        "extract": {"label": args.extract_label, "bytes": extract.stat().st_size},
        "config": "default" if args.gc == "on" else "runner.postScriptGC=false",
        "nice": args.nice,
        "rss_mb_after_start": round(rss_started, 1),
        "rss_mb_after_warm_up": round(rss_warm, 1),
        "rss_mb_soak_first_minute_median": statistics.median(first),
        "rss_mb_soak_last_minute_median": statistics.median(last),
        "rss_mb_per_minute_slope": round(slope * 60, 2),
        "soak": result,
    }
    _write(args, f"load-memory-gc-{args.gc}.json", out)


def _write(args, name: str, out: dict[str, Any]) -> None:
    text = json.dumps(out, indent=2, default=str)
    if args.no_write:
        print(text)
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / (args.out or name)
    path.write_text(text + "\n")
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("curve", "memory"):
        p = sub.add_parser(name)
        p.add_argument("--gc", default="on" if name == "curve" else "off")
        p.add_argument("--think", type=float, default=30.0)
        p.add_argument("--ramp", type=float, default=45.0)
        p.add_argument("--settle", type=float, default=45.0)
        p.add_argument("--warm", type=float, default=20.0)
        p.add_argument("--data-dir", type=Path)
        p.add_argument("--key-dir", type=Path)
        p.add_argument("--extract-label", default="default demo extract (400,000 views)")
        p.add_argument(
            "--nice", type=int, default=0, help="scheduling priority of the servers (root: -10)"
        )
        p.add_argument("--machine-note", default="", help="e.g. what else ran on the machine")
        p.add_argument("--out")
        p.add_argument("--no-write", action="store_true")
    curve_p = sub.choices["curve"]
    curve_p.add_argument("--levels", default="25,50,100,200")
    curve_p.add_argument("--window", type=float, default=75.0)
    curve_p.add_argument("--ceiling", type=float, default=8.0, help="seconds per page")
    mem_p = sub.choices["memory"]
    mem_p.add_argument("--sessions", type=int, default=100)
    mem_p.add_argument("--soak", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.nice:
        # Inherited by the servers this starts: on a shared machine the server under test then
        # gets its core when it wants one, as on a host of its own (the others keep the rest).
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    curve(args) if args.mode == "curve" else memory(args)


if __name__ == "__main__":
    main()
