"""The Streamlit configuration keeps the app's security promises."""

from __future__ import annotations

import tomllib

from settings import PROJECT_ROOT

CONFIG = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())


def test_tables_have_no_unaudited_csv_download():
    # SECURITY.md #10, #11: every export goes through components/export.py.
    assert CONFIG["client"]["disableDataExport"] is True


def test_errors_do_not_reveal_internals_and_xsrf_protection_stays_on():
    assert CONFIG["client"]["showErrorDetails"] == "none"
    assert CONFIG["server"]["enableXsrfProtection"] is True


def test_no_forced_full_collection_after_every_run():
    # bench/README.md "Load": the forced gc.collect(2) halves the sessions a core holds; memory
    # stays flat without it (bench/results/load-memory-gc-off.json).
    assert CONFIG["runner"]["postScriptGC"] is False
