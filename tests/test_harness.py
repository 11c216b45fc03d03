"""Training harness: milestones, resume equality, divergence, determinism, CSV schema."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import pytest

from ssmtts.phases import phase1, run_phase
from ssmtts.train.loop import TrainConfig, run_training
from ssmtts.train.metrics import ACC_THRESHOLDS, milestones
from ssmtts.train.results import atomic_write_csv, mean_ci, upsert_rows

TIMING = ("wall_s", "eval_s")


def smoke():
    models, trains = phase1("smoke")
    return models[1][1], trains["heldout"]  # the hybrid: exercises Mamba + conv + the C++ scan


def test_milestones_on_a_synthetic_curve():
    curve = pd.DataFrame({"step": [10, 20, 30, 40, 50], "wall_s": [1.0, 2.0, 3.0, 4.0, 5.0],
                          "acc": [4.0, 12.0, 12.0, 55.0, 91.0]})
    ms = {r["threshold"]: r for r in milestones(curve, "acc", ACC_THRESHOLDS)}
    assert ms[5]["step"] == 20 and ms[10]["step"] == 20 and ms[15]["step"] == 40
    assert ms[50]["step"] == 40 and ms[90]["step"] == 50 and ms[90]["wall_s"] == 5.0
    assert np.isnan(ms[95]["step"]) and np.isnan(ms[99]["wall_s"])  # never reached: NaN, still a row
    assert list(ms) == list(ACC_THRESHOLDS)


def test_identical_seeds_give_identical_rows_and_other_seeds_do_not(corpus):
    mc, tc = smoke()
    a = run_training(mc, tc, corpus, seed=0, run_id="a", progress=False)["curve"].drop(columns=list(TIMING))
    b = run_training(mc, tc, corpus, seed=0, run_id="b", progress=False)["curve"].drop(columns=list(TIMING))
    c = run_training(mc, tc, corpus, seed=1, run_id="c", progress=False)["curve"].drop(columns=list(TIMING))
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_killed_run_resumes_from_checkpoint_with_the_same_rows(corpus, tmp_path):
    mc, tc = smoke()
    full = run_training(mc, tc, corpus, seed=0, run_id="r", ckpt_dir=tmp_path / "full", progress=False)
    part = run_training(mc, tc, corpus, seed=0, run_id="r", ckpt_dir=tmp_path / "killed", stop_after=3, progress=False)
    assert part["summary"] is None and len(part["curve"]) == 1          # stopped after step 3
    resumed = run_training(mc, tc, corpus, seed=0, run_id="r", ckpt_dir=tmp_path / "killed", progress=False)
    pd.testing.assert_frame_equal(resumed["curve"].drop(columns=list(TIMING)), full["curve"].drop(columns=list(TIMING)))
    assert resumed["summary"]["status"] == "finished" and resumed["summary"]["steps_done"] == tc.steps


def test_truncated_checkpoint_restarts_the_run_with_a_message(corpus, tmp_path, capsys):
    """Checkpoints load with weights_only=True; one cut short by a kill mid-write (or from an older
    version) is reported and the run starts over, ending with the rows of an uninterrupted run."""
    mc, tc = smoke()
    full = run_training(mc, tc, corpus, seed=0, run_id="r", progress=False)
    run_training(mc, tc, corpus, seed=0, run_id="r", ckpt_dir=tmp_path, stop_after=3, progress=False)
    ckpt = tmp_path / "r.pt"
    assert torch.load(ckpt, weights_only=True)["state"]["step"] == 3
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    again = run_training(mc, tc, corpus, seed=0, run_id="r", ckpt_dir=tmp_path, progress=False)
    assert "unreadable" in capsys.readouterr().out
    pd.testing.assert_frame_equal(again["curve"].drop(columns=list(TIMING)), full["curve"].drop(columns=list(TIMING)))


def test_diverging_run_is_recorded_and_the_phase_goes_on(corpus, tmp_path, monkeypatch):
    import ssmtts.phases as phases
    models, trains = phases.phase1("smoke")
    bad = {k: replace(v, lr=1e30) for k, v in trains.items()}      # explodes within a step or two
    bad["heldout"] = trains["heldout"]                                # the other protocol trains normally
    monkeypatch.setitem(phases.PHASES, "phase1", lambda profile: (models, bad))
    res = run_phase("phase1", corpus, profile="smoke", seeds=(0,), out_dir=tmp_path, progress=False)
    runs = res["runs"].set_index("run_id")
    assert set(runs.loc[runs.protocol == "reported", "status"]) == {"diverged"}
    assert set(runs.loc[runs.protocol == "heldout", "status"]) == {"finished"}
    assert runs.loc[runs.protocol == "reported", "diverged_at"].notna().all()


def test_run_out_of_memory_is_a_row_and_the_sweep_goes_on(corpus, tmp_path, monkeypatch):
    import ssmtts.phases as phases
    real = phases.run_training

    def oom_for_the_hybrid(mc, *args, **kw):
        if mc.backbone == "hybrid":
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return real(mc, *args, **kw)
    monkeypatch.setattr(phases, "run_training", oom_for_the_hybrid)
    res = run_phase("phase1", corpus, profile="smoke", seeds=(0,), out_dir=tmp_path, protocols=("heldout",),
                    progress=False)
    status = res["runs"].set_index("label").status
    assert status["hybrid"] == "out_of_memory" and status["transformer"] == "finished"
    assert "can't allocate" in res["runs"].set_index("label").error["hybrid"]
    from ssmtts.report import comparison_table
    assert any("out of memory 1" in c for c in comparison_table(res["runs"]).columns)


def test_phase_csvs_have_the_documented_schema_and_are_not_duplicated(corpus, tmp_path):
    run_phase("phase1", corpus, profile="smoke", seeds=(0,), out_dir=tmp_path, protocols=("heldout",), progress=False)
    res = run_phase("phase1", corpus, profile="smoke", seeds=(0,), out_dir=tmp_path, protocols=("heldout",), progress=False)
    runs, curves, ms = res["runs"], res["curves"], res["milestones"]
    assert len(runs) == 2 and runs.run_id.is_unique                   # second call skipped finished runs
    provenance = ["run_id", "phase", "profile", "protocol", "seed", "codec_id", "corpus_hash", "device",
                  "torch", "packages", "git_commit"]
    measures = ["status", "fwd_ms", "bwd_ms", "opt_ms", "step_ms", "tokens_per_s", "mem_peak_mb", "mem_mean_mb",
                "params_total", "params_decoder", "final_train_acc", "final_val_acc", "final_val_dur_acc",
                "final_val_dur_mae", "val_wall_s_to_90", "val_wall_s_to_95", "model_backbone", "train_lr"]
    for col in provenance + measures:
        assert col in runs.columns, col
    assert runs.codec_id.eq(corpus.codec_id).all()
    assert {"step", "wall_s", "train_acc", "val_acc", "val_acc_cb7", "val_dur_acc", "codec_id"} <= set(curves.columns)
    per_run = ms.groupby("run_id").size()
    assert (per_run == 2 * (len(ACC_THRESHOLDS) + 10)).all()          # train+val x (acc + duration thresholds)
    assert not list((tmp_path / "phase1").glob(".*tmp"))              # atomic writes leave no temp files


def test_upsert_replaces_rows_of_the_same_run(tmp_path):
    p = tmp_path / "x.csv"
    upsert_rows(p, pd.DataFrame({"run_id": ["a", "b"], "v": [1, 2]}))
    out = upsert_rows(p, pd.DataFrame({"run_id": ["b"], "v": [3]}))
    assert sorted(zip(out.run_id, out.v)) == [("a", 1), ("b", 3)]


def test_mean_ci():
    m, h, n = mean_ci([1.0, 2.0, 3.0])
    assert (m, n) == (2.0, 3) and h == pytest.approx(4.302653 * 1 / np.sqrt(3), rel=1e-5)
    assert np.isnan(mean_ci([5.0])[1])


def test_bad_train_config():
    with pytest.raises(ValueError, match="protocol"):
        TrainConfig(protocol="train-on-test")


def test_timing_pass_rows_and_order_independent_memory(tmp_path):
    """The timing pass (ssmtts.timing): times from one fresh process per round stepping both configurations in
    turn (who steps first rotates every round); memory from one fresh process per configuration, order swapped
    each round: a configuration's working memory does not depend on whether it ran first or last."""
    from ssmtts.timing import timing_pass
    df = timing_pass("phase1", "smoke", rounds=2, steps=2, warmup=1, threads=1, out_dir=tmp_path)
    assert (tmp_path / "phase1" / "timing.csv").is_file()
    assert len(df) == 2 * 2 and set(df.label) == {"transformer", "hybrid"}
    firsts = df[df.step_order == 0].sort_values("round").label.tolist()
    assert firsts == ["transformer", "hybrid"]
    assert (df.step_ms > 0).all() and (df.work_mb > 0).all() and (df.threads == 1).all()
    for label, g in df.groupby("label"):
        first, last = g.loc[g.position == 0, "work_mb"].iloc[0], g.loc[g.position == 1, "work_mb"].iloc[0]
        assert abs(first - last) <= 0.1 * max(first, last), (label, first, last)


