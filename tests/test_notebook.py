"""docs/walkthrough.ipynb runs from top to bottom (nbclient, on 300 synthetic samples).
Skipped without nbclient, nbformat, ipykernel or matplotlib (the test extra has them)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "walkthrough.ipynb"

for _module in ("nbclient", "nbformat", "ipykernel", "matplotlib"):
    pytest.importorskip(_module, reason=f"{_module} is not installed (pip install '.[test]')")


def test_walkthrough_notebook_runs(monkeypatch):
    import nbclient
    import nbformat

    monkeypatch.setenv("FASTBP_WALKTHROUGH_N", "300")
    monkeypatch.setenv("FASTBP_WALKTHROUGH_SYNTHETIC", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.get("outputs", []))
    assert "300 samples of synthetic MNIST-shaped data" in text
    for tier in ("1. Python loop", "2. NumPy, columns", "3. NumPy, rows",
                 "4. compiled loops (Cython)", "5. fused kernels, 1 thread",
                 "6. fused kernels, 2 threads"):
        assert tier in text, tier
    html = [out for cell in nb.cells for out in cell.get("outputs", [])
            if "text/html" in out.get("data", {})]
    assert len(html) == 4  # the side-by-side code tables
    images = [out for cell in nb.cells for out in cell.get("outputs", [])
              if "image/png" in out.get("data", {})]
    assert len(images) == 1  # the plot
