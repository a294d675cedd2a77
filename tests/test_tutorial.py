"""docs/tutorial.ipynb: it runs top to bottom in a real Jupyter kernel, and the
committed copy shows the outputs of such a run, each figure drawn."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpunet.data import find_dataset

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"
DOCS_EXTRA = "pip install -e '.[docs]'"
CELL_TIMEOUT_S = 300
MAX_BYTES = 1_500_000


def code_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def figures_not_drawn(cells: list[dict]) -> list[str]:
    """The source of each cell that shows a figure but has no image among its outputs."""
    sources = ["".join(cell["source"]) for cell in cells]  # a string, or a list of lines
    return [source for source, cell in zip(sources, cells) if "plt.show()" in source
            and not any("image/png" in output.get("data", {}) for output in cell["outputs"])]


@pytest.mark.slow
def test_the_tutorial_runs_top_to_bottom_in_a_jupyter_kernel(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason=f"nbformat is not installed ({DOCS_EXTRA})")
    nbclient = pytest.importorskip("nbclient", reason=f"nbclient is not installed ({DOCS_EXTRA})")
    pytest.importorskip("ipykernel", reason=f"ipykernel is not installed ({DOCS_EXTRA})")
    if not (find_dataset("mnist") or find_dataset("fashion-mnist")):
        pytest.skip("neither MNIST nor Fashion-MNIST is available offline "
                    "(apt-get install dataset-fashion-mnist, or set $GPUNET_DATA)")
    notebook = nbformat.read(TUTORIAL, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    assert figures_not_drawn(code_cells(notebook)) == []


def test_the_committed_tutorial_shows_one_clean_run():
    notebook = json.loads(TUTORIAL.read_text(encoding="utf-8"))
    cells = code_cells(notebook)
    assert [cell["execution_count"] for cell in cells] == list(range(1, len(cells) + 1))
    outputs = [output for cell in cells for output in cell["outputs"]]
    assert not [output for output in outputs if output["output_type"] == "error"]
    assert figures_not_drawn(cells) == []
    streams = "".join("".join(output["text"]) for output in outputs
                      if output["output_type"] == "stream")
    assert "\r" not in streams, "progress bars should be saved in their final state only"
    assert TUTORIAL.stat().st_size < MAX_BYTES
