"""Phases 2-5 grids, chunked (Phase 4) training, the Phase 5 greedy step, and the claims verdicts."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ssmtts.models import ModelConfig
from ssmtts.models.config import ConfigError
from ssmtts.phases import PHASES, n_params, phase2, phase5_round2, run_phase, width
from ssmtts.report import claims_table, load_results, pareto_front
from ssmtts.train.chunks import ChunkSet
from ssmtts.train.data import fragment, text_span
from ssmtts.train.loop import run_training

ROOT = Path(__file__).resolve().parents[1]


def test_every_phase_builds_valid_configs_on_every_profile():
    for phase, fn in PHASES.items():
        for profile in ("smoke", "cpu", "paper"):
            models, trains = fn(profile)
            assert models and trains, (phase, profile)
            labels = [label for label, _ in models]
            assert len(set(labels)) == len(labels) and len({m.name for _, m in models}) == len(models)
    assert width(768, "cpu") == 96 and width(512, "cpu") == 64 and width(768, "paper") == 768


def test_phase2_matched_pure_model_is_closest_in_parameters_to_the_hybrid():
    models = dict(phase2("cpu")[0])
    hybrid, matched, pure = (n_params(models[k]) for k in ("hybrid3-5", "pure-matched", "pure"))
    gap = abs(matched - hybrid)
    assert gap < abs(pure - hybrid)
    for n in (models["pure-matched"].n_layers - 1, models["pure-matched"].n_layers + 1):
        other = ModelConfig(**{**models["pure"].to_dict(), "n_layers": n})
        assert abs(n_params(other) - hybrid) >= gap


def test_phase1_grid_is_the_one_the_committed_results_were_made_with():
    from dataclasses import replace

    from ssmtts.phases import SPEECH_DECODER
    runs = pd.read_csv(ROOT / "results" / "phase1" / "runs.csv")
    speech = pd.read_csv(ROOT / "results" / "phase1" / "speech" / "runs.csv")    # the re-run's protocol
    models, trains = PHASES["phase1"]("cpu")
    for protocol, tc in trains.items():
        rows = speech if protocol == "speech" else runs[runs.protocol == protocol]
        row = rows.iloc[0]
        for key, value in tc.to_row().items():
            if key in row.index and not (value is None and pd.isna(row[key])):
                assert str(row[key]) == str(value) or float(row[key]) == float(value), key
    assert {m.name for _, m in models} == set(runs.config)
    assert {replace(m, **SPEECH_DECODER).name for _, m in models} == set(speech.config)


def test_text_span_covers_the_chunk_exactly_and_a_fragment_is_a_span(corpus):
    u = corpus.split("train")[0]
    for start, end in ((0, 50), (37, 101), (u.n_frames - 60, u.n_frames)):
        ids, dur = text_span(u, start, end)
        assert dur.sum() == end - start and (dur >= 0).all() and len(ids) == len(dur) > 0
    f = fragment(u, 120)                                              # a fragment is the span from frame 0
    assert f.durations.sum() == 120 and np.array_equal(f.text_ids, text_span(u, 0, 120)[0])


def test_chunks_read_the_true_previous_frame_and_never_their_own_reference(corpus):
    train = corpus.split("train")
    cs = ChunkSet(train[:6], 2, 40, train)
    b = cs.batch([(0, 0), (1, 3)], ref_frames=20)
    long1 = torch.from_numpy(cs.samples[1].codes)
    assert torch.equal(b.codes[1], long1[:, 120:160])
    assert torch.equal(b.prev_codes[1], long1[:, 119:159])          # frame 0 of chunk 3 sees chunk 2's last frame
    assert (b.prev_codes[0, :, 0] == -1).all() and torch.equal(b.prev_codes[0, :, 1:], b.codes[0, :, :-1])
    assert not {r.uid for r in cs.refs} & {u.uid for u in train[:6]}
    assert cs.train_pairs(True, 2, 0, cs.n_chunks + 1) == [(0, 1), (1, 1)]   # stateful: in order, all samples
    assert cs.train_pairs(False, 2, 0, 5) == cs.train_pairs(False, 2, 0, 5)


def test_chunks_of_the_whole_pool_take_references_from_another_sample(corpus):
    # Phase 4's speech protocol concatenates the whole training split: no utterance is left outside the samples
    train = corpus.split("train")[:8]
    cs = ChunkSet(train, 2, 40, train)
    for i, ref in enumerate(cs.refs):
        assert ref.uid not in {u.uid for u in train[i::2]} and ref.uid in {u.uid for u in train}
    assert [r.uid for r in ChunkSet(train[:6], 2, 40, corpus.split("train")).refs] == \
        [r.uid for r in ChunkSet(train[:6], 2, 40, corpus.split("train")).refs]


def test_phase4_smoke_records_positions_and_resumes_statefully(corpus, tmp_path):
    models, trains = PHASES["phase4"]("smoke")
    mc, tc = models[0][1], trains["stateful"]
    full = run_training(mc, tc, corpus, 0, "full", tmp_path / "a", progress=False)
    run_training(mc, tc, corpus, 0, "cut", tmp_path / "b", stop_after=4, progress=False)
    resumed = run_training(mc, tc, corpus, 0, "cut", tmp_path / "b", progress=False)
    drop = ["wall_s", "eval_s"]
    pd.testing.assert_frame_equal(full["curve"].drop(columns=drop), resumed["curve"].drop(columns=drop))
    pos = full["positions"]
    assert set(pos.split) == {"train", "val"} and pos.chunk.max() >= 1 and (pos.state_rms > 0).all()
    assert pos.ce_cb0.gt(0).all() and pos.ce_cb0_fresh.gt(0).all()        # Phase 4's estimand, and state's worth
    chunk0 = pos[pos.chunk == 0]                                             # chunk 0 carries nothing: fresh = carried
    np.testing.assert_allclose(chunk0.ce_cb0, chunk0.ce_cb0_fresh, rtol=1e-5)
    s = full["summary"]
    assert np.isfinite(s["final_train_ce_var_chunks"]) and np.isfinite(s["final_val_err_var_chunks"])


def test_run_phase_rejects_unknown_phase_and_protocol(corpus, tmp_path):
    with pytest.raises(ValueError, match="unknown phase"):
        run_phase("phase9", corpus, "smoke", out_dir=tmp_path)
    with pytest.raises(ValueError, match="no protocol"):
        run_phase("phase4", corpus, "smoke", protocols=["heldout"], out_dir=tmp_path)
    with pytest.raises(ValueError, match="no configuration .'mamba'."):
        run_phase("phase1", corpus, "smoke", labels=["mamba"], out_dir=tmp_path)


def test_overrides_parse_as_literals_and_reach_every_configuration_run(corpus, tmp_path):
    assert ModelConfig.parse_overrides(["mamba_bidirectional=True", "conv_kernels=(5, 7)", "decoder_input=none"]) == \
        {"mamba_bidirectional": True, "conv_kernels": (5, 7), "decoder_input": "none"}
    with pytest.raises(ConfigError, match="bogus"):
        ModelConfig.parse_overrides(["bogus=1"])
    with pytest.raises(ConfigError, match="FIELD=VALUE"):
        ModelConfig.parse_overrides(["mamba_bidirectional"])
    # an override a configuration cannot take fails before anything trains or is written
    with pytest.raises(ConfigError, match="pure Mamba backbone, not 'hybrid'"):
        run_phase("phase2", corpus, "smoke", protocols=["speech"], out_dir=tmp_path,
                  overrides={"mamba_bidirectional": True})
    assert not (tmp_path / "phase2" / "speech").exists()
    # a change the configuration's name would not show is refused (its runs would share the unchanged one's ids)
    with pytest.raises(ConfigError, match="d_state.*would not show"):
        run_phase("phase3", corpus, "smoke", protocols=["heldout"], out_dir=tmp_path, overrides={"d_state": 8})
    assert ModelConfig(dropout=0.1).name == ModelConfig().name.replace("_E1.5", "_E1.5_drop0.1")
    res = run_phase("phase3", corpus, "smoke", seeds=[0], protocols=["heldout"], labels=["L4_H256_E1.5"],
                    out_dir=tmp_path, overrides={"mamba_bidirectional": True}, progress=False)
    assert res["runs"].model_mamba_bidirectional.tolist() == [True]
    assert res["runs"].run_id.str.contains("mamba_bi_").all()


def _runs(phase, values: dict, metric="best_train_acc", protocol="reported", **extra):
    rows = []
    for label, vals in values.items():
        for seed, v in enumerate(vals):
            rows.append({"run_id": f"{phase}-{label}-{seed}", "phase": phase, "profile": "cpu", "protocol": protocol,
                         "label": label, "seed": seed, "status": "finished", metric: v, "train_steps": 100,
                         "train_eval_every": 10, "model_d_model": 96, **extra})
    return pd.DataFrame(rows)


def test_claim_verdicts_follow_the_evidence():
    claims = pd.read_csv(ROOT / "data" / "claims.csv")
    c = claims[claims.claim_id.isin(["p3_expand", "p1_params", "p1_step", "p3_best", "p5_speed"])]
    runs = pd.concat([
        _runs("phase3", {"L4_H768_E1.5": [90, 91, 92], "L4_H768_E2.5": [80, 81, 82]}),
        _runs("phase1", {"hybrid": [10, 10, 10], "transformer": [12, 12, 12]}, metric="params_total"),
        _runs("phase1", {"hybrid": [20, 25, 30], "transformer": [21, 26, 29]}, metric="step_ms"),
        _runs("phase5", {"Emb32": [10, 11, 10.5], "Emb96": [7, 7.2, 7.1]}, metric="step_ms"),
    ])
    t = claims_table(c, runs).set_index("claim")
    assert t.loc["p3_expand", "verdict"] == "holds"                  # 91 vs 81, clearly separated
    assert t.loc["p1_params", "verdict"] == "holds"                  # deterministic counts
    assert t.loc["p1_step", "verdict"] == "inconclusive"             # overlapping noise
    assert t.loc["p3_best", "verdict"] == "holds"
    assert t.loc["p5_speed", "verdict"] == "does not hold"           # Emb32 (= H/3) is slower here
    flipped = _runs("phase3", {"L4_H768_E1.5": [70, 71, 72], "L4_H768_E2.5": [80, 81, 82]})
    assert claims_table(c[c.claim_id == "p3_expand"], flipped).verdict.iloc[0] == "does not hold"
    single = _runs("phase3", {"L4_H768_E1.5": [91], "L4_H768_E2.5": [80]})   # one seed proves nothing
    assert claims_table(c[c.claim_id == "p3_expand"], single).verdict.iloc[0] == "inconclusive"


def test_missing_runs_and_unreached_milestones_are_inconclusive_not_errors():
    claims = pd.read_csv(ROOT / "data" / "claims.csv")
    t = claims_table(claims, pd.DataFrame(columns=["phase", "protocol", "label"]))
    assert len(t) == len(claims) and set(t.verdict) == {"inconclusive"}
    never = _runs("phase2", {"pure": [np.nan] * 3, **{f"hybrid{k}": [np.nan] * 3 for k in
                                                       ("3-5", "5-7", "7-9", "9-11", "3-9")}},
                  metric="train_step_to_95")
    row = claims_table(claims[claims.claim_id == "p2_95"], never).iloc[0]
    assert row.verdict == "inconclusive" and "110" in row.ours       # censored at steps + eval_every


def test_phase5_round2_is_chosen_from_round1_results():
    runs = _runs("phase5", {"Emb32": [5, 5.5, 6], "Emb64": [8, 8.5, 9], "Emb96": [7, 7, 7]},
                 metric="best_val_acc", protocol="heldout")
    runs["model_d_embed"] = runs.label.str[3:].astype(int)
    r = phase5_round2(runs, 96, [32, 64, 96])
    assert r["winner"] == 64 and r["widths"] == [48, 80]


def test_pareto_front_keeps_only_undominated_points():
    df = pd.DataFrame({"cost": [1, 2, 3, 2.5], "score": [1, 3, 2, 3]})
    assert list(pareto_front(df, "cost", "score").index) == [0, 1]


def test_load_results_adds_every_milestone_column():
    res = load_results(ROOT / "results", "cpu")
    assert {"train_step_to_99", "val_step_to_5"} <= set(res["runs"].columns)
    assert (res["runs"].phase == "phase1").any()


def test_every_claim_is_preregistered_with_an_outcome_a_family_and_a_margin():
    claims = pd.read_csv(ROOT / "data" / "claims.csv")
    assert claims.primary_outcome.notna().all() and claims.family.notna().all() and claims.margin_unit.notna().all()
    assert (claims.equivalence_margin >= 0).all()
    quality = claims[claims.claim_id.isin(["p1_acc", "p2_k911", "p3_expand", "p5_best"])]
    assert quality.primary_outcome.str.contains("judge PER").all()        # speech decides quality claims
    assert (ROOT / "docs" / "preregistration.md").is_file()
