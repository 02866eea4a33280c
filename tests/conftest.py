"""Shared test set-up: every test run gets its own data and key folders, never the real ones."""

from __future__ import annotations

import os
import tempfile
from datetime import date
from pathlib import Path

import pytest

_RUN_DIR = Path(tempfile.mkdtemp(prefix="spotlight-tests-"))
# Set before any project module reads settings, so that nothing a test does can touch var/ or the
# operator's key folder.
os.environ["SPOTLIGHT_DATA_DIR"] = str(_RUN_DIR / "data")
os.environ["SPOTLIGHT_KEY_DIR"] = str(_RUN_DIR / "keys")
os.environ.pop("SPOTLIGHT_WAREHOUSE_URL", None)

TEST_OUTPUT = Path(__file__).resolve().parent.parent / "test-output"

# The small demo platform shared by data, metric and page tests (see the demo_store fixture).
DEMO_TEST_CONFIG = {"viewers": 3_000, "views": 60_000, "seed": 11, "end": date(2026, 10, 31)}
DEMO_TEST_EXTRACT_KEY = "test-demo-extract-key-0123456789abcdef"
DEMO_TEST_PSEUDONYM_KEY = "test-demo-pseudonym-key-0123456789abcdef"


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """An ``ExtractStore`` over a small demo extract, built once per test session (worker).

    3,000 viewers, 60,000 view sessions, seed 11, data from 2024-11-01 to 2026-10-31 (fixed, so
    results do not depend on the day the tests run), every base and derived table, encrypted
    with ``DEMO_TEST_EXTRACT_KEY``. Treat it as read-only: it is shared by every test. Builds in
    about a second or two.
    """
    from data.demo import DemoConfig, build_demo_extract
    from data.extract.store import ExtractStore

    store = ExtractStore(
        tmp_path_factory.mktemp("demo-extract") / "extract.duckdb", DEMO_TEST_EXTRACT_KEY
    )
    build_demo_extract(store, DemoConfig(**DEMO_TEST_CONFIG), DEMO_TEST_PSEUDONYM_KEY)
    return store
