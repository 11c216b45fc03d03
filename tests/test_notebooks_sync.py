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
