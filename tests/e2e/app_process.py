"""The app served by ``streamlit run app.py`` on a free port, and how Chromium is launched here.

Shared by the end-to-end fixtures and the page benchmark (bench/pages.py), so both measure and
test the app started exactly as in production. No pytest here: the benchmark imports it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from settings import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"
# Debian's Chromium, offline: nothing that would reach for the network or a display.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class RunningApp:
    url: str
    data_dir: Path
    key_dir: Path
    env: dict[str, str]
    log: Path
    pid: int = 0  # the server's Python process (read its CPU and memory from /proc/PID)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited early:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:  # noqa: S310 - our own http URL
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the app did not become healthy in {timeout}s:\n{log.read_text()[-4000:]}")


@contextlib.contextmanager
def running_app(
    root: Path,
    timeout: float = 120,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    streamlit_args: tuple[str, ...] = (),
    **settings: str,
) -> Iterator[RunningApp]:
    """The app on a free port, its log in ``root``, stopped on exit.

    ``host`` is the name it is served and opened at (single sign-on needs ``localhost``, the
    host of its redirect URI); ``streamlit_args`` go to ``streamlit run`` (``--secrets.files``).

    Data and keys live under ``root`` unless ``settings`` name other folders (``data_dir``,
    ``key_dir``); every setting is passed as its SPOTLIGHT_* environment variable. A warehouse
    set in the calling environment is ignored unless ``warehouse_url`` is given.
    """
    env = {
        **os.environ,
        "SPOTLIGHT_DATA_DIR": str(root / "data"),
        "SPOTLIGHT_KEY_DIR": str(root / "keys"),
        **{f"SPOTLIGHT_{name.upper()}": value for name, value in settings.items()},
    }
    if "warehouse_url" not in settings:
        env.pop("SPOTLIGHT_WAREHOUSE_URL", None)
    root.mkdir(parents=True, exist_ok=True)
    log = root / "streamlit.log"
    port = port or _free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.port",
                str(port),
                "--server.address",
                host,
                "--server.headless",
                "true",
                *streamlit_args,
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://{host}:{port}"
    try:
        _wait_healthy(url, proc, log, timeout)
        yield RunningApp(
            url=url,
            data_dir=Path(env["SPOTLIGHT_DATA_DIR"]),
            key_dir=Path(env["SPOTLIGHT_KEY_DIR"]),
            env=env,
            log=log,
            pid=proc.pid,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# Keys for apps run against a test warehouse (never used outside tests and benchmarks).
TEST_APP_KEYS = {
    "cookie_key": "c-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
    "app_key": "a-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
    "audit_key": "u-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
}


@contextlib.contextmanager
def warehouse_schema(dsn: str, prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL schema named ``<prefix>_<random>`` (dropped on exit)."""
    import uuid

    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def warehouse_settings(dsn: str, schema: str, extract_key: str, **extra: str) -> dict[str, str]:
    """The settings of an app synced from ``schema`` of the warehouse at ``dsn``."""
    return {
        "warehouse_url": f"{dsn}?sslmode=disable&schema={schema}",
        "extract_key": extract_key,
        **TEST_APP_KEYS,
        **extra,
    }
