"""Profiles and per-phase run grids, and the runner that writes results/<phase>/*.csv.

A phase is a function `phaseN(profile, **options) -> (models, trains)`: `models` is a list of
(label, ModelConfig) and `trains` maps each protocol to its TrainConfig. Every (model,
protocol, seed) is one run. Labels name the configuration of the original reports (e.g.
"L4_H768_E1.5"); the ModelConfig is that point scaled to the profile (its `name` says which).

Profiles: `smoke` (tests/CI, seconds), `cpu` (default: a 2-core laptop, well under an hour per
phase), `paper` (the reported sizes, for a GPU). Widths scale by WIDTH_SCALE and are rounded
to a multiple of 8; depths and expand factors are kept as reported.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from .corpus.build import Corpus
from .executors import EXECUTORS, run_jobs
from .models import ModelConfig, TTSModel
from .models.config import ConfigError
from .runtime import SCAN_BACKENDS, configure, current
from .train.loop import TrainConfig, run_training
from .train.results import environment_row, upsert_rows

if TYPE_CHECKING:
    from .speech import SpeechSchedule

PROFILES = ("smoke", "cpu", "paper")
WIDTH_SCALE = {"smoke": 1 / 24, "cpu": 1 / 8, "paper": 1}
ENC_LAYERS = {"smoke": 1, "cpu": 2, "paper": 3}


# The phases' first-design results (protocols `reported` and `heldout`) were made with the decoder that reads the
# previous frame's codes, scored by teacher-forced token accuracy; they keep it, so their rows stay reproducible.
PHASE_DECODER = dict(decoder_input="prev_codes", decoder_causal=True)
# The re-run's protocol `speech` (docs/preregistration.md) trains each configuration with the speech recipe
# (ModelConfig's default decoder: text, style and position only, looking both ways) on the training split and
# has the judge listen to its free-running speech on unseen sentences (ssmtts.speech.train_and_listen).
SPEECH_DECODER = dict(decoder_input="none", decoder_causal=False)
# phases re-run under the pre-registered design; the others still hold first-design results only
SPEECH_PHASES = ("phase1", "phase2", "phase3", "phase4", "phase5")
# the final measurement's duration modes: the primary outcome uses predicted durations; Phase 1 also measured
# generation with the true durations (secondary), the later phases skip it to halve the final measurement's
# decoding (docs/preregistration.md, deviation 2)
FINAL_MODES = {"phase1": ("predicted", "true")}
# listen every 10 % of the budget (the pre-registration said 5 %: deviation 1 in docs/preregistration.md)
LISTEN_FRACTION = 0.1


def width(reported_width: int, profile: str) -> int:
    """A reported hidden width scaled to the profile: 768 -> 32 (smoke), 96 (cpu), 768 (paper)."""
    return max(8, round(reported_width * WIDTH_SCALE[profile] / 8) * 8)


def n_params(mc: ModelConfig) -> int:
    """Parameter count without allocating weights (the model is built on the meta device)."""
    with torch.device("meta"):
        return TTSModel(mc).param_counts()["total"]


def _protocols(profile: str, reported_steps: int | None = None, **cpu) -> dict[str, TrainConfig]:
    """The two utterance protocols: `heldout` (train split -> validation) and `reported`
    (the original set-up: one ~4 s fragment trained and scored on itself; scoring it is cheap,
    so it is scored every 10 steps and the validation side of its curve uses 8 utterances)."""
    train = {"smoke": TrainConfig(steps=6, batch_size=2, crop_frames=48, eval_every=3, eval_train_items=4,
                                  eval_val_items=4, warmup=2, checkpoint_every=3, reported_frames=96),
             # short on purpose: ~80 s per (configuration, seed) on one core, both protocols
             "cpu": TrainConfig(**{**dict(steps=80, batch_size=8, crop_frames=96, eval_every=20, warmup=10, lr=2e-3,
                                          checkpoint_every=20, eval_train_items=12, eval_val_items=12), **cpu}),
             "paper": TrainConfig(steps=1000, batch_size=16, crop_frames=None, eval_every=50, warmup=100,
                                  lr=1e-3, checkpoint_every=100)}[profile]
    reported = replace(train, protocol="reported", reported_items=1, batch_size=1, crop_frames=None,
                       eval_every=10 if profile == "cpu" else train.eval_every,
                       eval_val_items=(8 if reported_steps else 4) if profile == "cpu" else train.eval_val_items,
                       steps=(reported_steps or 100) if profile == "cpu" else train.steps,
                       warmup=min(train.warmup, 20))
    return {"reported": reported, "heldout": train}


def speech_protocol(profile: str, phase: str = "phase1") -> tuple[TrainConfig, SpeechSchedule]:
    """The re-run's training budget (the speech runs': cpu 600 steps of 8 x 192 frames) and listening schedule:
    the judge hears 12 unseen sentences every LISTEN_FRACTION of the budget, the whole unseen set at the end
    (with the phase's FINAL_MODES)."""
    from .speech import SPEECH_SCHEDULES, listen_schedule, speech_training
    schedule = replace(SPEECH_SCHEDULES[profile], final_modes=FINAL_MODES.get(phase, ("predicted",)))
    if profile == "smoke":        # 4 steps: the smoke schedule's own listenings (steps 2 and 4)
        return speech_training(profile), schedule
    return listen_schedule(speech_training(profile), schedule, LISTEN_FRACTION)


def for_protocol(mc: ModelConfig, protocol: str) -> ModelConfig:
    """A phase configuration as a protocol trains it: the speech recipe's decoder under `speech`."""
    return replace(mc, **SPEECH_DECODER) if protocol == "speech" else mc


def _with_speech(phase: str, profile: str, trains: dict) -> dict:
    """A phase's protocols plus `speech` once the phase is in SPEECH_PHASES (re-run, or ready to be: Phase 5's
    code path exists but is switched on only with its runs, so `make phase5` on committed results trains nothing)."""
    return {**trains, "speech": speech_protocol(profile, phase)[0]} if phase in SPEECH_PHASES else trains


def _mamba(profile: str, layers: int = 4, reported_width: int = 768, expand: float = 1.5, **kw) -> ModelConfig:
    return ModelConfig(backbone="mamba", n_layers=layers, n_enc_layers=ENC_LAYERS[profile],
                       d_model=width(reported_width, profile), expand=expand, **{**PHASE_DECODER, **kw})


def phase1(profile: str):
    """Transformer core vs Mamba+Conv hybrid, same width and depth."""
    size = {"smoke": dict(n_layers=1, n_enc_layers=1, d_model=32, n_heads=2),
            "cpu": dict(n_layers=4, n_enc_layers=2, d_model=128, n_heads=4),
            "paper": dict(n_layers=6, n_enc_layers=3, d_model=256, n_heads=4)}[profile]
    models = [("transformer", ModelConfig(backbone="transformer", **size, **PHASE_DECODER)),
              ("hybrid", ModelConfig(backbone="hybrid", expand=1.5, conv_kernels=(3, 5), **size, **PHASE_DECODER))]
    # (the committed cpu results of Phase 1 were made with these longer runs)
    trains = _protocols(profile, reported_steps=300, steps=240, batch_size=8, crop_frames=192, eval_every=30,
                        warmup=30, checkpoint_every=30, eval_train_items=16, eval_val_items=None)
    return models, _with_speech("phase1", profile, trains)


PHASE2_KERNELS = [(3, 5), (5, 7), (7, 9), (9, 11), (3, 9)]


def phase2(profile: str):
    """Pure Mamba vs Mamba+Conv hybrids with five conv receptive fields, plus a parameter-matched pure Mamba.

    The original pure model had fewer parameters than the hybrids (38.0M vs 42.6M); the matched
    one adds decoder layers until its count is closest to the (3, 5) hybrid's.
    """
    pure = _mamba(profile)
    models = [("pure", pure)]
    for k in PHASE2_KERNELS:
        models.append((f"hybrid{k[0]}-{k[1]}", replace(pure, backbone="hybrid", conv_kernels=k)))
    target = n_params(models[1][1])
    layers = min(range(pure.n_layers, 4 * pure.n_layers + 1), key=lambda n: abs(n_params(replace(pure, n_layers=n)) - target))
    models.append(("pure-matched", replace(pure, n_layers=layers)))
    return models, _with_speech("phase2", profile, _protocols(profile))


# (label, decoder layers, reported hidden width, expand): the reported points and the small-width thresholds
PHASE3_POINTS = [("L4_H768_E1.5", 4, 768, 1.5), ("L6_H512_E1.5", 6, 512, 1.5), ("L4_H768_E2.5", 4, 768, 2.5),
                 ("L6_H768_E2.0", 6, 768, 2.0), ("L6_H768_E3.0", 6, 768, 3.0), ("L12_H768_E1.5", 12, 768, 1.5),
                 ("L4_H384_E1.5", 4, 384, 1.5), ("L4_H256_E1.5", 4, 256, 1.5)]


def phase3(profile: str):
    """Pure Mamba sweep over layers x hidden x expand at the reported points (widths scaled to the profile)."""
    return [(label, _mamba(profile, L, H, E)) for label, L, H, E in PHASE3_POINTS], \
        _with_speech("phase3", profile, _protocols(profile))


def phase4(profile: str):
    """Stateless vs stateful chunk training of L4_H768_E1.5 (scaled) on long samples cut into chunks."""
    chunk = {"smoke": dict(steps=6, chunk_frames=48, chunk_samples=2, chunk_train_utts=4, chunk_val_samples=2,
                           chunk_val_utts=4, eval_every=3, checkpoint_every=3, warmup=2),
             "cpu": dict(steps=240, chunk_frames=96, chunk_samples=4, chunk_train_utts=48, chunk_val_samples=2,
                         chunk_val_utts=16, eval_every=30, checkpoint_every=30, warmup=20, lr=2e-3),
             # 4 samples x ~116 chunks as reported
             "paper": dict(steps=1000, chunk_frames=96, chunk_samples=4, chunk_train_utts=80, chunk_val_samples=2,
                           chunk_val_utts=38, eval_every=50, checkpoint_every=100, warmup=100, lr=1e-3)}[profile]
    base = TrainConfig(batch_size=chunk["chunk_samples"], crop_frames=None, **chunk)
    trains = {p: replace(base, protocol=p) for p in ("stateless", "stateful")}
    return [("L4_H768_E1.5", _mamba(profile))], _with_speech("phase4", profile, trains)


# Phase 4's re-run (docs/preregistration.md, deviation 6): the speech recipe cannot carry a state (its decoder
# looks both ways), so Phase 4 trains a *causal* decoder that reads text, style and position only, on chunks of the
# whole training split concatenated into long samples, stateless or stateful, with as many frames per step as the
# speech recipe (16 x 96 = 8 x 192); the judge hears sentences generated chunk by chunk the same way, the stateful
# model carrying its state from chunk to chunk.
PHASE4_SPEECH_DECODER = dict(decoder_input="none", decoder_causal=True)


def phase4_speech(profile: str) -> dict[str, tuple[TrainConfig, dict]]:
    """Phase 4's two speech protocols: protocol -> (training, keyword arguments of `generate`)."""
    tc, _ = speech_protocol(profile, "phase4")
    chunk = {"smoke": dict(chunk_frames=48, chunk_samples=2, chunk_train_utts=4, chunk_val_samples=2, chunk_val_utts=4),
             "cpu": dict(chunk_frames=96, chunk_samples=16, chunk_train_utts=None, chunk_val_samples=2,
                         chunk_val_utts=16, chunk_eval_train_utts=16),
             "paper": dict(chunk_frames=96, chunk_samples=16, chunk_train_utts=None, chunk_val_samples=2,
                           chunk_val_utts=38, chunk_eval_train_utts=38)}[profile]
    return {p: (replace(tc, protocol=p, batch_size=chunk["chunk_samples"], crop_frames=None, **chunk),
                {"chunk_frames": chunk["chunk_frames"], "carry_state": p == "stateful"})
            for p in ("stateless", "stateful")}


def speech_arms(phase: str, profile: str, models) -> list[tuple[str, ModelConfig, TrainConfig, dict]]:
    """What a phase's `speech` protocol trains: (label, model, training, generate keyword arguments) per arm. Phase 4:
    one configuration, its two chunk protocols as the labels; every other phase: its configurations, the speech
    recipe's decoder and budget."""
    if phase == "phase4":
        return [(p, replace(mc, **PHASE4_SPEECH_DECODER), tc, kw) for label, mc in models
                for p, (tc, kw) in phase4_speech(profile).items()]
    tc, _ = speech_protocol(profile, phase)
    return [(label, for_protocol(mc, "speech"), tc, {}) for label, mc in models]


def phase5(profile: str, embed_widths: list[int] | None = None):
    """Embedding width E_emb of the text, audio and positional tables at the profile's H.

    Round 1 (default): E_emb in {H/3, 2H/3, H}. Round 2 passes `embed_widths` around the round-1
    winner (the notebook picks it from the round-1 CSVs). E_emb = H has no projection. The re-run's
    protocol `speech` covers round 1 (the claims compare H/3 and H with each other and with 2H/3).
    """
    base = _mamba(profile)
    H = base.d_model
    widths = embed_widths or [H // 3, 2 * H // 3, H]
    trains = _protocols(profile)
    if embed_widths is None:
        trains = _with_speech("phase5", profile, trains)
    return [(f"Emb{e}", replace(base, d_embed=int(e))) for e in widths], trains


def phase5_round2(runs: pd.DataFrame, H: int, round1: list[int]) -> dict:
    """Round 2 of the greedy search: the round-1 winner (highest mean held-out validation accuracy,
    ties to the narrower table) and its neighbours winner ± H/6 that round 1 did not try."""
    r1 = runs[(runs.protocol == "heldout") & (runs.status == "finished") & runs.model_d_embed.isin(round1)]
    if r1.empty:
        raise ValueError("phase5 round 2 needs finished heldout runs of round 1 in runs.csv")
    score = r1.groupby("model_d_embed")["best_val_acc"].mean()
    winner = int(min(score.index[score == score.max()]))
    step = max(1, H // 6)
    widths = [w for w in (winner - step, winner + step) if w > 0 and w not in round1]
    return {"winner": winner, "widths": widths, "scores": score.to_dict()}


def _is_oom(e: BaseException) -> bool:
    msg = str(e).lower()
    return isinstance(e, (MemoryError, torch.cuda.OutOfMemoryError)) or "out of memory" in msg \
        or "can't allocate memory" in msg


PHASES = {"phase1": phase1, "phase2": phase2, "phase3": phase3, "phase4": phase4, "phase5": phase5}


def run_phase(phase: str, corpus: Corpus, profile: str = "cpu", seeds=(0, 1, 2), out_dir: str | Path = "results",
              protocols=None, device: str | None = None, progress: bool = True, judge=None, labels=None,
              executor: str | None = None, threads: int = 1, overrides: dict | None = None, **options) -> dict:
    """Run every (config, protocol, seed) not yet finished and upsert its rows into the CSVs.

    Files in out_dir/<phase>/: runs.csv (one row per run), curves.csv (one row per
    evaluation), milestones.csv (one row per run x metric x threshold) and, for chunked
    protocols, positions.csv (accuracy per chunk position at each evaluation). The `speech`
    protocol writes out_dir/<phase>/speech/ instead (ssmtts.speech.train_and_listen: runs.csv,
    curve.csv of the listenings, sentences.csv, baselines.csv) and is returned as "speech_runs",
    "listening", "baselines". Unfinished runs resume from their checkpoints. `protocols` None runs
    every protocol the phase defines; `labels` None every configuration (else only those, e.g. to
    run two processes side by side); `judge` (default: the profile's) listens to speech runs;
    `executor` (default: the runtime config's, EXECUTOR) "serial" or "ray" (ssmtts.executors: every run a
    task of `threads` CPUs or one GPU, rows written here as they come back); `options` go to the phase
    function (e.g. embed_widths for phase5); `overrides` replace ModelConfig fields of every configuration run
    (e.g. {"mamba_bidirectional": True}: the look-ahead re-runs, docs/preregistration.md deviations 10, 13; its
    configurations are named so, and its runs belong in their own out_dir).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose from {PROFILES}")
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}: choose from {', '.join(PHASES)}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    executor = executor or current().executor
    out = Path(out_dir) / phase
    out.mkdir(parents=True, exist_ok=True)
    models, trains = PHASES[phase](profile, **options)
    if labels is not None:
        missing = set(labels) - {label for label, _ in models}
        if missing:
            raise ValueError(f"{phase} has no configuration {sorted(missing)}: it has {[label for label, _ in models]}")
        models = [(label, mc) for label, mc in models if label in labels]
    if overrides:
        models = [(label, mc.with_overrides(overrides)) for label, mc in models]
    unknown = set(protocols or []) - set(trains)
    if unknown:
        raise ValueError(f"{phase} has no protocol {sorted(unknown)}: it defines {sorted(trains)}")
    protocols = list(protocols or trains)
    jobs = phase_jobs(phase, corpus, profile, seeds, out, models, trains, [p for p in protocols if p != "speech"], device,
                      progress and executor == "serial")
    run_jobs(jobs, train_job, lambda job, result: record_run(out, job, result, executor), executor, threads,
             gpus=1 if device == "cuda" and executor == "ray" else 0, address=current().ray_address)
    if "speech" in protocols:
        judge = _speech_runs(phase, corpus, profile, seeds, out, models, judge, device, progress, executor, threads)
    files = [f for f in ("runs", "curves", "milestones", "positions") if (out / f"{f}.csv").is_file()]
    res = {name: pd.read_csv(out / f"{name}.csv") for name in files}
    speech = {"speech_runs": "runs", "listening": "curve", "baselines": "baselines"}
    res.update({k: pd.read_csv(out / "speech" / f"{f}.csv") for k, f in speech.items() if (out / "speech" / f"{f}.csv").is_file()})
    return res


def phase_jobs(phase, corpus, profile, seeds, out: Path, models, trains, protocols, device, progress: bool = False):
    """One job (a plain dict, ssmtts.executors) per (config, protocol, seed) of the first-design protocols whose
    run is not finished yet (finished, diverged and out-of-memory runs are rows already)."""
    runs_path = out / "runs.csv"
    done = set()
    if runs_path.is_file():
        prev = pd.read_csv(runs_path)
        done = set(prev.loc[prev.status.isin(["finished", "diverged", "out_of_memory"]), "run_id"])
    ckpt_dir = Path(current().checkpoint_dir) / phase if current().checkpoint_dir else out / "checkpoints"
    jobs = []
    for protocol in protocols:
        for label, mc in models:
            for seed in seeds:
                run_id = f"{phase}-{profile}-{protocol}-{mc.name}-s{seed}"
                if run_id in done:
                    continue
                meta = {"run_id": run_id, "phase": phase, "profile": profile, "protocol": protocol, "label": label,
                        "config": mc.name, "seed": seed, "codec_id": corpus.codec_id, "corpus_hash": corpus.corpus_hash}
                jobs.append({"meta": meta, "model": mc, "train": trains[protocol], "corpus": corpus,
                             "ckpt_dir": str(ckpt_dir), "device": device, "progress": progress})
    return jobs


def train_job(job: dict) -> dict:
    """Train one run (resuming from its checkpoint) and return its rows: `curve`, `milestones`, `positions`
    (DataFrames) and `row` (the runs.csv row), or an out-of-memory row. Runs wherever the executor puts it."""
    meta, mc, tc = job["meta"], job["model"], job["train"]
    t0 = time.time()
    try:
        res = run_training(mc, tc, job["corpus"], meta["seed"], meta["run_id"], Path(job["ckpt_dir"]), job["device"],
                           progress=job["progress"])
    except (MemoryError, RuntimeError) as e:   # out of memory: a row, and the sweep goes on
        if not _is_oom(e):
            raise
        res = {"summary": {"status": "out_of_memory", "error": str(e).splitlines()[0][:200]}}
    row = {**meta, **res["summary"], "elapsed_s": time.time() - t0, **mc.to_row(), **tc.to_row(),
           **environment_row(job["device"])}     # where it ran: the worker's runtime, threads and commit
    return {"row": row, **{k: res[k] for k in ("curve", "milestones", "positions") if k in res}}


def record_run(out: Path, job: dict, result: dict, executor: str = "serial") -> None:
    """Upsert a finished job's rows (the driver's side of ssmtts.executors.run_jobs)."""
    for name, file in (("curve", "curves"), ("milestones", "milestones"), ("positions", "positions")):
        df = result.get(name)
        if df is not None and len(df):
            upsert_rows(out / f"{file}.csv", df.assign(**job["meta"]))
    upsert_rows(out / "runs.csv", pd.DataFrame([{**result["row"], "executor": executor}]))


def _speech_runs(phase, corpus, profile, seeds, out: Path, models, judge, device, progress, executor="serial",
                 threads=1):
    """The `speech` protocol: every (configuration, seed) trained with the speech recipe and listened to. Under
    Ray each run is a task that writes its own rows under the folder's lock (its listenings are appended as
    they happen, so a retried task resumes between them): the folder must be on a file system every worker
    sees, with working locks (one machine, or NFS with locking)."""
    from .judge import judge_for
    from .speech import locked, speech_run_id, write_baselines
    _, schedule = speech_protocol(profile, phase)
    folder = out / "speech"
    done = set(pd.read_csv(folder / "runs.csv").run_id) if (folder / "runs.csv").is_file() else set()
    arms = speech_arms(phase, profile, models)
    todo = {speech_run_id(label, mc, seed) for label, mc, _, _ in arms for seed in seeds} - done
    if not todo and (folder / "baselines.csv").is_file():
        return judge      # every run finished and measured: nothing to listen to (no judge is built or trained)
    judge = judge or judge_for(corpus, profile, progress)
    jobs = [{"args": (label, mc, tc, corpus, judge, folder, schedule, seed, device, progress),
             "extra": {"phase": phase, "profile": profile, "label": label, "executor": executor}, "generate_kw": kw}
            for label, mc, tc, kw in arms for seed in seeds if speech_run_id(label, mc, seed) not in done]
    run_jobs(jobs, _speech_job, lambda job, result: None, executor, threads,
             gpus=1 if device == "cuda" and executor == "ray" else 0, address=current().ray_address)
    with locked(folder):                 # processes side by side share the folder
        write_baselines(corpus, judge, folder, schedule.final_sentences)
    return judge


def _speech_job(job: dict):
    from .speech import train_and_listen
    return train_and_listen(*job["args"], extra=job["extra"], generate_kw=job.get("generate_kw"))


def main(argv=None):
    """`python -m ssmtts.phases --phase phase1 [--protocols speech] [--labels hybrid] [--seeds 0,1,2]`: a phase's
    runs without the notebook (resumable; `make phaseN` then finds them done and draws the figures). Two
    processes with disjoint --labels and --threads 1 run side by side on a 2-core machine."""
    import argparse

    from .corpus.build import build_corpus
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--phase", required=True, choices=sorted(PHASES))
    p.add_argument("--profile", default="cpu", choices=PROFILES)
    p.add_argument("--protocols", default=None, help="comma-separated (default: every protocol of the phase)")
    p.add_argument("--labels", default=None, help="comma-separated configuration labels (default: all)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out", default=None, help="default: results (smoke: results/smoke)")
    p.add_argument("--codec", default=current().codec)
    p.add_argument("--threads", type=int, default=current().threads, help="torch CPU threads (0: torch's default)")
    p.add_argument("--scan-backend", default=current().scan_backend, choices=SCAN_BACKENDS,
                   help="the selective scan to use (auto: the fastest available; recorded in every row)")
    p.add_argument("--executor", default=current().executor, choices=EXECUTORS,
                   help="serial, or ray: every run a Ray task (RAY_ADDRESS joins a cluster; see ssmtts.executors)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a ModelConfig field of every configuration run (e.g. mamba_bidirectional=True, "
                        "with its own --out); the configurations' names say so")
    a = p.parse_args(argv)
    configure(threads=a.threads, scan_backend=a.scan_backend, executor=a.executor)
    split = lambda s: s.split(",") if s else None
    try:    # a bad --set, or an override a configuration cannot take (e.g. mamba_bidirectional on a hybrid)
        overrides = ModelConfig.parse_overrides(a.set)
        run_phase(a.phase, build_corpus(codec=a.codec), a.profile, seeds=[int(s) for s in a.seeds.split(",")],
                  out_dir=a.out or ("results/smoke" if a.profile == "smoke" else "results"),
                  protocols=split(a.protocols), labels=split(a.labels), executor=a.executor, threads=a.threads or 1,
                  overrides=overrides)
    except ConfigError as e:
        p.error(str(e))


if __name__ == "__main__":
    main()
