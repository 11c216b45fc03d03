"""Every notebook is a jupytext pair: notebooks/<name>.py (percent format, the source) and <name>.ipynb,
in sync (`make notebooks` writes the .ipynb); writing them again changes no byte; executed notebooks are
byte-stable."""
from pathlib import Path

from ssmtts.notebook import NOTEBOOKS, ipynb_text, sync

ROOT = Path(__file__).parents[1]


def test_every_notebook_is_a_pair_in_sync_with_its_source(tmp_path):
    ipynbs = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert ipynbs and ipynbs == sorted(p.stem for p in NOTEBOOKS.glob("*.py"))
    assert sync(check=True) == [], "out of sync with their .py: run `make notebooks`"
    for py in NOTEBOOKS.glob("*.py"):                      # stable: the same text, ids and all, every time
        assert ipynb_text(py) == ipynb_text(py)
    # an edit to the source shows up as out of sync until the notebook is rewritten
    (tmp_path / "a.py").write_text("# %% [markdown]\n# # A\n\n# %% tags=[\"parameters\"]\nx = 1\n\n# %%\nprint(x)\n")
    assert sync(tmp_path, check=True) == ["a.ipynb"] and sync(tmp_path) == ["a.ipynb"] and sync(tmp_path, check=True) == []
    import nbformat
    nb = nbformat.read(tmp_path / "a.ipynb", as_version=4)
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code"] and nb.cells[1].metadata.tags == ["parameters"]


def test_each_notebook_says_how_to_run_and_change_it():
    for py in NOTEBOOKS.glob("*.py"):
        first = py.read_text().split("# %%")[1]
        assert "**Run** `make " in first and f"notebooks/{py.name}" in first, py.name


def test_executed_notebooks_lose_what_changes_on_every_run(tmp_path):
    """Timestamps, durations, papermill's random parameter-cell id and a Styler's memory address are dropped,
    so re-executing a notebook from the same CSVs rewrites the same bytes."""
    import json

    from ssmtts.files import strip_run_metadata
    nb = {"metadata": {"papermill": {"start_time": "t0", "end_time": "t1", "duration": 3.0, "parameters": {"a": 1}}},
          "cells": [{"id": "8a4abd84", "metadata": {"tags": ["injected-parameters"], "papermill": {"duration": 1.0},
                                                     "execution": {"iopub.status.idle": "t"}}, "outputs": []},
                    {"id": "c01", "metadata": {}, "outputs": [
                        {"data": {"text/html": ["<table>"], "text/plain": ["<pandas.io.formats.style.Styler at 0x7f83>"]}},
                        {"output_type": "stream", "name": "stderr",
                         "text": ["/home/me/clone/.venv/lib/tqdm/auto.py:21: TqdmWarning\n", "/other/x.py\n"]}]}]}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    strip_run_metadata(path, root=Path("/home/me/clone"))
    out = json.loads(path.read_text())
    assert out["metadata"]["papermill"] == {"parameters": {"a": 1}}
    assert out["cells"][0]["id"] == "injected-parameters" and "execution" not in out["cells"][0]["metadata"]
    assert out["cells"][0]["metadata"]["papermill"] == {}
    assert out["cells"][1]["outputs"][0]["data"]["text/plain"] == ["<pandas.io.formats.style.Styler>"]
    assert out["cells"][1]["outputs"][1]["text"] == [".venv/lib/tqdm/auto.py:21: TqdmWarning\n", "/other/x.py\n"]
    first = path.read_bytes()
    strip_run_metadata(path, root=Path("/home/me/clone"))
    assert path.read_bytes() == first
