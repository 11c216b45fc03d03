"""What the notebooks share: `setup()` (their first code cell after the parameters) and the jupytext pairing.

Each notebook's source of truth is `notebooks/<name>.py` in jupytext's percent format (`# %%` cells,
`# %% [markdown]`, the papermill `parameters` tag); `notebooks/<name>.ipynb` is made from it with
cell ids fixed by position and content, so regenerating an unchanged notebook changes no byte.
Edit either: in JupyterLab, jupytext (installed in the venv, paired by `notebooks/jupytext.toml`)
saves both files; outside Lab, edit the `.py` and run `make notebooks`. A test checks that every
pair is in sync.

    python -m ssmtts.notebook            # write every notebooks/*.ipynb from its .py
    python -m ssmtts.notebook --check    # exit 1 naming the notebooks that are out of sync
"""
from __future__ import annotations

import hashlib
import sys
import warnings
from pathlib import Path

from .files import atomic_write_bytes

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def setup(profile: str = "cpu", codec: str = "auto", threads: int = 0, seeds=(0, 1, 2)):
    """A notebook's set-up: the runtime config (threads, codec), the corpus, one line saying what runs.

    Returns (corpus, seeds); the smoke profile keeps one seed. torch's weight_norm notice and tqdm's
    missing-widgets notice are hidden; every other warning shows (a kernel fallback among them).
    """
    from IPython.display import display

    from .corpus.build import build_corpus
    from .runtime import configure, runtime_row
    warnings.filterwarnings("ignore", category=FutureWarning, message=".*weight_norm.*")
    warnings.filterwarnings("ignore", message="IProgress not found")
    configure(threads=threads, codec=codec)          # recorded in every result row (runtime_row)
    corpus = build_corpus(codec=codec)
    print("codec:", corpus.codec_id, "| corpus:", corpus.corpus_hash, "| runtime:", runtime_row())
    display(corpus.stats())
    return corpus, list(seeds)[:1] if profile == "smoke" else list(seeds)


def run_tables(phase: str, corpus, profile: str, seeds, out_dir, protocols=None, **options):
    """`run_phase` (finished runs skipped, unfinished ones resumed) and the profile's rows of its tables:
    (res, runs, curves, milestones). `options` go to the phase (e.g. embed_widths for phase5)."""
    from .phases import run_phase
    res = run_phase(phase, corpus, profile=profile, seeds=seeds, out_dir=out_dir, protocols=protocols,
                    progress=profile != "smoke", **options)
    mine = {k: res[k][res[k].profile == profile] for k in ("runs", "curves", "milestones")}
    print(len(mine["runs"]), "runs;", mine["runs"].status.value_counts().to_dict())
    return res, mine["runs"], mine["curves"], mine["milestones"]


def speech_rerun(res: dict, phase: str, profile: str, out_dir, claims_csv="../data/claims.csv"):
    """A phase notebook's re-run section (protocol `speech`): one row per seed beside the baselines, the
    per-configuration means with 95 % CIs (written to <out_dir>/<phase>/speech/summary_<profile>.md), the judge's
    error while training (error_curves_<profile>.png) and the verdicts on the pre-registered outcomes.
    Returns the verdict table (empty while the phase has no speech runs)."""
    import pandas as pd
    from IPython.display import Markdown, display

    from . import claims, report
    from . import speech_figures as figs
    sp = res.get("speech_runs", pd.DataFrame())
    sp = sp[sp.profile == profile] if len(sp) else sp
    if not len(sp):
        display(Markdown("No speech runs for this phase yet."))
        return pd.DataFrame()
    folder = Path(out_dir, phase, "speech")
    display(Markdown("**One row per seed** (predicted durations), beside the baselines:"))
    display(figs.speech_table(sp.assign(model=sp.label + " s" + sp.seed.astype(str)), res["baselines"], "predicted"))
    pred = sp[sp.durations == "predicted"]
    cols = [c for c in ("per", "cer", "mcd_db", "dur_mae_frames", "step_to_per_30", "final_val_acc_cb0",
                        "params_total") if c in pred]
    table = report.summarize(pred.assign(status="finished"), ["label", "config"], cols)
    table.to_markdown(folder / f"summary_{profile}.md", index=False)
    display(Markdown("**Per configuration**: mean ± 95 % CI over seeds (predicted durations):"), table)
    display(Markdown("**Judge error while training** (the listening subset; mean over seeds):"))
    fig = figs.error_curves(res["listening"][res["listening"].profile == profile], res["baselines"], label="label")
    fig.savefig(folder / f"error_curves_{profile}.png", dpi=110, bbox_inches="tight")
    all_claims = pd.read_csv(claims_csv)
    verdicts = claims.verdict_table(all_claims[all_claims.phase == phase], out_dir)
    display(Markdown(f"**Verdicts on the pre-registered outcomes** (paired by seed, Holm within each family; cost "
                     f"claims need the timing pass, `make timing PHASE={phase}`, run alone):"), verdicts)
    return verdicts


def first_design(runs, curves, milestones, phase: str, profile: str, out_dir):
    """A phase notebook's first-design section: the comparison table (mean ± 95 % CI over seeds, written to
    comparison_<profile>.md), learning curves (training subset solid, validation dashed; learning_curves_<profile>.png)
    and the first step reaching each token-accuracy threshold (median over seeds)."""
    from IPython.display import Markdown, display

    from . import report
    table = report.comparison_table(runs)
    table.to_markdown(Path(out_dir, phase, f"comparison_{profile}.md"))
    display(Markdown("**Comparison** (mean ± 95 % CI over seeds):"), table)
    fig = report.learning_curves(curves)
    fig.savefig(Path(out_dir, phase, f"learning_curves_{profile}.png"), dpi=110, bbox_inches="tight")
    display(Markdown("**Milestones**: first step reaching each token-accuracy threshold (median over seeds):"),
            report.milestone_table(milestones))


def ipynb_text(py: Path) -> str:
    """The .ipynb that belongs to a percent-format .py: kernelspec set, cell ids stable, no jupytext metadata."""
    import jupytext
    import nbformat
    nb = jupytext.read(py)
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i:02d}-" + hashlib.sha1(cell.source.encode("utf-8")).hexdigest()[:8]
        cell.metadata.pop("lines_to_next_cell", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nbformat.writes(nb) + "\n"


def sync(folder: Path = NOTEBOOKS, check: bool = False) -> list[str]:
    """Write (or, with check, only compare) every <name>.ipynb from its <name>.py; the names out of sync."""
    stale = []
    for py in sorted(Path(folder).glob("*.py")):
        target = py.with_suffix(".ipynb")
        text = ipynb_text(py)
        if not target.is_file() or target.read_text() != text:
            stale.append(target.name)
            if not check:
                atomic_write_bytes(target, text.encode("utf-8"))
    return stale


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stale = sync(check="--check" in argv)
    if "--check" in argv and stale:
        print("out of sync with their .py (run `make notebooks`):", ", ".join(stale))
        return 1
    print(("wrote " if stale else "up to date: ") + (", ".join(stale) if stale else str(NOTEBOOKS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
