"""Speech measures, the speech-run harness and `speak`, on the smoke profile."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from ssmtts import speech
from ssmtts.corpus.text import UnknownCharacterError
from ssmtts.judge import judge_for
from ssmtts.models import TTSModel
from ssmtts.speak import CodecMismatchError, NoSpeakerError, speak
from ssmtts.speech import export_model, load_model, speech_model


@pytest.fixture(scope="module")
def smoke_judge(corpus):
    return judge_for(corpus, "smoke", progress=False)


def test_speech_run_writes_curves_sentences_summaries_and_resumes(corpus, smoke_judge, tmp_path):
    out = tmp_path / "speech"
    jobs = speech.backbone_jobs("smoke", ["mamba"])
    runs = speech.run_speech(jobs, corpus, smoke_judge, out, "smoke", progress=False)
    sched = speech.SPEECH_SCHEDULES["smoke"]
    assert set(runs.durations) == {"predicted", "true"} and (runs.n == sched.final_sentences).all()
    for col in ("per", "per_lo", "per_hi", "cer", "rtf_tokens", "train_minutes", "judge_id", "codec_id", "git_commit"):
        assert col in runs and runs[col].notna().all(), col
    curve = pd.read_csv(out / "curve.csv")
    assert list(curve.step) == [2, 4] and (curve.n == sched.listen_sentences).all()
    sent = pd.read_csv(out / "sentences.csv")
    assert len(sent) == 2 * sched.final_sentences
    true = sent[sent.durations == "true"]
    assert (true.generated_frames == true.true_frames).all() and (true.dur_mae_frames == 0).all()
    base = pd.read_csv(out / "baselines.csv")
    assert set(base.model) == {"ground truth", "codec round trip", "null: time-reversed", "null: another sentence"}
    assert (base[base.model == "ground truth"].mcd_db == 0).all() and (base[base.model != "ground truth"].mcd_db > 0).all()
    # a second call finds the run finished and changes nothing
    before = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    speech.run_speech(jobs, corpus, smoke_judge, out, "smoke", progress=False)
    assert before == {p.name: p.read_bytes() for p in out.glob("*.csv")}
    # the best default-recipe run becomes the `speak` model, loadable with weights_only=True
    info = speech.publish_speaker(out, corpus, "smoke", ["mamba"])
    assert json.loads((out / "speaker.json").read_text())["run_id"] == info["run_id"]
    model = load_model(out / "speaker.pt")
    with torch.no_grad():                  # 4 smoke steps may predict 0 frames: make every symbol 2 frames
        model.duration[-1].weight.zero_(), model.duration[-1].bias.fill_(np.log1p(2.0))
    export_model(model, out / "speaker.pt")
    wav, meta = speak("Zażółć gęślą jaźń.", voice=1, model_path=out / "speaker.pt", corpus=corpus)
    assert wav.dtype == np.float32 and meta["voice"] == 1 and meta["config"] == model.cfg.name
    assert meta["frames"] == 2 * 19 and len(wav) == meta["frames"] * 320   # BOS + 18 characters


def test_each_seed_keeps_its_own_audio_and_the_examples_pair_it_with_its_own_transcript(corpus, smoke_judge, tmp_path):
    from ssmtts.speech_figures import heard_examples
    out, jobs = tmp_path / "speech", speech.backbone_jobs("smoke", ["mamba"])
    speech.run_speech(jobs, corpus, smoke_judge, out, "smoke", seed=0, progress=False)
    folder = out / "wavs" / jobs[0][1].name
    seed0 = {p.name: p.read_bytes() for p in folder.glob("*.wav")}
    speech.run_speech(jobs, corpus, smoke_judge, out, "smoke", seed=1, progress=False)
    assert seed0 and {p.name: p.read_bytes() for p in folder.glob("*.wav")} == seed0   # seed 1 overwrote nothing
    assert sorted(p.name for p in (out / "wavs" / f"{jobs[0][1].name}-s1").glob("*.wav")) == sorted(seed0)
    sent = pd.read_csv(out / "sentences.csv")
    sent = sent.assign(model=sent.config, transcript=sent.transcript.fillna("")).sort_values("seed", ascending=False)
    ex = heard_examples(sent, out / "wavs", per_model=1).iloc[0]
    row = sent[(sent.seed == 0) & (sent.uid == ex.uid) & (sent.durations == "predicted")].iloc[0]
    assert ex.wav == str(folder / f"{ex.uid}.wav") and ex.heard == row.transcript


def test_publish_speaker_retrains_a_run_whose_weights_are_missing(corpus, smoke_judge, tmp_path):
    """A fresh clone has the CSVs but no weights: the best run is retrained from its seed."""
    out = tmp_path / "speech"
    speech.run_speech(speech.backbone_jobs("smoke", ["hybrid"]), corpus, smoke_judge, out, "smoke", progress=False)
    export = next((out / "models").glob("*.pt"))
    kept = torch.load(export, weights_only=True)["state_dict"]
    export.unlink()
    speech.publish_speaker(out, corpus, "smoke", ["hybrid"])
    again = torch.load(out / "speaker.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(kept[k], again[k]) for k in kept)
    assert json.loads((out / "speaker.json").read_text())["codec_id"] == corpus.codec_id
    # a speaker published on another machine's codec fit (committed results) is replaced, not kept
    meta = json.loads((out / "speaker.json").read_text())
    (out / "speaker.json").write_text(json.dumps({**meta, "codec_id": "melkmeans8x1024-another-fit"}))
    speech.publish_speaker(out, corpus, "smoke", ["hybrid"])
    assert json.loads((out / "speaker.json").read_text())["codec_id"] == corpus.codec_id


def test_speak_names_the_command_that_makes_a_missing_model(tmp_path):
    with pytest.raises(NoSpeakerError, match="make speech"):
        speak("Dzień dobry.", model_path=tmp_path / "none.pt")


def test_speak_refuses_a_model_of_another_codecs_tokens(corpus, tmp_path):
    path = tmp_path / "speaker.pt"
    model = TTSModel(speech_model("mamba", "smoke"))
    with torch.no_grad():                   # every symbol 2 frames
        model.duration[-1].weight.zero_(), model.duration[-1].bias.fill_(np.log1p(2.0))
    export_model(model, path)
    path.with_suffix(".json").write_text(json.dumps({"run_id": "r", "codec_id": "melkmeans8x1024-another-fit"}))
    with pytest.raises(CodecMismatchError, match=f"melkmeans8x1024-another-fit.*{corpus.codec_id}.*make speech"):
        speak("Dzień dobry.", model_path=path, corpus=corpus)
    path.with_suffix(".json").write_text(json.dumps({"run_id": "r", "codec_id": corpus.codec_id}))
    wav, info = speak("Dzień dobry.", model_path=path, corpus=corpus)
    assert info["trained_run"] == "r"


def test_speak_cli_writes_a_wav_and_rejects_bad_text(corpus, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "m.pt"
    model = TTSModel(speech_model("mamba", "smoke"))
    with torch.no_grad():                   # every symbol 3 frames
        model.duration[-1].weight.zero_(), model.duration[-1].bias.fill_(np.log1p(3.0))
    export_model(model, path)
    out = tmp_path / "out.wav"
    ok = subprocess.run([sys.executable, "-m", "ssmtts.speak", "Ala ma kota.", "-o", str(out), "--model", str(path)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    info = sf.info(out)
    assert info.samplerate == 24000 and info.channels == 1 and info.frames == 3 * 13 * 320   # BOS + 12 characters
    bad = subprocess.run([sys.executable, "-m", "ssmtts.speak", "Ala # kota", "--model", str(path)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "unknown character '#'" in bad.stderr and "Traceback" not in bad.stderr
    with pytest.raises(UnknownCharacterError):
        speak("Ala # kota", model_path=path, corpus=corpus)


def test_a_phase_rerun_trains_with_the_speech_recipe_listens_and_resumes(corpus, smoke_judge, tmp_path):
    """Protocol `speech` of a phase: each configuration with the speech recipe, one row per duration mode with
    the phase's label, listening rows, teacher-forced curves; a second call changes nothing; the claims
    table decides the phase's exact claim (parameters) from these rows."""
    from ssmtts import claims
    from ssmtts.phases import run_phase, speech_protocol
    res = run_phase("phase1", corpus, "smoke", seeds=(0,), out_dir=tmp_path, protocols=("speech",),
                    judge=smoke_judge, progress=False)
    sp = res["speech_runs"]
    assert set(sp.label) == {"transformer", "hybrid"} and set(sp.phase) == {"phase1"} and len(sp) == 4
    assert (sp.model_decoder_input == "none").all() and not sp.model_decoder_causal.astype(bool).any()
    assert sp.params_total.notna().all() and (sp.steps == speech_protocol("smoke")[0].steps).all()
    assert sorted(res["listening"].step.unique()) == [2, 4]
    assert (tmp_path / "phase1" / "speech" / "tf_curves.csv").is_file() and "runs" not in res  # no first-design rows
    out = tmp_path / "phase1" / "speech"
    before = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    run_phase("phase1", corpus, "smoke", seeds=(0,), out_dir=tmp_path, protocols=("speech",), judge=smoke_judge,
              progress=False)
    assert before == {p.name: p.read_bytes() for p in out.glob("*.csv")}
    table = claims.verdict_table(pd.read_csv("data/claims.csv"), tmp_path, min_seeds=1).set_index("claim")
    assert table.loc["p1_params", "verdict"] == "holds"        # the hybrid has fewer parameters, exactly
    assert "p1_step" not in table.index                         # no timing pass ran: no cost verdicts from learning runs


