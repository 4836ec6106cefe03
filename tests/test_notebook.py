"""The tutorial notebook, docs/tutorial.ipynb (issue 15), executed as a user would run it.

The notebook is committed with its outputs. This test executes it again with nbclient in a kernel
on this interpreter (a kernelspec written for the test, so ``python`` on PATH does not matter) and
checks: no cell fails; no TensorFlow or absl log line in any stream output; every object displayed
(other than pictures and progress widgets) has an HTML form; the per-tensor plot is a picture;
progress bars appear as widgets.

Regenerate the committed notebook after changing the library: ``python tests/test_notebook.py``
(executes it and writes it back with its outputs).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"
KERNEL = "tflite-inverter-tutorial"
# TensorFlow's C++ log prefix (I0000 00:00:..., W1202 ...), absl/tensorflow Python logger lines, and
# the messages the converter and SavedModel writer print when not silenced.
TF_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|^(INFO|WARNING|ERROR):(tensorflow|absl)|cpu_feature_guard|"
                    r"oneDNN custom operations|Assets written to|tensorflow/(core|compiler|lite)/", re.MULTILINE)
PICTURES = ("image/png", "image/svg+xml", "image/jpeg")
WIDGET = "application/vnd.jupyter.widget-view+json"


def _kernelspec(folder: Path) -> Path:
    """A kernelspec running ipykernel on this interpreter, importing this worktree's package."""
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    environment = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "tflite_inverter tutorial", "language": "python", "env": environment}))
    return folder


def execute(notebook_path: Path, work: Path, timeout: int = 300):
    """The notebook executed in ``notebook_path``'s folder; returns the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    before = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(_kernelspec(work)), before]))
    try:
        notebook = nbformat.read(notebook_path, as_version=4)
        client = NotebookClient(notebook, timeout=timeout, kernel_name=KERNEL,
                                resources={"metadata": {"path": str(notebook_path.parent)}})
        client.execute()
    finally:
        if before is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = before
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def problems(notebook) -> dict[str, list]:
    """What the checks found: errors, TF log lines, displays without HTML; and what was shown."""
    found = {"errors": [], "tf_logs": [], "without_html": [], "pictures": [], "widgets": [], "html": []}
    for number, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                found["errors"].append((number, output["ename"], output["evalue"]))
            elif output["output_type"] == "stream":
                found["tf_logs"].extend((number, m.group(0)) for m in TF_LOG.finditer(output["text"]))
            else:
                data = output.get("data", {})
                if any(kind in data for kind in PICTURES):
                    found["pictures"].append(number)
                elif WIDGET in data:
                    found["widgets"].append(number)
                elif "text/html" in data:
                    found["html"].append(number)
                else:
                    found["without_html"].append((number, data.get("text/plain", "")[:200]))
    return found


@pytest.mark.slow
def test_the_tutorial_notebook_runs_and_shows_html(tmp_path):
    import nbformat

    committed = nbformat.read(NOTEBOOK, as_version=4)  # committed executed: its readers see the outputs
    assert all(cell.outputs for cell in committed.cells if cell.cell_type == "code"), "run python tests/test_notebook.py"
    assert problems(committed)["errors"] == []
    notebook = execute(NOTEBOOK, tmp_path)
    found = problems(notebook)
    assert found["errors"] == []
    assert found["tf_logs"] == []
    assert found["without_html"] == []
    tagged = {tag: [i for i, cell in enumerate(notebook.cells) if tag in cell.metadata.get("tags", [])]
              for tag in ("html", "plot")}
    assert len(tagged["html"]) >= 8 and len(tagged["plot"]) >= 2  # the cells that show objects and plots
    assert set(tagged["html"]) <= set(found["html"]), sorted(set(tagged["html"]) - set(found["html"]))
    assert set(tagged["plot"]) <= set(found["pictures"]), sorted(set(tagged["plot"]) - set(found["pictures"]))
    assert found["widgets"], "no progress widget was shown"


if __name__ == "__main__":
    import tempfile

    import nbformat

    with tempfile.TemporaryDirectory() as work:
        executed = execute(NOTEBOOK, Path(work))
    report = problems(executed)
    nbformat.write(executed, NOTEBOOK)
    print(json.dumps({key: value for key, value in report.items() if key != "html"}, indent=1))
