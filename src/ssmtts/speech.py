"""Speech the models generate, free-running, on sentences they never saw, as the judge hears it.

The primary outcome of the study. For each unseen-text sentence (one voice per sentence, in
rotation; the style reference is another *training* utterance of that voice):

    generate (greedy) with predicted durations, and with the true ones -> codec decode -> audio
    judge error rate (phonemes and characters)   vs the judge on the ground truth / codec round trip
    DTW-MCD against the ground-truth audio        vs null baselines (time-reversed ground truth,
                                                     another sentence) and the codec ceiling
    duration error (per symbol and in total), real-time factor of generation and of decoding

`baselines` computes the model-independent rows once per corpus and judge (ground truth, codec
round trip, nulls) and `measure` a model's rows; `summarize_speech` pools them with bootstrap CIs
over sentences.

`train_and_listen` trains one model (any backbone and decoder recipe) with `run_training`,
pausing at fixed steps to let the judge hear it on a fixed subset of the unseen set (the
error-vs-training curve and its milestones), then measures the finished model on the whole set.
Every piece is resumable: finished runs are skipped, an unfinished one resumes from its checkpoint,
and curve points already written are not recomputed.
"""
from __future__ import annotations

import fcntl
import json
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .corpus.build import Corpus, Utterance, read_wav
from .corpus.durations import FRAME_RATE
from .corpus.text import TextError
from .files import atomic_torch_save
from .judge import PRIMARY_METRIC, Judge, bootstrap_ci, null_inputs, one_per_sentence, roundtrip_wav
from .models import ModelConfig, TTSModel
from .models.config import ConfigError
from .models.generate import generate
from .runtime import current
from .train.data import pick_reference
from .train.loop import TrainConfig, run_training
from .train.results import atomic_write_csv, environment_row, upsert_rows

ERROR_MILESTONES = (50, 30, 20, 10)     # judge error (%) whose first crossing is recorded
DURATION_MODES = ("predicted", "true")


# ----------------------------------------------------------------------------- distortion

