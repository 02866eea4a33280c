"""The layers import one way: checked by importing each package in a fresh interpreter.

Ruff's banned-api rule (TID251) catches a forbidden import written in a file; this catches one
that arrives indirectly, through another module, which ruff does not follow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _modules_loaded_by(package: str) -> set[str]:
    """Import every module of ``package`` in a new interpreter; the names then in sys.modules."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _of(modules: set[str], prefix: str) -> set[str]:
    return {m for m in modules if m == prefix or m.startswith(prefix + ".")}


@pytest.mark.parametrize("package", ["data", "models", "security"])
def test_lower_layers_never_load_streamlit(package):
    assert _of(_modules_loaded_by(package), "streamlit") == set()


def test_queries_never_load_the_sync():
    loaded = _modules_loaded_by("data.queries")
    assert _of(loaded, "data.queries")  # the walk imported the package's modules
    assert _of(loaded, "data.sync") == set()


def test_extract_loads_neither_the_sync_nor_the_queries():
    loaded = _modules_loaded_by("data.extract")
    assert "data.extract.store" in loaded
    assert _of(loaded, "data.sync") == set()
    assert _of(loaded, "data.queries") == set()


def test_every_layer_imports():
    for package in ("components", "data", "models", "security"):
        assert package in _modules_loaded_by(package)


def test_every_page_compiles():
    # A page is a script Streamlit runs per session: importing one outside a session runs it.
    pages = sorted((ROOT / "app_pages").glob("*.py"))
    assert len(pages) > 1
    for page in pages:
        compile(page.read_text(), str(page), "exec")
