"""Every notebook in notebooks/ is committed with its outputs (so a reader on GitHub
sees the plan, the chart and the answer without running anything) and runs top to
bottom again here without a cell error. The one that runs the real local model is
an integration test. To refresh the committed outputs:
``uv run --frozen jupyter-execute --inplace notebooks/*.ipynb``.

The kernel is pinned to this interpreter: a kernelspec written to a temporary directory
that ``JUPYTER_PATH`` puts first, so a ``python3`` kernelspec in the user's own Jupyter
directories (which jupyter_client would otherwise prefer) cannot swap in another Python.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def _needs_local_model(path: Path) -> bool:
    meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    return bool(meta.get("llmcompiler", {}).get("needs_local_model"))


RUNS = [
    pytest.param(p, id=p.stem, marks=[pytest.mark.integration] if _needs_local_model(p) else [])
    for p in NOTEBOOKS
]


@pytest.fixture
def this_python_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # No Jupyter config or runtime files of the user's leak in or are left behind.
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    return "python3"


def test_there_are_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} >= {
        "quickstart.ipynb",
        "subgraph.ipynb",
        "custom_tools.ipynb",
        "local_model.ipynb",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_with_its_outputs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code), path.name
    assert any(cell.outputs for cell in code), path.name
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert errors == [], path.name


@pytest.mark.parametrize("path", RUNS)
def test_notebook_runs_without_errors(path: Path, tmp_path: Path, this_python_kernel: str) -> None:
    if _needs_local_model(path):
        pytest.importorskip("xllamacpp", reason="the local model needs the 'local' extra")
    if path.stem == "quickstart":
        pytest.importorskip("matplotlib", reason="the timeline cell needs the 'bench' extra")
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        book,
        timeout=600,
        kernel_name=this_python_kernel,
        # Run in a scratch directory: nothing a notebook writes lands in the repository.
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        output
        for cell in book.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert errors == []
    assert all(cell.execution_count is not None for cell in book.cells if cell.cell_type == "code")
