"""The benchmark script runs end to end on tiny sizes (it measures; it asserts no speed)."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_writes_tidy_csvs(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scan_bench.py"), "--quick", "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=600)
    df = pd.read_csv(tmp_path / "scaling.csv")
    assert set(df.method) == {"mamba-cpu", "mamba-pscan", "mamba-ref", "mamba2-ssd", "attention"}
    ok = df[df.status == "ok"]
    assert (ok.ms > 0).all() and ok.matmul_peak_gflops.gt(0).all() and ok.git_commit.notna().all()
    gen = pd.read_csv(tmp_path / "generation.csv")
    assert set(gen.method) == {"mamba-step", "mamba-cpu", "attention"} and (gen.ms_per_frame > 0).all()
    assert (tmp_path / "scaling.png").stat().st_size > 0
    tg = pd.read_csv(tmp_path / "targets.csv")   # interleaved rounds: every method once per round
    assert set(tg.method) == {"mamba-cpu", "attention", "mamba-pscan", "scan-cpu", "scan-pscan"} and (tg.ms > 0).all()
    assert set(tg.malloc) == {"kept", "default"}   # a second pass with glibc's default malloc
    assert (tg.loc[tg.method == "mamba-cpu", "over_mamba_cpu"] == 1.0).all()
    summary = pd.read_csv(tmp_path / "target_ratios.csv")   # median (min, max) of each ratio, both mallocs
    assert {"attention_over_mamba_cpu", "scan_pscan_over_scan_cpu", "pscan_layer_over_scan_free_layer"} <= set(summary.ratio)
    assert (summary["min"] <= summary["median"]).all() and (summary["median"] <= summary["max"]).all()
    assert len(summary) == 2 * 6   # six ratios at the one quick point, kept and default


def test_step_bench_times_every_backend_on_a_phase_model(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_bench.py"), "--profile", "smoke", "--steps", "1",
                    "--rounds", "1", "--backends", "cpu,pytorch+glibc-malloc", "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=600)
    df = pd.read_csv(tmp_path / "phase_step.csv")
    assert list(df.backend) == ["cpu", "pytorch+glibc-malloc"] and (df.step_ms > 0).all()
    assert df.loc[df.backend == "cpu", "step_ms_over_cpu_kernel"].iloc[0] == 1.0
    # a second model is added to the CSV, the first one's rows are kept
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_bench.py"), "--profile", "smoke", "--steps", "1",
                    "--rounds", "1", "--backends", "cpu", "--phase", "phase1", "--label", "hybrid",
                    "--out", str(tmp_path)], check=True, capture_output=True, timeout=600)
    df = pd.read_csv(tmp_path / "phase_step.csv")
    assert list(zip(df.phase, df.backend)) == [("phase3", "cpu"), ("phase3", "pytorch+glibc-malloc"), ("phase1", "cpu")]


def test_layer_profile_splits_matmuls_from_the_rest():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "profile_layer.py"), "--length", "32",
                          "--d-model", "32"], check=True, capture_output=True, text=True, timeout=600).stdout
    line = out.strip().splitlines()[-1]
    assert line.startswith("L=32 d=32") and "matmuls" in line and "everything else" in line


def test_train_bench_compares_two_trees_and_times_generation(tmp_path):
    """Smoke shapes, one round, this tree against HEAD (a git worktree): the CSVs' schema and pairing."""
    env = {**__import__("os").environ, "SSMTTS_NO_CPU_KERNEL": "1"}   # no second kernel build for the worktree
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_bench.py"), "--profile", "smoke", "--rounds", "1",
                    "--gen-rounds", "1", "--steps", "1", "--baseline", "HEAD", "--backbones", "mamba,transformer", "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=900, env=env)
    steps = pd.read_csv(tmp_path / "train_step.csv")
    assert set(steps.tree) == {"baseline", "new"} and set(steps["shape"]) == {"phase1", "phase3"}
    assert len(steps) == 2 * 2 * 2 and (steps.step_ms > 0).all() and steps.speedup_median.gt(0).all()
    assert {"fwd_ms", "bwd_ms", "opt_ms", "commit", "config", "params", "round"} <= set(steps.columns)
    run = pd.read_csv(tmp_path / "train_run.csv")
    assert list(run.tree) == ["baseline", "new"] and (run.run_wall_s >= run.train_wall_s).all()
    gen = pd.read_csv(tmp_path / "generation_paper.csv")
    assert set(gen.backbone) == {"mamba", "transformer"} and (gen.ms_per_frame > 0).all() and (gen.rtf > 0).all()
    assert gen.groupby(["backbone", "weights"]).positions.nunique().eq(8).all() and set(gen.weights) == {"float32", "float16"}
    assert gen.greedy_tokens_equal_to_float32.between(0, 1).all()


def test_train_bench_gives_an_older_tree_only_fields_it_knows_and_refuses_a_changed_one():
    """A baseline commit predates newer config fields: it may ignore one left at its default (the same model is
    trained), never one that was changed (the two trees would train different models)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import train_bench
    from dataclasses import dataclass
    from ssmtts.models import ModelConfig

    @dataclass
    class OldConfig:   # an older tree's ModelConfig: no mamba_bidirectional
        d_model: int = 128
    old, dropped = train_bench.known_fields(OldConfig, {"d_model": 96, "mamba_bidirectional": False})
    assert old == OldConfig(96) and dropped == {"mamba_bidirectional": False}
    train_bench.check_dropped(Path("old"), {"model": dropped})
    assert ModelConfig().mamba_bidirectional is False
    with pytest.raises(RuntimeError, match="mamba_bidirectional"):
        train_bench.check_dropped(Path("old"), {"model": {"mamba_bidirectional": True}})


def test_more_text_counts_the_unseen_words_a_training_text_has(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from more_text import unseen_word_coverage
    from ssmtts.corpus.build import DEFAULT_TEXT, UNSEEN_TEXT
    itself = unseen_word_coverage([UNSEEN_TEXT])          # the unseen text as training text: every word is in it
    assert itself["unseen_tokens_in_train"] == itself["unseen_types_in_train"] == 1.0
    (tmp_path / "none.txt").write_text("Qqq xxx.\n", encoding="utf-8")
    assert unseen_word_coverage([tmp_path / "none.txt"])["unseen_tokens_in_train"] == 0.0
    shipped = unseen_word_coverage([DEFAULT_TEXT])
    more = unseen_word_coverage([DEFAULT_TEXT, DEFAULT_TEXT.parent / "more_sentences_pl.txt"])
    assert 0 < shipped["unseen_tokens_in_train"] < more["unseen_tokens_in_train"] < 1
    assert shipped["train_word_types"] < more["train_word_types"]
