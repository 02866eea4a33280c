"""Shared test set-up: every test run gets its own data and key folders, never the real ones."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_RUN_DIR = Path(tempfile.mkdtemp(prefix="spotlight-tests-"))
# Set before any project module reads settings, so that nothing a test does can touch var/ or the
# operator's key folder.
os.environ["SPOTLIGHT_DATA_DIR"] = str(_RUN_DIR / "data")
os.environ["SPOTLIGHT_KEY_DIR"] = str(_RUN_DIR / "keys")
os.environ.pop("SPOTLIGHT_WAREHOUSE_URL", None)

TEST_OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
