"""A real OpenID Connect provider for tests: ``oidc-provider-mock`` run as a subprocess on
localhost (users, clients and keys in memory, so each start is a clean slate)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own http URL
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


@contextmanager
def running_provider(*args: str) -> Iterator[str]:
    """Base URL of a running mock; ``args`` are its command-line flags (e.g.
    ``--require-registration``: only clients registered at ``/oauth2/clients`` are accepted)."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="spotlight-oidc-")) / "mock.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oidc_provider_mock", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://localhost:{port}"
    try:
        wait_http(f"{url}/.well-known/openid-configuration", proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
