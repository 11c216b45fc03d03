"""`make samples`: speech from trained models, with objective measures against ground truth.

For each chosen model (default: the Phase 1 transformer and hybrid and the Phase 3 best pure
Mamba, held-out protocol, seed 0) and each of a few held-out test sentences of 7-10 s with
diacritics, this writes under results/samples/:

    <model>/<uid>.wav                  generated speech (greedy, predicted durations)
    <model>/<uid>_true_durations.wav   the same decoder given the true durations
    ground_truth/<uid>_original.wav    the corpus audio
    ground_truth/<uid>_codec.wav       its tokens decoded by the codec (what the codec itself allows)
    samples.csv                        one row per model x sentence (measures below)
    frame_cost.csv                     ms per generated frame vs position, per model

Measures: token accuracy of free-running generation (greedy, fed its own tokens, true
durations so frames align) vs teacher-forced; duration error per symbol and in total;
mel-cepstral distortion (MCD, DTW-aligned) of generated vs original audio and of the codec
round trip vs original (the floor); real-time factor of token generation and of decoding.

A model whose checkpoint is missing (a fresh clone keeps CSVs, not weights) is retrained
with its recorded configuration and seed; training is deterministic, so the summary row
the retrained model produces is compared with the committed one and both are reported.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from .corpus.build import Corpus, Utterance, build_corpus, read_wav
from .corpus.text import TextError
from .models import ModelConfig, TTSModel
from .models.generate import generate
from .phases import PHASES
from .runtime import configure
from .speech import mcd, write_wav
from .corpus.durations import FRAME_RATE
from .train.data import eval_batches, pick_reference
from .train.loop import load_checkpoint, run_training
from .train.results import atomic_write_csv, environment_row

DIACRITICS = set("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ")


# ---------------------------------------------------------------- what to render

def pick_sentences(corpus: Corpus, n: int = 3, min_s: float = 7.0, max_s: float = 10.0) -> list[Utterance]:
    """n held-out (test split) utterances of min_s..max_s seconds whose text has Polish diacritics,
    distinct texts, in uid order (deterministic). Falls back to the validation split if needed."""
    chosen, texts = [], set()
    for split in ("test", "val"):
        for u in sorted(corpus.split(split), key=lambda u: u.uid):
            if min_s * FRAME_RATE <= u.n_frames <= max_s * FRAME_RATE and DIACRITICS & set(u.text) \
                    and u.text not in texts:
                chosen.append(u), texts.add(u.text)
            if len(chosen) == n:
                return chosen
    if not chosen:
        raise ValueError(f"no held-out utterance of {min_s}-{max_s} s with diacritics in the corpus")
    return chosen


def default_models(results_dir: Path, profile: str = "cpu") -> list[tuple[str, str]]:
    """(phase, label): the Phase 1 backbones and the Phase 3 configuration with the best mean held-out accuracy."""
    chosen = [("phase1", "transformer"), ("phase1", "hybrid")]
    runs3 = Path(results_dir) / "phase3" / "runs.csv"
    if runs3.is_file():
        r = pd.read_csv(runs3)
        r = r[(r.profile == profile) & (r.protocol == "heldout") & (r.status == "finished")]
        if len(r):
            chosen.append(("phase3", r.groupby("label").best_val_acc.mean().idxmax()))
    return chosen


def load_or_retrain(phase: str, label: str, corpus: Corpus, results_dir: Path, profile: str = "cpu",
                    seed: int = 0, protocol: str = "heldout", device: str = "cpu") -> tuple[TTSModel, dict]:
    """The trained model of one run (from its checkpoint, or retrained deterministically) and a provenance dict."""
    models, trains = PHASES[phase](profile)
    mc = dict(models)[label]
    run_id = f"{phase}-{profile}-{protocol}-{mc.name}-s{seed}"
    ckpt_dir = Path(results_dir) / phase / "checkpoints"
    ckpt = ckpt_dir / f"{run_id}.pt"
    info = {"run_id": run_id, "phase": phase, "label": label, "config": mc.name, "backbone": mc.backbone}
    recorded = _recorded_row(results_dir, phase, run_id)
    blob = load_checkpoint(ckpt) if ckpt.is_file() else None
    if blob is None or blob["state"]["step"] < trains[protocol].steps:
        print(f"[samples] {run_id}: no finished checkpoint, retraining it (seed {seed}) ...")
        res = run_training(mc, trains[protocol], corpus, seed, run_id, ckpt_dir, device, progress=True)
        info["retrained"] = True
        info["retrained_final_val_acc"] = res["summary"]["final_val_acc"]
        blob = load_checkpoint(ckpt)
    model = TTSModel(ModelConfig.from_dict(blob["model_config"])).to(device)
    model.load_state_dict(blob["model"])
    model.eval()
    info["recorded_final_val_acc"] = recorded.get("final_val_acc", np.nan)
    return model, info


def model_name(info: dict) -> str:
    """Folder / table name of a rendered model: the Phase 1 label, or <phase>_<label>."""
    return info["label"] if info["phase"] == "phase1" else f"{info['phase']}_{info['label']}"


def _recorded_row(results_dir, phase, run_id) -> dict:
    path = Path(results_dir) / phase / "runs.csv"
    if not path.is_file():
        return {}
    r = pd.read_csv(path)
    r = r[r.run_id == run_id]
    return r.iloc[0].to_dict() if len(r) else {}


# ---------------------------------------------------------------- measures

def teacher_forced_accuracy(model: TTSModel, utt: Utterance, ref: Utterance) -> float:
    batch = next(eval_batches([utt], [ref], 1, model.cfg.style_frames))
    with torch.no_grad():
        logits, _ = model(batch.text_ids, batch.durations, batch.codes, batch.ref_codes)
    return float(100 * (logits[0].argmax(-1).T == batch.codes[0]).float().mean())


def render(model: TTSModel, info: dict, utt: Utterance, ref: Utterance, corpus: Corpus, out: Path) -> dict:
    """Generate one sentence twice and measure both against the ground truth:

    <model>/<uid>.wav                 the full TTS path (greedy, predicted durations)
    <model>/<uid>_true_durations.wav  the same decoder on the true durations (frames align with
                                      the truth: token accuracy, and speed per frame, come from it)
    A model whose predicted durations cannot be decoded (e.g. 0 frames) gets a row saying so.
    """
    codec, style = corpus.codec, ref.codes[:, :model.cfg.style_frames]
    name = model_name(info)
    original = read_wav(corpus.audio_paths[utt.uid])
    aligned = generate(model, utt.text_ids, style, durations=utt.durations)
    t0 = time.perf_counter()
    wav_aligned = codec.decode(aligned.codes)
    decode_s = time.perf_counter() - t0
    write_wav(out / name / f"{utt.uid}_true_durations.wav", wav_aligned)
    audio_s = utt.n_frames / FRAME_RATE
    row = {**info, "model": name, "uid": utt.uid, "text": utt.text, "speaker": utt.speaker, "ref_uid": ref.uid,
           "status": "ok", "wav": "", "wav_true_durations": f"{name}/{utt.uid}_true_durations.wav", "true_frames": utt.n_frames, "generated_frames": np.nan,
           "acc_free_running": float(100 * (aligned.codes == utt.codes).mean()),
           "acc_teacher_forced": teacher_forced_accuracy(model, utt, ref),
           "mcd_db": np.nan, "mcd_true_durations_db": mcd(wav_aligned, original), "mcd_codec_floor_db": np.nan,
           "rtf_tokens": (aligned.encode_ms + aligned.ms_per_frame.sum()) / 1000 / audio_s,
           "rtf_decode": decode_s / audio_s, "ms_per_frame_median": float(np.median(aligned.ms_per_frame)),
           "encode_ms": aligned.encode_ms, "codec_id": corpus.codec_id, "corpus_hash": corpus.corpus_hash}
    try:
        g = generate(model, utt.text_ids, style)                                   # greedy, predicted durations
    except TextError as e:
        return {**row, "status": f"failed: {e}"}
    wav = codec.decode(g.codes)
    write_wav(out / name / f"{utt.uid}.wav", wav)
    err = g.durations - utt.durations
    return {**row, "wav": f"{name}/{utt.uid}.wav", "generated_frames": g.n_frames, "mcd_db": mcd(wav, original),
            "dur_mae_frames": float(np.abs(err).mean()), "dur_acc_within_1": float(100 * (np.abs(err) <= 1).mean()),
            "total_frames_error": int(g.n_frames - utt.n_frames)}


def frame_cost(model: TTSModel, info: dict, utt: Utterance, ref: Utterance, n_frames: int) -> pd.DataFrame:
    """ms per generated frame at each position up to n_frames (the sentence's true durations, stretched)."""
    dur = utt.durations * int(np.ceil(n_frames / utt.n_frames))
    ends = np.cumsum(dur)
    keep = int(np.searchsorted(ends, n_frames)) + 1
    dur = dur[:keep].copy()
    dur[-1] -= int(dur.sum()) - n_frames
    g = generate(model, utt.text_ids[:keep], ref.codes[:, :model.cfg.style_frames], durations=dur)
    return pd.DataFrame({"model": model_name(info), "backbone": info["backbone"], "position": np.arange(g.n_frames),
                         "ms": g.ms_per_frame})


def make_samples(corpus: Corpus, results_dir: Path = Path("results"), out: Path | None = None,
                 models: list[tuple[str, str]] | None = None, profile: str = "cpu", n_sentences: int = 3,
                 cost_frames: int = 2000) -> dict:
    results_dir = Path(results_dir)
    out = Path(out or results_dir / "samples")
    out.mkdir(parents=True, exist_ok=True)
    sentences = pick_sentences(corpus, n_sentences)
    pool = corpus.split("test") + corpus.split("val")
    rng = np.random.default_rng(0)
    refs = {u.uid: pick_reference(u, pool, rng) for u in sentences}
    rows = [{"model": "ground_truth", "uid": u.uid, "text": u.text, "speaker": u.speaker,
             "wav": f"ground_truth/{u.uid}_codec.wav", "true_frames": u.n_frames, "generated_frames": u.n_frames,
             "mcd_codec_floor_db": _ground_truth(u, corpus, out), "codec_id": corpus.codec_id,
             "corpus_hash": corpus.corpus_hash} for u in sentences]
    costs = []
    for phase, label in models or default_models(results_dir, profile):
        model, info = load_or_retrain(phase, label, corpus, results_dir, profile)
        for u in sentences:
            rows.append(render(model, info, u, refs[u.uid], corpus, out))
            r = rows[-1]
            print(f"[samples] {r['model']} {u.uid}: {r['status']}; MCD {r['mcd_db']:.2f} dB "
                  f"(true durations {r['mcd_true_durations_db']:.2f}), RTF {r['rtf_tokens']:.2f}, "
                  f"{r['ms_per_frame_median']:.2f} ms/frame")
        n = min(cost_frames, model.cfg.max_positions)
        costs.append(frame_cost(model, info, sentences[0], refs[sentences[0].uid], n))
    env = environment_row("cpu")
    table = pd.DataFrame(rows).assign(**env)
    atomic_write_csv(table, out / "samples.csv")
    cost = pd.concat(costs, ignore_index=True).assign(git_commit=env["git_commit"], torch_threads=env["torch_threads"])
    atomic_write_csv(cost, out / "frame_cost.csv")
    return {"samples": table, "frame_cost": cost}


def _ground_truth(u: Utterance, corpus: Corpus, out: Path) -> float:
    original = read_wav(corpus.audio_paths[u.uid])
    round_trip = corpus.codec.decode(u.codes)
    write_wav(out / "ground_truth" / f"{u.uid}_original.wav", original)
    write_wav(out / "ground_truth" / f"{u.uid}_codec.wav", round_trip)
    return mcd(round_trip, original)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", default="results", help="results folder holding phase CSVs (and checkpoints)")
    p.add_argument("--out", default=None, help="where to write WAVs and CSVs (default: <results>/samples)")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--codec", default="auto")
    p.add_argument("--sentences", type=int, default=3)
    p.add_argument("--cost-frames", type=int, default=2000, help="frames generated for the ms/frame-vs-position curve")
    p.add_argument("--model", action="append", default=None, metavar="PHASE:LABEL",
                   help="a model to render (repeatable), e.g. phase1:hybrid; default: Phase 1 + best of Phase 3")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    configure(threads=a.threads)
    models = [tuple(m.split(":", 1)) for m in a.model] if a.model else None
    res = make_samples(build_corpus(codec=a.codec), Path(a.results), Path(a.out) if a.out else None, models,
                       a.profile, a.sentences, a.cost_frames)
    cols = ["model", "uid", "status", "acc_free_running", "acc_teacher_forced", "dur_mae_frames",
            "total_frames_error", "mcd_db", "mcd_true_durations_db", "mcd_codec_floor_db", "rtf_tokens", "rtf_decode", "ms_per_frame_median"]
    print(res["samples"][[c for c in cols if c in res["samples"].columns]].round(3).to_string(index=False))


if __name__ == "__main__":
    main()