def mel_cepstra(wav: np.ndarray, n_coeffs: int = 24) -> np.ndarray:
    """(frames, n_coeffs) mel cepstrum c1..c_n (c0, the energy, excluded) of the 80-bin natural-log mel
    magnitude spectrum: c_k = (1/M) sum_m log|X_m| cos(pi k (2m + 1) / 2M), the mean-normalised DCT-II
    (the scale of a real cepstrum, so MCD lands in the usual dB range; only comparisons between rows
    of one table are meaningful, not against papers using SPTK mel-cepstra)."""
    from scipy.fft import dct

    from .corpus.codec import log_mel
    x = log_mel(wav).numpy()
    return dct(x, type=2, norm=None, axis=1)[:, 1:n_coeffs + 1] / (2 * x.shape[1])


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost monotonic alignment of a (n, m) cost matrix (steps: right, down, diagonal)."""
    import librosa
    _, wp = librosa.sequence.dtw(C=cost, backtrack=True)
    wp = wp[::-1]
    return wp[:, 0], wp[:, 1]


def mcd(wav: np.ndarray, ref: np.ndarray) -> float:
    """Mel-cepstral distortion in dB between two waveforms, frames aligned by DTW:
    mean over the path of (10 / ln 10) * sqrt(2 * sum_k (c_k - c'_k)^2)."""
    a, b = mel_cepstra(wav), mel_cepstra(ref)
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    i, j = dtw_path(cost)
    return float(np.mean(10 / np.log(10) * np.sqrt(2) * cost[i, j]))


# ----------------------------------------------------------------------------- the test set

def eval_sentences(corpus: Corpus, n: int | None = None) -> list[Utterance]:
    """The unseen-text set, one voice per sentence (the first n sentences if n is given).
    A corpus without an unseen split (a user's) falls back to its test split."""
    utts = one_per_sentence(corpus.split("unseen")) or sorted(corpus.split("test"), key=lambda u: u.uid)
    if not utts:
        raise ValueError("the corpus has neither an unseen nor a test split to generate from")
    return utts[:n] if n else utts


def style_references(corpus: Corpus, utts: list[Utterance], seed: int = 0) -> dict[str, Utterance]:
    """A training utterance of the same voice for each sentence (fixed by the seed)."""
    rng = np.random.default_rng([seed, 7])
    return {u.uid: pick_reference(u, corpus.split("train"), rng) for u in utts}


def _rows_from_scores(judge: Judge, wavs, utts, corpus) -> pd.DataFrame:
    return judge.score(wavs, [u.text for u in utts], [corpus.phonemes[u.uid] for u in utts])


def baselines(corpus: Corpus, judge: Judge, utts: list[Utterance]) -> pd.DataFrame:
    """Model-independent rows, one per sentence x condition: the ground truth, its codec round trip
    (the ceiling a model of these tokens can reach) and null inputs that do not say the sentence."""
    originals = [read_wav(corpus.audio_paths[u.uid]) for u in utts]
    conditions = {"ground truth": originals, "codec round trip": [roundtrip_wav(corpus, u) for u in utts]}
    nulls = null_inputs(originals)
    conditions["null: time-reversed"] = nulls["time-reversed"]
    conditions["null: another sentence"] = nulls["another sentence"]
    frames = []
    for cond, wavs in conditions.items():
        s = _rows_from_scores(judge, wavs, utts, corpus)
        s["mcd_db"] = [mcd(w, o) if cond != "ground truth" else 0.0 for w, o in zip(wavs, originals)]
        frames.append(s.assign(model=cond, uid=[u.uid for u in utts], text=[u.text for u in utts],
                               speaker=[u.speaker for u in utts], durations="-"))
    return pd.concat(frames, ignore_index=True)


def measure(model: TTSModel, corpus: Corpus, judge: Judge, utts: list[Utterance], refs: dict[str, Utterance],
            modes=DURATION_MODES, with_mcd: bool = True, wav_dir: Path | None = None, n_wavs: int = 0,
            generate_kw: dict | None = None) -> pd.DataFrame:
    """One row per sentence x duration mode: what the judge heard, its edits, MCD, duration errors, RTF.
    With wav_dir, the first n_wavs sentences' audio (predicted durations) is written there; generate_kw go to
    `generate` (e.g. Phase 4's chunked generation)."""
    rows, model = [], model.eval()
    for i, u in enumerate(utts):
        style = refs[u.uid].codes[:, :model.cfg.style_frames]
        original = read_wav(corpus.audio_paths[u.uid]) if with_mcd else None
        for mode in modes:
            base = {"uid": u.uid, "text": u.text, "speaker": u.speaker, "ref_uid": refs[u.uid].uid, "durations": mode}
            try:
                g = generate(model, u.text_ids, style, durations=u.durations if mode == "true" else None,
                             **(generate_kw or {}))
            except TextError as e:          # e.g. every duration predicted 0: a row saying so, scored as silence
                rows.append({**base, "status": f"failed: {e}", "wav": np.zeros(320, np.float32)})
                continue
            t0 = time.perf_counter()
            wav = corpus.codec.decode(g.codes)
            decode_s = time.perf_counter() - t0
            audio_s = g.n_frames / FRAME_RATE
            err = g.durations - u.durations
            rows.append({**base, "status": "ok", "wav": wav, "generated_frames": g.n_frames, "true_frames": u.n_frames,
                         "total_frames_error": int(g.n_frames - u.n_frames),
                         "dur_mae_frames": float(np.abs(err).mean()), "dur_acc_within_1": float(100 * (np.abs(err) <= 1).mean()),
                         "rtf_tokens": (g.encode_ms + g.ms_per_frame.sum()) / 1000 / audio_s, "rtf_decode": decode_s / audio_s,
                         "ms_per_frame": float(np.median(g.ms_per_frame)),
                         "mcd_db": mcd(wav, original) if with_mcd else np.nan})
            if wav_dir is not None and i < n_wavs and mode == "predicted":
                write_wav(Path(wav_dir) / f"{u.uid}.wav", wav)
    by_uid = {u.uid: u for u in utts}
    scored = _rows_from_scores(judge, [r.pop("wav") for r in rows], [by_uid[r["uid"]] for r in rows], corpus)
    return pd.concat([pd.DataFrame(rows), scored], axis=1)


def write_wav(path: Path, wav: np.ndarray, sample_rate: int = 24000) -> None:
    import soundfile as sf
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(wav, -1, 1), sample_rate, subtype="PCM_16")


def summarize_speech(rows: pd.DataFrame, by=("model", "durations"), seed: int = 0) -> pd.DataFrame:
    """Per group: judge PER / CER pooled over sentences with bootstrap 95 % CIs, MCD mean with its CI,
    duration errors and RTF (means), n sentences and failures."""
    out = []
    for keys, g in rows.groupby(list(by), sort=False):
        r = dict(zip(by, keys))
        r["n"] = len(g)
        r["n_failed"] = int((g.get("status", pd.Series(["ok"] * len(g))).fillna("ok") != "ok").sum())
        for name, prefix in (("per", "phoneme"), ("cer", "char")):
            e, n = g[f"{prefix}_edits"].to_numpy(float), g[f"{prefix}_len"].to_numpy(float)
            r[name] = 100 * e.sum() / max(1, n.sum())
            r[f"{name}_lo"], r[f"{name}_hi"] = bootstrap_ci(e, n, seed=seed)
        m = g["mcd_db"].dropna().to_numpy(float) if "mcd_db" in g else np.array([])
        r["mcd_db"] = float(m.mean()) if len(m) else np.nan
        if len(m) > 1:
            idx = np.random.default_rng(seed).integers(len(m), size=(2000, len(m)))
            r["mcd_lo"], r["mcd_hi"] = np.percentile(m[idx].mean(1), [2.5, 97.5])
        for c in ("dur_mae_frames", "dur_acc_within_1", "total_frames_error", "rtf_tokens", "rtf_decode"):
            if c in g:
                r[c] = float(g[c].mean())
        if "total_frames_error" in g:
            r["abs_total_frames_error"] = float(g["total_frames_error"].abs().mean())
        out.append(r)
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- training runs that are heard

@dataclass
class SpeechSchedule:
    listen_every: int = 150        # steps between judge checks during training (a multiple of checkpoint_every)
    listen_sentences: int = 12     # unseen sentences the judge hears at each check (predicted durations)
    final_sentences: int | None = None  # None: the whole unseen set at the end
    n_wavs: int = 4                # sentences whose generated audio is kept per model
    final_modes: tuple[str, ...] = DURATION_MODES  # duration modes of the final measurement (predicted is primary)


def listen_schedule(tc: TrainConfig, schedule: SpeechSchedule, fraction: float = 0.1) -> tuple[TrainConfig, SpeechSchedule]:
    """Listening every `fraction` of the budget, with checkpoints on the listening steps (a listening
    reloads the run's checkpoint)."""
    every = max(1, round(tc.steps * fraction))
    return replace(tc, checkpoint_every=every), replace(schedule, listen_every=every)


def generation_name(generate_kw: dict | None) -> str:
    """How a model's speech was generated: `whole` (every frame of a sentence in one pass, or frame by frame), or
    `chunks96-carried` / `chunks96-fresh` (Phase 4: chunk by chunk, the state carried or not)."""
    kw = generate_kw or {}
    if not kw.get("chunk_frames"):
        return "whole"
    return f"chunks{kw['chunk_frames']}-{'carried' if kw.get('carry_state', True) else 'fresh'}"


def generation_suffix(generate_kw: dict | None) -> str:
    name = generation_name(generate_kw)
    return "" if name == "whole" else f"-{name}"


def wav_folder(config: str, seed: int = 0, generate_kw: dict | None = None) -> str:
    """Where a run's kept audio goes under out/wavs/: `<config name>[-<generation>]`, with `-s<seed>` for seeds
    other than 0, so that every seed keeps its own audio (seed 0's paths are those the report has always read)."""
    return f"{config}{generation_suffix(generate_kw)}" + (f"-s{seed}" if seed else "")


def speech_run_id(name: str, mc: ModelConfig, seed: int) -> str:
    """The row key of a speech run (the model's name, what ran, the seed)."""
    return f"{name}-{mc.name}-s{seed}"


def train_and_listen(name: str, mc: ModelConfig, tc: TrainConfig, corpus: Corpus, judge: Judge, out: Path,
                     schedule: SpeechSchedule, seed: int = 0, device: str = "cpu", progress: bool = True,
                     keep_wavs: bool = True, extra: dict | None = None, generate_kw: dict | None = None) -> pd.DataFrame:
    """Train `mc` with `tc`, judging its free-running speech every `listen_every` steps; then the whole set.

    Writes under out/: curve.csv (judge error vs step and training minutes), sentences.csv (one row per
    sentence x duration mode of the finished model), runs.csv (one summary row per duration mode, with
    the milestones), tf_curves.csv (the teacher-forced evaluations of run_training: secondary outcomes),
    wavs/<wav_folder>/<uid>.wav, models/<run_id>.pt (weights). `extra` columns (e.g. phase, label) go
    into every row; generate_kw go to `generate` (recorded as `generation`). Returns the run's summary rows.
    """
    out = Path(out)
    run_id = speech_run_id(name, mc, seed)
    runs_path = out / "runs.csv"
    if runs_path.is_file():
        prev = pd.read_csv(runs_path)
        if (prev.run_id == run_id).any():
            return prev[prev.run_id == run_id]
    if schedule.listen_every % tc.checkpoint_every:
        raise ValueError(f"listen_every ({schedule.listen_every}) must be a multiple of checkpoint_every ({tc.checkpoint_every})")
    meta = {"run_id": run_id, "model": name, "config": mc.name, "backbone": mc.backbone, "seed": seed,
            "decoder_input": mc.decoder_input, "decoder_causal": mc.decoder_causal, "judge_id": judge.judge_id,
            "codec_id": corpus.codec_id, "corpus_hash": corpus.corpus_hash, "generation": generation_name(generate_kw),
            **(extra or {})}
    quick = eval_sentences(corpus, schedule.listen_sentences)
    refs = style_references(corpus, eval_sentences(corpus))
    curve_path = out / "curve.csv"
    heard = set()
    if curve_path.is_file():
        c = pd.read_csv(curve_path)
        heard = set(c.loc[c.run_id == run_id, "step"])
    ckpt_dir = out / "checkpoints"
    points = list(range(schedule.listen_every, tc.steps, schedule.listen_every)) + [tc.steps]
    res = None
    for point in points:
        if point in heard and point != tc.steps:   # heard before a kill: its checkpoint is at or past this point
            continue
        res = run_training(mc, tc, corpus, seed, run_id, ckpt_dir, device, stop_after=point, progress=progress)
        if point in heard:
            continue
        s = summarize_speech(measure(res["model"], corpus, judge, quick, refs, modes=("predicted",), with_mcd=False,
                                     generate_kw=generate_kw)
                             .assign(model=name))
        row = {**meta, "step": res["step"], "train_minutes": res["wall_s"] / 60, **s.iloc[0].drop(["model", "durations"]).to_dict()}
        _append(curve_path, row)
        if progress:
            print(f"[speech] {name} step {res['step']}: PER {row['per']:.1f} % CER {row['cer']:.1f} % "
                  f"({row['train_minutes']:.1f} training min)")
    utts = eval_sentences(corpus, schedule.final_sentences)
    sent = measure(res["model"], corpus, judge, utts, refs, modes=schedule.final_modes,
                   wav_dir=out / "wavs" / wav_folder(mc.name, seed, generate_kw) if keep_wavs else None,
                   n_wavs=schedule.n_wavs, generate_kw=generate_kw).assign(**meta)
    with locked(out):
        upsert_rows(out / "sentences.csv", sent)
    curve = pd.read_csv(curve_path)
    curve = curve[curve.run_id == run_id].sort_values("step")
    summary = summarize_speech(sent.assign(model=name)).assign(**meta)
    for th in ERROR_MILESTONES:
        hit = curve[curve[PRIMARY_METRIC] <= th]
        summary[f"step_to_{PRIMARY_METRIC}_{th}"] = hit.step.iloc[0] if len(hit) else np.nan
        summary[f"minutes_to_{PRIMARY_METRIC}_{th}"] = hit.train_minutes.iloc[0] if len(hit) else np.nan
    tr = res["summary"] or {}
    summary = summary.assign(steps=tc.steps, listen_every=schedule.listen_every, train_minutes=res["wall_s"] / 60,
                             step_ms=tr.get("step_ms", np.nan), params_total=tr.get("params_total", np.nan),
                             final_val_acc=tr.get("final_val_acc", np.nan),
                             final_val_acc_cb0=tr.get("final_val_acc_cb0", np.nan),
                             final_val_ce=tr.get("final_val_ce", np.nan),
                             **mc.to_row(), **tc.to_row(), **environment_row(device))
    export_model(res["model"], out / "models" / f"{run_id}.pt")
    with locked(out):
        if res["curve"] is not None and len(res["curve"]):
            upsert_rows(out / "tf_curves.csv", res["curve"].assign(**meta), key=("run_id", "step"))
        upsert_rows(runs_path, summary)
    return summary


def export_model(model: TTSModel, path: Path) -> None:
    """The trained weights and their configuration alone (no optimizer), loadable with weights_only=True."""
    atomic_torch_save({"model_config": model.cfg.to_dict(), "state_dict": model.state_dict()}, path)


def load_model(path: Path, device: str = "cpu") -> TTSModel:
    blob = torch.load(path, weights_only=True, map_location=device)
    model = TTSModel(ModelConfig.from_dict(blob["model_config"])).to(device)
    model.load_state_dict(blob["state_dict"])
    return model.eval()


@contextmanager
def locked(folder: Path):
    """Serialise read-modify-write of a folder's CSVs between processes (runs side by side share them)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _append(path: Path, row: dict) -> None:
    with locked(path.parent):
        upsert_rows(path, pd.DataFrame([row]), key=("run_id", "step"))


def write_baselines(corpus: Corpus, judge: Judge, out: Path, n: int | None = None) -> pd.DataFrame:
    """baselines.csv (one row per sentence x condition) and its summary, reused when judge and corpus match."""
    path = Path(out) / "baselines.csv"
    if path.is_file():
        b = pd.read_csv(path)
        if (b.judge_id == judge.judge_id).all() and (b.corpus_hash == corpus.corpus_hash).all() and len(b):
            return b
    b = baselines(corpus, judge, eval_sentences(corpus, n)).assign(judge_id=judge.judge_id, codec_id=corpus.codec_id,
                                                                    corpus_hash=corpus.corpus_hash)
    atomic_write_csv(b, path)
    return b


# ----------------------------------------------------------------------------- the shared recipe

def speech_model(backbone: str, profile: str = "cpu", **overrides) -> ModelConfig:
    """The speech run's model: Phase 1's size (cpu: L4 + 2 encoder layers, H128) for every backbone,
    with the decoder recipe chosen by the decoder ablation (`ModelConfig`'s default)."""
    size = {"smoke": dict(n_layers=1, n_enc_layers=1, d_model=32, n_heads=2, mamba2_head_dim=16),
            "cpu": dict(n_layers=4, n_enc_layers=2, d_model=128, n_heads=4),
            "paper": dict(n_layers=6, n_enc_layers=3, d_model=256, n_heads=4)}[profile]
    extra = dict(expand=2.0) if backbone == "mamba2" else dict(expand=1.5)
    return ModelConfig(backbone=backbone, conv_kernels=(3, 5), **{**size, **extra, **overrides})


def speech_training(profile: str = "cpu", **overrides) -> TrainConfig:
    """One training budget for every backbone (steps, not minutes, so that it is reproducible)."""
    tc = {"smoke": TrainConfig(steps=4, batch_size=2, crop_frames=48, eval_every=2, eval_train_items=2,
                               eval_val_items=2, warmup=1, checkpoint_every=2),
          # ~10 min of steps per model on this 2-core machine, two runs side by side at one thread each
          "cpu": TrainConfig(steps=600, batch_size=8, crop_frames=192, eval_every=150, eval_train_items=16,
                             eval_val_items=16, warmup=50, checkpoint_every=150, lr=2e-3),
          "paper": TrainConfig(steps=4000, batch_size=16, crop_frames=None, eval_every=500, warmup=200,
                               checkpoint_every=500, lr=1e-3)}[profile]
    return replace(tc, **overrides)


SPEECH_SCHEDULES = {"smoke": SpeechSchedule(listen_every=2, listen_sentences=2, final_sentences=3, n_wavs=1),
                    "cpu": SpeechSchedule(), "paper": SpeechSchedule(listen_every=500)}

# the decoder ablation: one backbone (the hybrid, Phase 1's), every recipe, the same budget
DECODER_RECIPES = {
    "prev_codes": dict(decoder_input="prev_codes"),
    "prev_codes_dropout": dict(decoder_input="prev_codes_dropout"),
    "none": dict(decoder_input="none", decoder_causal=True),
    "none_bidirectional": dict(decoder_input="none", decoder_causal=False),
}
ABLATION_BACKBONE = "hybrid"
SPEECH_BACKBONES = ("transformer", "hybrid", "mamba", "mamba2")


def run_speech(jobs: list[tuple[str, ModelConfig]], corpus: Corpus, judge: Judge, out: Path, profile: str = "cpu",
               seed: int = 0, device: str = "cpu", progress: bool = True, steps: int | None = None,
               lr: float | None = None) -> pd.DataFrame:
    """train_and_listen for each (name, config) with the profile's budget; returns runs.csv.
    `steps`: another budget (listening every tenth of it); the runs are named `<name>-<steps>steps`
    so that they never take the place of the default budget's rows; `lr`: another peak learning rate
    (`<name>-lr<lr>`)."""
    tc, schedule = speech_training(profile), SPEECH_SCHEDULES[profile]
    if steps and steps != tc.steps:
        tc, schedule = listen_schedule(replace(tc, steps=steps), schedule)
        jobs = [(f"{name}-{steps}steps", mc) for name, mc in jobs]
    if lr and lr != tc.lr:            # another peak learning rate: named too
        tc = replace(tc, lr=lr)
        jobs = [(f"{name}-lr{lr:g}", mc) for name, mc in jobs]
    for name, mc in jobs:
        train_and_listen(name, mc, tc, corpus, judge, out, schedule, seed, device, progress)
    with locked(Path(out)):
        write_baselines(corpus, judge, out, schedule.final_sentences)
    return pd.read_csv(Path(out) / "runs.csv")


def ablation_jobs(profile: str = "cpu") -> list[tuple[str, ModelConfig]]:
    return [(ABLATION_BACKBONE, speech_model(ABLATION_BACKBONE, profile, **kw)) for kw in DECODER_RECIPES.values()]


def backbone_jobs(profile: str = "cpu", backbones=SPEECH_BACKBONES) -> list[tuple[str, ModelConfig]]:
    return [(b, speech_model(b, profile)) for b in backbones]


def publish_speaker(out: Path, corpus: Corpus, profile: str = "cpu", backbones=SPEECH_BACKBONES,
                    device: str = "cpu") -> dict:
    """Make out/speaker.pt the best speech model (lowest judge error with predicted durations among the
    backbone runs of the default recipe), for `python -m ssmtts.speak`. Its weights come from the run's
    export, or, when only the committed CSVs exist (a fresh clone), from retraining the run (seeded)."""
    out = Path(out)
    runs = pd.read_csv(out / "runs.csv")
    default = {speech_model(b, profile).name for b in backbones}
    cand = runs[(runs.durations == "predicted") & runs.config.isin(default)].sort_values(PRIMARY_METRIC)
    if cand.empty:
        raise ValueError(f"no speech run of the default recipe in {out / 'runs.csv'}: run `make speech` first")
    best = cand.iloc[0]
    info = {"run_id": best.run_id, "config": best.config, "backbone": best.backbone, PRIMARY_METRIC: float(best[PRIMARY_METRIC]),
            "cer": float(best.cer), "judge_id": best.judge_id, "codec_id": best.codec_id, "corpus_hash": best.corpus_hash}
    speaker, meta = out / "speaker.pt", out / "speaker.json"
    published = json.loads(meta.read_text()) if speaker.is_file() and meta.is_file() else {}
    if published.get("run_id") == best.run_id and published.get("codec_id") == corpus.codec_id:
        return info     # (a speaker of another machine's codec fit is replaced: its tokens would decode to noise)
    export = out / "models" / f"{best.run_id}.pt"
    if not export.is_file():
        info["codec_id"] = corpus.codec_id      # retrained here: on this corpus's codec, whatever runs.csv's was
        mc = speech_model(best.backbone, profile)
        print(f"[speech] {best.run_id}: weights not here (a fresh clone keeps CSVs), retraining it (seed {best.seed}) ...")
        res = run_training(mc, speech_training(profile), corpus, int(best.seed), best.run_id, out / "checkpoints", device)
        export_model(res["model"], export)
    shutil.copyfile(export, speaker)
    meta.write_text(json.dumps(info, indent=1) + "\n")
    return info


def main(argv=None):
    """`python -m ssmtts.speech`: the decoder ablation and/or the speech run per backbone (resumable)."""
    import argparse

    from .corpus.build import UserCorpusError, build_corpus
    from .corpus.text import TextError
    from .judge import judge_for
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--profile", default="cpu")
    p.add_argument("--out", default=None, help="default: results/speech (smoke: results/smoke/speech)")
    p.add_argument("--what", default="all", choices=["ablation", "backbones", "all"])
    p.add_argument("--only", default=None, help="comma-separated backbones or recipes to run (others skipped)")
    p.add_argument("--codec", default=current().codec)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="initialisation and data order (runs named ...-s<seed>)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a ModelConfig field of every job (e.g. pos_emb_std=1.0); its name says so")
    p.add_argument("--lr", type=float, default=None, help="another peak learning rate; runs named <name>-lr<lr>")
    p.add_argument("--steps", type=int, default=None, help="a longer (or shorter) budget than the profile's; "
                   "runs named <name>-<steps>steps")
    p.add_argument("--extra-text", action="append", default=[], type=Path, metavar="FILE",
                   help="more training sentences (one per line) on top of the shipped text: another corpus (its own "
                        "codec fit, judge and corpus hash), so give it its own --out")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    out = Path(a.out or ("results/smoke/speech" if a.profile == "smoke" else "results/speech"))
    try:
        corpus = build_corpus(codec=a.codec, extra_text=a.extra_text)
    except (UserCorpusError, TextError) as e:     # no such file, a sentence outside the vocabulary, a user's corpus
        p.error(str(e))
    judge = judge_for(corpus, a.profile)
    jobs = (ablation_jobs(a.profile) if a.what in ("ablation", "all") else []) + \
           (backbone_jobs(a.profile) if a.what in ("backbones", "all") else [])
    if a.only:
        keep = set(a.only.split(","))
        recipe_of = {speech_model(ABLATION_BACKBONE, a.profile, **kw).name: r for r, kw in DECODER_RECIPES.items()}
        jobs = [(n, mc) for n, mc in jobs if n in keep or recipe_of.get(mc.name) in keep]
    if a.set:   # after --only: an override may suit only the jobs kept (mamba_bidirectional: pure Mamba)
        try:
            overrides = ModelConfig.parse_overrides(a.set)
            jobs = [(n, mc.with_overrides(overrides)) for n, mc in jobs]
        except ConfigError as e:
            p.error(str(e))
    seen, unique = set(), []
    for n, mc in jobs:                       # the ablation's default-recipe hybrid is the backbone run's hybrid
        if (n, mc.name) not in seen:
            seen.add((n, mc.name)), unique.append((n, mc))
    runs = run_speech(unique, corpus, judge, out, a.profile, seed=a.seed, steps=a.steps, lr=a.lr)
    cols = ["model", "config", "durations", "n", "per", "per_lo", "per_hi", "cer", "mcd_db", "dur_mae_frames", "rtf_tokens"]
    print(runs[[c for c in cols if c in runs]].round(2).to_string(index=False))


if __name__ == "__main__":
    main()