def test_phase4_speech_protocol_trains_both_chunk_protocols_and_speaks_in_chunks(corpus, smoke_judge, tmp_path,
                                                                                  monkeypatch):
    """Phase 4's re-run (deviation 6): one causal, code-free decoder trained on chunks stateless and stateful, each
    heard generating chunk by chunk as it trained (the stateful one carrying its state); labels are the protocols,
    which the claims p4_acc and p4_50 compare."""
    from ssmtts import phases
    monkeypatch.setattr(phases, "SPEECH_PHASES", phases.SPEECH_PHASES + ("phase4",))
    res = phases.run_phase("phase4", corpus, "smoke", seeds=(0,), out_dir=tmp_path, protocols=("speech",),
                           judge=smoke_judge, progress=False)
    sp = res["speech_runs"].set_index("label")
    assert sorted(sp.index) == ["stateful", "stateless"]
    assert sp.loc["stateful", "generation"] == "chunks48-carried" and sp.loc["stateless", "generation"] == "chunks48-fresh"
    assert sp.loc["stateful", "train_protocol"] == "stateful" and sp.loc["stateless", "train_protocol"] == "stateless"
    assert sp.model_decoder_causal.astype(bool).all() and (sp.model_decoder_input == "none").all()
    assert sp.per.notna().all() and set(res["listening"].label) == {"stateful", "stateless"}


