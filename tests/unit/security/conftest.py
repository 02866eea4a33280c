"""Every security test that builds an app database runs on both backends.

A test that takes ``tmp_path`` (all that build a ``Security`` or an ``AppDB`` do) runs twice:
``[sqlite]`` with the database file in ``tmp_path``, and ``[postgresql]`` in a schema of its own
in the test server (``SPOTLIGHT_TEST_PG_DSN``, default the local trust-auth server), dropped
afterwards. The PostgreSQL variants carry the ``integration`` marker, like every test that needs
the server: ``-m "not integration"`` leaves them out. The backend reaches the code under test
through ``SPOTLIGHT_APP_DB``, so the CLI and processes started by a test use it too. A test that
only makes sense on one backend says so with
``@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

PG_DSN = os.environ.get("SPOTLIGHT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", pytest.param("postgresql", marks=pytest.mark.integration))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames or "tmp_path" not in metafunc.fixturenames:
        return
    chosen = any(
        mark.args and mark.args[0] == "backend"
        for mark in metafunc.definition.iter_markers("parametrize")
    )
    if not chosen:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


def pg_url(schema: str) -> str:
    """The app_db URL of ``schema`` in the test server."""
    return f"{PG_DSN}{'&' if '?' in PG_DSN else '?'}schema={schema}"


def drop_schema(schema: str) -> None:
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(autouse=True)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app database backend of this test: "sqlite" (also for tests not parametrised) or
    "postgresql"."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        monkeypatch.delenv("SPOTLIGHT_APP_DB", raising=False)
        yield kind
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    schema = f"sec_{worker}_{uuid.uuid4().hex[:10]}"
    try:
        drop_schema(schema)  # also checks that the server answers
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"No PostgreSQL at {PG_DSN} ({exc}). Run scripts/ensure-postgres.sh, set "
            'SPOTLIGHT_TEST_PG_DSN, or leave these tests out with -m "not integration".'
        )
    # The app creates the schema itself on first open (AppDB.migrate).
    monkeypatch.setenv("SPOTLIGHT_APP_DB", pg_url(schema))
    yield kind
    drop_schema(schema)
