"""Every notebook in notebooks/ runs from top to bottom without an error (nbclient, a real
ipykernel), on the small demo extract the other tests share, so a notebook never rots."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DEMO_TEST_EXTRACT_KEY

ROOT = Path(__file__).resolve().parents[3]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_the_notebook_runs_without_an_error(path, demo_store, monkeypatch, tmp_path):
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    # Read by the notebook (its first cells); the kernel inherits this process's environment.
    monkeypatch.setenv("NOTEBOOK_EXTRACT", str(demo_store.path))
    monkeypatch.setenv("NOTEBOOK_EXTRACT_KEY", DEMO_TEST_EXTRACT_KEY)
    # `import streamlit` (in any earlier test of this worker) sets MPLBACKEND=Agg for matplotlib,
    # which the kernel would inherit; a notebook's kernel chooses its own inline backend.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(path, as_version=4)
    # Unix sockets, not TCP: nothing listens on the network, and ipykernel does not warn.
    kernel = KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel"))
    client = NotebookClient(
        notebook,
        km=kernel,
        timeout=240,  # per cell; the whole notebook takes about 20 s here
        kernel_name="python3",
        allow_errors=False,  # any cell error fails the test with the cell and its traceback
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()
    finally:
        kernel.shutdown_kernel(now=True)  # nbclient shuts down only the kernels it started
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "ok" in streams
    # Prophet and cmdstan stay quiet in the notebook too (their INFO lines go to stderr).
    assert "cmdstanpy - INFO" not in streams
    assert sum(o.output_type == "display_data" for o in outputs) >= 3  # the figures
