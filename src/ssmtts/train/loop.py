"""One training run: seeded, timed, evaluated, checkpointed, resumable, divergence-safe."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..corpus.build import Corpus
from ..files import atomic_torch_save
from ..models import ModelConfig, TTSModel
from ..runtime import keep_freed_memory, release_freed_memory
from ..models.state import State, detach_state, from_plain, ssm_rms, to_plain
from .chunks import ChunkSet
from .data import eval_batches, fragment, train_batch
from .metrics import (ACC_THRESHOLDS, DUR_THRESHOLDS, duration_loss, finish_counts, head_losses, head_scores,
                      milestones)


PROTOCOLS = ("heldout", "reported", "stateless", "stateful")


@dataclass
class TrainConfig:
    steps: int = 300
    batch_size: int = 8
    crop_frames: int | None = 192     # decoded window per item (None: whole utterances)
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 30
    grad_clip: float = 1.0
    dur_loss_weight: float = 1.0
    eval_every: int = 25
    eval_train_items: int = 32        # fixed training subset scored like the validation set
    eval_val_items: int | None = None  # None: the whole validation split
    eval_batch_size: int = 16
    timing_warmup: int = 5            # steps excluded from the timing medians
    checkpoint_every: int = 50
    protocol: str = "heldout"         # heldout: train split -> val split; reported: tiny set scored on itself;
                                      # stateless / stateful: chunks of long samples (Phase 4, see chunks.py)
    reported_items: int = 1           # reported protocol: number of fixed fragments ...
    reported_frames: int = 300        # ... and their length in frames (300 = 4 s)
    chunk_frames: int = 96            # chunk protocols: frames per chunk
    chunk_samples: int = 4            # ... long training samples (= batch size of a stateful step)
    chunk_train_utts: int | None = 48  # ... training utterances concatenated into them (None: the whole split)
    chunk_val_samples: int = 2        # ... long validation samples
    chunk_val_utts: int = 16          # ... validation utterances concatenated into them
    chunk_eval_train_utts: int | None = None  # ... training utterances of the scored training chunks (None: the
                                      # trained chunks themselves; a long run on the whole split scores a subset)

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.steps <= 0 or self.batch_size <= 0 or self.eval_every <= 0:
            raise ValueError("steps, batch_size and eval_every must be positive")

    def to_row(self, prefix: str = "train_") -> dict:
        return {prefix + k: v for k, v in asdict(self).items()}

    @property
    def chunked(self) -> bool:
        return self.protocol in ("stateless", "stateful")


def datasets(corpus: Corpus, tc: TrainConfig):
    """(training items, fixed train subset for scoring, validation items, reference pool)."""
    train = corpus.split("train")
    val = corpus.split("val")[: tc.eval_val_items] if tc.eval_val_items else corpus.split("val")
    if tc.chunked:
        train_chunks = ChunkSet(train[: tc.chunk_train_utts], tc.chunk_samples, tc.chunk_frames, train)
        val_chunks = ChunkSet(corpus.split("val")[: tc.chunk_val_utts], tc.chunk_val_samples, tc.chunk_frames, train)
        scored = train_chunks if tc.chunk_eval_train_utts is None else \
            ChunkSet(train[: tc.chunk_eval_train_utts], tc.chunk_val_samples, tc.chunk_frames, train)
        return train_chunks, scored, val_chunks, train
    if tc.protocol == "reported":
        long_enough = [u for u in train if u.n_frames >= tc.reported_frames]
        items = [fragment(u, tc.reported_frames) for u in long_enough[: tc.reported_items]]
        return items, items, val, train
    return train, train[: tc.eval_train_items], val, train


def _lr_lambda(tc: TrainConfig):
    def f(step):
        if step < tc.warmup:
            return (step + 1) / tc.warmup
        progress = (step - tc.warmup) / max(1, tc.steps - tc.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


@torch.no_grad()
def evaluate(model: TTSModel, items, ref_pool, tc: TrainConfig, device) -> dict:
    model.eval()
    total, ce_sum, dur_sum, n = {}, 0.0, 0.0, 0
    for batch in eval_batches(items, ref_pool, tc.eval_batch_size, model.cfg.style_frames):
        batch.to(device)
        h, log_dur = model.states(batch.text_ids, batch.durations, batch.codes, batch.ref_codes)
        ce, counts = head_scores(model, h, log_dur, batch)
        dl = duration_loss(log_dur.float(), batch)
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
        # (the mean over batches of each batch's per-frame CE, weighted by items: the definition the committed curves use)
        ce_sum, dur_sum, n = ce_sum + ce * len(batch.uids), dur_sum + float(dl) * len(batch.uids), n + len(batch.uids)
    model.train()
    return {**finish_counts(total, model.cfg.n_codebooks), "ce": ce_sum / n, "dur_loss": dur_sum / n}


@torch.no_grad()
def evaluate_chunks(model: TTSModel, chunks: ChunkSet, stateful: bool, device) -> tuple[dict, pd.DataFrame]:
    """Score every chunk of every long sample in order (state carried if stateful, fresh otherwise).

    Returns the pooled metrics plus the spread over chunk position: variance over positions of
    the token error (%) and of the cross-entropy, and the RMS of the SSM states each chunk
    leaves; and one row per chunk position, with codebook 0's CE (`ce_cb0`, Phase 4's
    pre-registered estimand pairs it by chunk across the two modes) and, for a stateful model, the
    same chunk scored from a fresh state (`ce_cb0_fresh`: what its carried state is worth).
    """
    model.eval()
    total, state, rows = {}, None, []
    for k in range(chunks.n_chunks):
        batch = chunks.batch([(s, k) for s in range(len(chunks.samples))], model.cfg.style_frames).to(device)
        h, log_dur, new_state = model.chunk_states(batch.text_ids, batch.durations, batch.prev_codes,
                                                   batch.ref_codes, state)
        ce, c = head_scores(model, h, log_dur.float(), batch)
        for key, v in c.items():
            total[key] = total.get(key, 0) + v
        row = {"chunk": k, "acc": finish_counts(c, model.cfg.n_codebooks)["acc"], "ce": ce,
               "ce_cb0": c["ce_sum_cb0"] / c["frames"], "state_rms": ssm_rms(new_state)}
        if stateful:
            h0, ld0, _ = model.chunk_states(batch.text_ids, batch.durations, batch.prev_codes, batch.ref_codes, None)
            c0 = head_scores(model, h0, ld0.float(), batch)[1]
            row["ce_cb0_fresh"] = c0["ce_sum_cb0"] / c0["frames"]
        rows.append(row)
        state = new_state if stateful else None
    model.train()
    pos = pd.DataFrame(rows)
    out = {**finish_counts(total, model.cfg.n_codebooks), "ce": float(pos.ce.mean()),
           "err_var_chunks": float((100 - pos.acc).var(ddof=0)), "ce_var_chunks": float(pos.ce.var(ddof=0)),
           "state_rms": float(pos.state_rms.mean())}
    return out, pos


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _memory_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    import psutil
    return psutil.Process().memory_info().rss / 2**20


def _plain(x):
    """numpy scalars and arrays -> Python numbers and lists, recursively, so a checkpoint holds only
    what `torch.load(weights_only=True)` accepts (tensors, containers, numbers, strings)."""
    if isinstance(x, State):
        return to_plain(x)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def load_checkpoint(path: Path) -> dict | None:
    """A run's checkpoint loaded with weights_only=True (a shared file cannot run code), or None, with a
    message, when it is unreadable (truncated by a kill, or written by a version that pickled other
    objects): the run then starts from scratch and overwrites it."""
    try:
        return torch.load(path, weights_only=True)
    except Exception as e:   # truncated zip, unpickling refused, ...
        print(f"[train] checkpoint {path} is unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
              "starting this run from scratch")
        return None


def train_step(model: TTSModel, opt, batch, tc: TrainConfig, device, carry=None) -> dict:
    """One optimisation step, as every caller times it (run_training, ssmtts.timing, benchmarks):
    forward to the decoder states (a chunk with `carry` for the chunk protocols), fused head + loss,
    backward, clipping, optimizer. Returns the losses, the frame mask, the chunk's new decoder state
    and the perf_counter marks t0 (start), t1 (after the loss), t2 (after backward); the caller
    reads the end time after its scheduler step."""
    device = torch.device(device)
    _sync(device)
    t0 = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        new_state = None
        if tc.chunked:
            h, log_dur, new_state = model.chunk_states(batch.text_ids, batch.durations, batch.prev_codes,
                                                       batch.ref_codes, carry)
        else:
            h, log_dur = model.states(batch.text_ids, batch.durations, batch.codes, batch.ref_codes,
                                      batch.crop_start, batch.crop_len)
        ce, dl, _, mask = head_losses(model, h, log_dur.float(), batch)
        loss = ce + tc.dur_loss_weight * dl
    _sync(device)
    t1 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    _sync(device)
    t2 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
    opt.step()
    return {"ce": ce, "dur": dl, "loss": loss, "mask": mask, "state": new_state, "t0": t0, "t1": t1, "t2": t2}


def run_training(mc: ModelConfig, tc: TrainConfig, corpus: Corpus, seed: int, run_id: str,
                 ckpt_dir: Path | None = None, device: str | torch.device = "cpu",
                 stop_after: int | None = None, progress: bool = True) -> dict:
    """Train one configuration with one seed and measure it.

    Returns {"summary": dict, "curve": DataFrame (one row per evaluation), "milestones": DataFrame}.
    A checkpoint in ckpt_dir/<run_id>.pt is resumed from; `stop_after` ends the run early
    (as a kill would) right after that step's checkpoint, for tests of resumption.
    A non-finite loss stops the run with status "diverged".
    """
    device = torch.device(device)
    keep_freed_memory()     # no page-by-page refaulting of each step's tensors (ssmtts.runtime)
    release_freed_memory()  # ... and this run's RSS starts from what is live, not an earlier run's peak
    items, train_eval, val, ref_pool = datasets(corpus, tc)
    torch.manual_seed(seed)
    model = TTSModel(mc).to(device)
    # fused: one kernel over all parameters (the foreach version's many small ops were 6 % of a cpu step)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay,
                            fused=device.type in ("cpu", "cuda"))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(tc))
    st = {"step": 0, "curve": [], "times": [], "mem": [], "wall_s": 0.0, "status": "running", "loss_acc": [],
          "carry": None, "positions": []}
    ckpt = Path(ckpt_dir) / f"{run_id}.pt" if ckpt_dir else None
    blob = load_checkpoint(ckpt) if ckpt and ckpt.is_file() else None
    if blob is not None:
        model.load_state_dict(blob["model"]), opt.load_state_dict(blob["opt"]), sched.load_state_dict(blob["sched"])
        torch.set_rng_state(blob["rng"])
        st = {"carry": None, "positions": [], **blob["state"]}
        st["carry"] = from_plain(st["carry"])       # the decoder state a stateful run carries (typed again)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    bar = tqdm(range(st["step"], tc.steps), desc=run_id, disable=not progress, leave=False)
    stateful = tc.protocol == "stateful"
    for step in bar:
        if tc.chunked:
            pairs = items.train_pairs(stateful, tc.batch_size, seed, step)
            batch = items.batch(pairs, mc.style_frames).to(device)
            if not stateful or pairs[0][1] == 0:
                st["carry"] = None                  # fresh state: every stateless chunk, each stateful pass
        else:
            batch = train_batch(items, tc.batch_size, seed, step, mc.style_frames, tc.crop_frames, ref_pool).to(device)
        out = train_step(model, opt, batch, tc, device, st["carry"])
        sched.step()
        _sync(device)
        ce, dl, loss, mask, new_state = out["ce"], out["dur"], out["loss"], out["mask"], out["state"]
        t0, t1, t2 = out["t0"], out["t1"], out["t2"]
        t3 = time.perf_counter()
        st["wall_s"] += t3 - t0
        if stateful:
            st["carry"] = detach_state(new_state)   # carried into the next chunk, no gradient through it
        if not math.isfinite(loss.item()):
            st["status"], st["diverged_at"] = "diverged", step
            break
        st["loss_acc"].append((ce.item(), dl.item()))
        if step >= tc.timing_warmup:
            st["times"].append((t1 - t0, t2 - t1, t3 - t2, t3 - t0, int(mask.sum())))
        st["mem"].append(_memory_mb(device))
        if (step + 1) % tc.eval_every == 0 or step + 1 == tc.steps:
            t_eval = time.perf_counter()
            if tc.chunked:
                (tr, tr_pos), (va, va_pos) = (evaluate_chunks(model, train_eval, stateful, device),
                                              evaluate_chunks(model, val, stateful, device))
                st["positions"] = pd.concat([tr_pos.assign(split="train"), va_pos.assign(split="val")]) \
                    .assign(step=step + 1).to_dict("records")
            else:
                tr, va = evaluate(model, train_eval, ref_pool, tc, device), evaluate(model, val, ref_pool, tc, device)
            ce_mean, dl_mean = np.mean(st["loss_acc"], axis=0)
            st["loss_acc"] = []
            st["eval_s"] = st.get("eval_s", 0.0) + time.perf_counter() - t_eval   # the scoring sets' cost
            st["curve"].append({"step": step + 1, "wall_s": st["wall_s"], "eval_s": time.perf_counter() - t_eval,
                                "lr": sched.get_last_lr()[0],
                                "train_loss_ce": ce_mean, "train_loss_dur": dl_mean,
                                **{f"train_{k}": v for k, v in tr.items()}, **{f"val_{k}": v for k, v in va.items()}})
            bar.set_postfix(train_acc=f"{tr['acc']:.1f}", val_acc=f"{va['acc']:.1f}")
        st["step"] = step + 1
        if ckpt and ((step + 1) % tc.checkpoint_every == 0 or step + 1 == tc.steps):
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            atomic_torch_save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                          "rng": torch.get_rng_state(), "state": _plain(st), "model_config": mc.to_dict()}, ckpt)
        if stop_after is not None and step + 1 >= stop_after and step + 1 < tc.steps:
            return {"summary": None, "curve": pd.DataFrame(st["curve"]), "milestones": None, "model": model,
                    "step": st["step"], "wall_s": st["wall_s"]}
    if st["status"] == "running":
        st["status"] = "finished"
    return _finish(model, mc, tc, st, device) | {"model": model, "step": st["step"], "wall_s": st["wall_s"]}


def _finish(model, mc, tc, st, device) -> dict:
    curve = pd.DataFrame(st["curve"])
    ms = []
    if len(curve):
        for split in ("train", "val"):
            ms += [{"split": split, **r} for r in milestones(curve, f"{split}_acc", ACC_THRESHOLDS)]
            ms += [{"split": split, **r} for r in milestones(curve, f"{split}_dur_acc", DUR_THRESHOLDS)]
    ms = pd.DataFrame(ms)
    times = np.array(st["times"]) if st["times"] else np.full((1, 5), np.nan)
    med = np.median(times, axis=0)
    s = {"status": st["status"], "steps_done": st["step"], "diverged_at": st.get("diverged_at", np.nan),
         "fwd_ms": 1000 * med[0], "bwd_ms": 1000 * med[1], "opt_ms": 1000 * med[2], "step_ms": 1000 * med[3],
         "tokens_per_s": med[4] * mc.n_codebooks / med[3], "frames_per_step": med[4],
         "mem_kind": "cuda_peak_allocated" if device.type == "cuda" else "cpu_rss",
         "mem_peak_mb": float(np.max(st["mem"])) if st["mem"] else np.nan,
         "mem_mean_mb": float(np.mean(st["mem"])) if st["mem"] else np.nan,
         "train_wall_s": st["wall_s"], "eval_wall_s": st.get("eval_s", 0.0)}
    s.update({f"params_{k}": v for k, v in model.param_counts().items()})
    if len(curve):
        last = curve.iloc[-1]
        for col in curve.columns:
            if col.startswith(("train_", "val_")):
                s[f"final_{col}"] = last[col]
        s["best_train_acc"], s["best_val_acc"] = curve["train_acc"].max(), curve["val_acc"].max()
        for split in ("train", "val"):
            for th in (50, 90, 95):
                row = ms[(ms.metric == f"{split}_acc") & (ms.threshold == th)].iloc[0]
                s[f"{split}_step_to_{th}"], s[f"{split}_wall_s_to_{th}"] = row["step"], row["wall_s"]
    return {"summary": s, "curve": curve, "milestones": ms, "positions": pd.DataFrame(st["positions"])}