def test_memory_pass_fills_in_memory_and_keeps_the_times(tmp_path):
    from ssmtts.timing import memory_pass, timing_pass
    times = timing_pass("phase1", "smoke", rounds=2, steps=2, warmup=1, threads=1, out_dir=tmp_path, memory_rounds=0)
    assert times.work_mb.isna().all()
    df = memory_pass("phase1", "smoke", threads=1, out_dir=tmp_path)
    assert (df.work_mb > 0).all() and np.allclose(df.step_ms, times.step_ms)
    assert sorted(df.position) == [0, 0, 1, 1]


def test_interleaved_timing_steps_every_configuration_in_turn(corpus, monkeypatch):
    """Neighbouring steps of different configurations, the order reversed every step (A B B A): a drift in the
    machine's speed hits every configuration alike."""
    from ssmtts import timing
    calls = []
    monkeypatch.setattr(timing, "_step", lambda arm, i, warmup: (calls.append((i, arm["label"])),
                                                                 arm["times"].append((1e-3, 1e-3, 1e-3, 3e-3))))
    rows = timing.measure_interleaved("phase1", "smoke", [("transformer", "heldout"), ("hybrid", "heldout")], 2, 1)
    assert calls == [(0, "transformer"), (0, "hybrid"), (1, "hybrid"), (1, "transformer"),
                     (2, "transformer"), (2, "hybrid")]
    assert [r["config"].split("_")[0] for r in rows] == ["transformer", "hybrid"]


def test_phase4_timing_pass_times_both_chunk_protocols(tmp_path):
    """Phase 4's cost claim compares its chunk protocols: the timing pass times each (the stateful one carrying
    its state between a pass's chunks) and the claims engine groups them by protocol."""
    from ssmtts import claims
    from ssmtts.timing import timing_pass
    df = timing_pass("phase4", "smoke", rounds=2, steps=3, warmup=1, threads=1, out_dir=tmp_path)
    assert sorted(df.protocol.unique()) == ["stateful", "stateless"] and len(df) == 4 and (df.step_ms > 0).all()
    t = claims.load(tmp_path, "phase4")["timing"]
    assert set(t.group) == {"stateful", "stateless"}
    v = claims.verdict_table(pd.read_csv(Path(__file__).parents[1] / "data" / "claims.csv").query("claim_id == 'p4_step'"),
                             tmp_path)
    assert v.claim.tolist() == ["p4_step"] and "stateful = mamba_L4_H32_E1.5 @ H32" in v["what ran"].iloc[0]
