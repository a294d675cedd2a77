"""docs/tutorial.ipynb: README's command runs it top to bottom in a real Jupyter
kernel, and the committed copy shows the outputs of such a run, each figure drawn."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gpunet.data import find_dataset

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.ipynb"
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


def readme_command() -> list[str]:
    """The command README's Tutorial section gives to run the notebook."""
    section = (ROOT / "README.md").read_text().split("## Tutorial", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    line = next(line for line in block.splitlines() if line.startswith("jupyter nbconvert"))
    return shlex.split(line.split("#")[0])


@pytest.mark.slow
def test_readme_s_command_runs_the_tutorial_top_to_bottom_in_a_jupyter_kernel(tmp_path):
    for module in ("nbconvert", "ipykernel"):
        pytest.importorskip(module, reason=f"{module} is not installed ({DOCS_EXTRA})")
    if not (find_dataset("mnist") or find_dataset("fashion-mnist")):
        pytest.skip("neither MNIST nor Fashion-MNIST is available offline "
                    "(apt-get install dataset-fashion-mnist, or set $GPUNET_DATA)")
    command = readme_command()
    command[command.index("--output-dir") + 1] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "jupyter", *command[1:],
                           f"--ExecutePreprocessor.timeout={CELL_TIMEOUT_S}"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]  # names the failing cell
    notebook = json.loads((tmp_path / TUTORIAL.name).read_text(encoding="utf-8"))
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
