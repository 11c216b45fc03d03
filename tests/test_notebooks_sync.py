"""The committed notebooks are exactly what notebooks/make_notebooks.py writes (edit the generator, then
`make notebooks`); regenerating changes no byte."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_committed_notebooks_match_their_generator(tmp_path):
    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "notebooks" / "make_notebooks.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.main(tmp_path)
    made = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    assert made == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    stale = [n for n in made if (tmp_path / n).read_bytes() != (ROOT / "notebooks" / n).read_bytes()]
    assert not stale, f"out of date with make_notebooks.py (run `make notebooks`): {stale}"
    (tmp_path / "again").mkdir()
    gen.main(tmp_path / "again")
    assert all((tmp_path / "again" / n).read_bytes() == (tmp_path / n).read_bytes() for n in made)


def test_executed_notebooks_lose_what_changes_on_every_run(tmp_path):
    """Timestamps, durations, papermill's random parameter-cell id and a Styler's memory address are dropped,
    so re-executing a notebook from the same CSVs rewrites the same bytes."""
    import json

    from ssmtts.files import strip_run_metadata
    nb = {"metadata": {"papermill": {"start_time": "t0", "end_time": "t1", "duration": 3.0, "parameters": {"a": 1}}},
          "cells": [{"id": "8a4abd84", "metadata": {"tags": ["injected-parameters"], "papermill": {"duration": 1.0},
                                                     "execution": {"iopub.status.idle": "t"}}, "outputs": []},
                    {"id": "c01", "metadata": {}, "outputs": [
                        {"data": {"text/html": ["<table>"], "text/plain": ["<pandas.io.formats.style.Styler at 0x7f83>"]}}]}]}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    strip_run_metadata(path)
    out = json.loads(path.read_text())
    assert out["metadata"]["papermill"] == {"parameters": {"a": 1}}
    assert out["cells"][0]["id"] == "injected-parameters" and "execution" not in out["cells"][0]["metadata"]
    assert out["cells"][0]["metadata"]["papermill"] == {}
    assert out["cells"][1]["outputs"][0]["data"]["text/plain"] == ["<pandas.io.formats.style.Styler>"]
    first = path.read_bytes()
    strip_run_metadata(path)
    assert path.read_bytes() == first
