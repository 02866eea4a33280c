"""Helpers shared by the security unit tests: a Security over a fresh database with a fake clock
and a low bcrypt cost (the production default stays 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from security.clock import FakeClock
from security.service import Security
from settings import Settings, load_settings

TEST_ROUNDS = 4
PASSWORD = "correct horse battery"
CLIENT = "198.51.100.7"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    env = {
        "SPOTLIGHT_DATA_DIR": str(tmp_path / "data"),
        "SPOTLIGHT_KEY_DIR": str(tmp_path / "keys"),
    }
    settings = load_settings(env=env, secrets_path=tmp_path / "no-secrets.toml")
    return settings.replace(**overrides) if overrides else settings


def make_security(tmp_path: Path, **overrides: Any) -> tuple[Security, FakeClock]:
    clock = FakeClock()
    sec = Security(make_settings(tmp_path, **overrides), clock=clock, bcrypt_rounds=TEST_ROUNDS)
    return sec, clock


def add_user(sec: Security, username: str = "dana", roles=("analyst",), **kwargs: Any):
    return sec.users.add(username, PASSWORD, list(roles), **kwargs)


def db_bytes(sec: Security) -> bytes:
    """Every byte of the database, its WAL and shared-memory files."""
    data = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(str(sec.db.path) + suffix)
        if path.exists():
            data += path.read_bytes()
    return data


def hammer_failed_signins(
    tmp_path: str, overrides: dict[str, Any], username: str, attempts: int, client: str
) -> list[str]:
    """Make ``attempts`` wrong-password sign-ins from a fresh Security over the database of
    ``make_security(tmp_path, **overrides)``; the statuses. Module-level and built from plain
    arguments so that a spawned process can run it."""
    sec = Security(make_settings(Path(tmp_path), **overrides), bcrypt_rounds=TEST_ROUNDS)
    return [sec.authenticate(username, "wrong password!", client).status for _ in range(attempts)]