def test_paired_difference_of_judge_error_is_paired_and_exact():
    """Two models on the same sentences: the point difference is the difference of summed rates; a model
    against itself differs by exactly 0 in every resample; a model that errs on every sentence is
    worse with an interval that excludes 0; duplicated runs are refused."""
    import pandas as pd
    from ssmtts.speech_figures import paired_difference
    rows = lambda config, edits: [dict(config=config, uid=f"u{i}", durations="predicted", phoneme_edits=e,
                                       phoneme_len=10) for i, e in enumerate(edits)]
    s = pd.DataFrame(rows("a", [1, 2, 3, 4]) + rows("b", [0, 0, 1, 1]))
    d = paired_difference(s, "a", "b")
    assert d["n"] == 4 and d["diff"] == pytest.approx(100 * 10 / 40 - 100 * 2 / 40)
    assert 0 < d["lo"] <= d["diff"] <= d["hi"]
    same = paired_difference(s, "a", "a")
    assert same["diff"] == same["lo"] == same["hi"] == 0
    with pytest.raises(ValueError, match="several runs"):
        paired_difference(pd.concat([s, s]), "a", "b")


def test_lookahead_table_compares_each_arm_with_forward_only_pure_mamba(tmp_path):
    """Deviation 7's table: made-up forward-only and bidirectional pure-Mamba rows (copies of Phase 1's hybrid,
    seed 0, the bidirectional one erring less on every sentence) beside Phase 1's hybrid: listed as looking
    ahead nowhere / in encoder and decoder, a negative paired difference; a row of another judge is never
    pooled; without the arms there is no table."""
    from pathlib import Path
    from ssmtts.speech_figures import lookahead_table
    src = Path(__file__).resolve().parents[1] / "results" / "phase1" / "speech"
    (tmp_path / "phase1" / "speech").mkdir(parents=True)
    for f in ("runs.csv", "sentences.csv"):
        (tmp_path / "phase1" / "speech" / f).write_bytes((src / f).read_bytes())
    assert lookahead_table(tmp_path) is None
    hybrid = speech.speech_model("hybrid", "cpu").name
    runs, sentences = pd.read_csv(src / "runs.csv"), pd.read_csv(src / "sentences.csv")
    runs, sentences = runs[(runs.config == hybrid) & (runs.seed == 0)], sentences[(sentences.config == hybrid) & (sentences.seed == 0)]
    forward = speech.speech_model("mamba", "cpu")
    arm = speech.speech_model("mamba", "cpu", mamba_bidirectional=True)
    as_model = lambda df, mc: df.assign(config=mc.name, **({f"model_{k}": v for k, v in mc.to_row(prefix="").items()}
                                                          if "per" in df else {}))
    fewer = as_model(sentences, arm).assign(phoneme_edits=sentences.phoneme_edits // 2)
    other_judge = as_model(runs, forward).assign(config="mamba_bi_other", judge_id="another judge")
    out = tmp_path / "speech" / "bidirectional"
    out.mkdir(parents=True)
    pd.concat([as_model(runs, forward), as_model(runs, arm).assign(per=10.0), other_judge]).to_csv(out / "runs.csv", index=False)
    pd.concat([as_model(sentences, forward), fewer]).to_csv(out / "sentences.csv", index=False)
    table = lookahead_table(tmp_path).set_index("config")
    assert list(table.index) == [forward.name, arm.name, hybrid]     # not "mamba_bi_other": another judge
    assert table.loc[forward.name, "looks ahead in"] == "nowhere"
    assert table.loc[arm.name, "looks ahead in"] == "encoder, decoder"
    assert not table.loc[arm.name, "decoder causal (can stream)"]
    assert table.loc[arm.name, "minus forward-only pure Mamba [95 % CI]"].startswith("-")
    assert table.loc[arm.name, "params"] > table.loc[forward.name, "params"]


def test_lookahead_by_seed_pairs_the_bidirectional_arm_with_phase1s_hybrid(tmp_path):
    """Made-up bidirectional runs 3 points below Phase 1's hybrid in every seed: a paired difference of exactly
    -3.0; nothing without the arm's runs."""
    from pathlib import Path
    from ssmtts.speech_figures import lookahead_by_seed
    src = Path(__file__).resolve().parents[1] / "results" / "phase1" / "speech" / "runs.csv"
    (tmp_path / "phase1" / "speech").mkdir(parents=True)
    (tmp_path / "phase1" / "speech" / "runs.csv").write_bytes(src.read_bytes())
    assert lookahead_by_seed(tmp_path) is None
    runs = pd.read_csv(src)
    runs = runs[runs.config == speech.speech_model("hybrid", "cpu").name]
    arm = runs.assign(config=speech.speech_model("mamba", "cpu", mamba_bidirectional=True).name, per=runs.per - 3.0)
    (tmp_path / "speech" / "bidirectional").mkdir(parents=True)
    arm.to_csv(tmp_path / "speech" / "bidirectional" / "runs.csv", index=False)
    table = lookahead_by_seed(tmp_path)
    assert table["mean [95 % CI]"].iloc[2] == "-3.0 [-3.0, -3.0]"


@pytest.mark.parametrize("module", ["ssmtts.speech", "ssmtts.corpus"])
def test_extra_text_that_is_missing_or_unspeakable_is_a_clear_error(module, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("Cena: 5 zł.\n", encoding="utf-8")
    for path, says in ((tmp_path / "nowhere.txt", "no such file"), (bad, "'5'")):
        args = ["--extra-text", str(path)] + (["--profile", "smoke"] if module == "ssmtts.speech" else [])
        r = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300)
        assert r.returncode != 0 and says in r.stderr and "Traceback" not in r.stderr, r.stderr[-500:]
