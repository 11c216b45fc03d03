"""The judge: a small CTC speech recogniser that says whether generated speech says its text.

It listens to audio only (24 kHz waveform -> the codec's 80-bin log-mel), so it scores any model,
any codec and a user's corpus alike. It is trained on the corpus's training split: the ground-truth
audio and codec round trips of part of it (codes decoded back to audio), so codec artefacts are
not counted as a model's errors.

    wav -> log-mel (T, 80) at 75 Hz -> normalised with training statistics -> strided conv (37.5 Hz)
        -> 12 residual dilated-conv blocks -> two CTC heads: characters (a-ż and space) and phonemes

Two targets because Polish spelling is not phonetic: ó/u, rz/ż, ch/h, and voicing assimilation
(`pszczoły` is spoken `pszczoły` but `babka` as `bapka`) sound the same, so a character judge
must *guess* the spelling of a word it never read; on the unseen-text set most words are new.
The phoneme head is scored against what eSpeak NG actually spoke (its PHONEME events, stress
marks removed), which is exact for the shipped corpus; the card reports both error rates and
the study uses the one that passes the card's bounds (see `PRIMARY_METRIC`).

Error rate = Levenshtein edits / reference length, summed over a set of utterances (so long and
short sentences weigh by their length); CIs by a seeded bootstrap over utterances.

The trained judge is cached like the codec: data/build/judge/judge-<hash>.pt, the hash covering
its configuration, the codec and the training utterances; loading uses `weights_only=True`.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from rapidfuzz.distance import Levenshtein
from tqdm.auto import tqdm

from .corpus.build import Corpus, Utterance, read_wav
from .corpus.codec import log_mel
from .corpus.text import LETTERS_LOWER, normalize
from .files import atomic_torch_save, atomic_write_bytes
from .runtime import configure, current, keep_freed_memory

JUDGE_VERSION = "ctc-dilated-conv-v1"
CHARS = [" "] + list(LETTERS_LOWER)      # character targets (index + 1; 0 is the CTC blank)
PRIMARY_METRIC = "per"                   # the error rate generation is scored with (see the card)


def char_target(text: str) -> str:
    """What the character head must write: lower case, letters and single spaces only."""
    kept = "".join(c if c in CHARS else " " for c in normalize(text).lower())
    return " ".join(kept.split())


def error_rate(hyps, refs) -> float:
    """Summed Levenshtein edits / summed reference length (strings, or lists of phoneme names), in %."""
    edits = sum(Levenshtein.distance(h, r) for h, r in zip(hyps, refs, strict=True))
    return 100.0 * edits / max(1, sum(len(r) for r in refs))


def resample(n_items: int, n: int = 2000, seed: int = 0) -> np.ndarray:
    """(n, n_items) indices of n bootstrap draws of the items, from a seeded generator (one draw can score
    several models, paired)."""
    return np.random.default_rng(seed).integers(n_items, size=(n, n_items))


def pooled_rate(edits: np.ndarray, lengths: np.ndarray, idx=slice(None)) -> np.ndarray:
    """sum(edits) / sum(lengths) in %, of all items or of each draw of `resample` (one rate per row)."""
    return 100.0 * edits[idx].sum(-1) / np.maximum(1, lengths[idx].sum(-1))


def bootstrap_ci(edits: np.ndarray, lengths: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % CI of sum(edits) / sum(lengths) (in %), resampling utterances with a seeded generator."""
    if len(edits) < 2:
        return np.nan, np.nan
    rates = pooled_rate(edits, lengths, resample(len(edits), n, seed))
    return float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5))


@dataclass
class JudgeConfig:
    hidden: int = 256
    layers: int = 12
    steps: int = 300
    batch_size: int = 16
    lr: float = 2e-3
    roundtrips: int = 60         # training utterances also heard through the codec (decoded codes)
    spec_masks: int = 2          # SpecAugment: this many frequency (<= 8 bins) and time (<= 12 frames) masks
    seed: int = 0


JUDGE_PROFILES = {"smoke": JudgeConfig(hidden=32, layers=2, steps=4, batch_size=4, roundtrips=2),
                  "cpu": JudgeConfig(), "paper": JudgeConfig()}
JUDGE_TRAIN_UTTERANCES = {"smoke": 8}    # smoke: the first few training utterances only (tests, CI)


class ConvBlock(nn.Module):
    """Pre-norm residual block: depthwise dilated conv (k=5) -> pointwise 2x expansion, GELU -> pointwise."""

    def __init__(self, hidden: int, dilation: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(hidden)
        self.depthwise = nn.Conv1d(hidden, hidden, 5, padding=2 * dilation, dilation=dilation, groups=hidden)
        self.up, self.down = nn.Conv1d(hidden, 2 * hidden, 1), nn.Conv1d(2 * hidden, hidden, 1)

    def forward(self, x):                                                        # x (B, hidden, T)
        return x + self.down(F.gelu(self.up(self.depthwise(self.norm(x)))))


class JudgeNet(nn.Module):
    """A convolutional CTC acoustic model: every frame sees about +-2.4 s (dilations 1, 2, 4, 8, repeated).
    Convolutions, not a recurrent net: on a 2-core CPU a 3-layer BiGRU of this size trained 3x slower."""

    def __init__(self, n_chars: int, n_phonemes: int, hidden: int, layers: int):
        super().__init__()
        self.front = nn.Conv1d(80, hidden, 5, stride=2, padding=2)              # 75 Hz -> 37.5 Hz
        self.blocks = nn.Sequential(*[ConvBlock(hidden, 2 ** (i % 4)) for i in range(layers)])
        self.char_head = nn.Conv1d(hidden, n_chars + 1, 1)
        self.phoneme_head = nn.Conv1d(hidden, n_phonemes + 1, 1)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor):
        """feats (B, T, 80) normalised, lengths (B,) -> log-probs (B, T', C+1), (B, T', P+1), lengths (B,); T' = ceil(T/2)."""
        mask = (torch.arange(feats.shape[1]) < lengths[:, None]).to(feats.dtype)       # (B, T)
        h = self.blocks(self.front((feats * mask[..., None]).transpose(1, 2)))          # (B, hidden, T')
        out_lens = (lengths + 1) // 2
        return (self.char_head(h).transpose(1, 2).log_softmax(-1),
                self.phoneme_head(h).transpose(1, 2).log_softmax(-1), out_lens)


def _greedy(logp: torch.Tensor, length: int) -> list[int]:
    """Best path: argmax per frame, repeats merged, blanks (0) dropped; returns target indices (1-based)."""
    best = logp[:length].argmax(-1).tolist()
    return [b for i, b in enumerate(best) if b != 0 and (i == 0 or b != best[i - 1])]


class Judge:
    """A trained recogniser with its inventories and feature statistics."""

    def __init__(self, net: JudgeNet, phonemes: list[str], mean: torch.Tensor, std: torch.Tensor,
                 config: JudgeConfig, judge_id: str):
        self.net, self.phonemes, self.mean, self.std = net.eval(), phonemes, mean, std
        self.config, self.judge_id = config, judge_id

    def features(self, wav: np.ndarray) -> torch.Tensor:
        return (log_mel(wav) - self.mean) / self.std

    @torch.no_grad()
    def transcribe(self, wavs: list[np.ndarray], batch_size: int = 16) -> list[tuple[str, list[str]]]:
        """24 kHz waveforms -> (character transcript, phoneme list) each."""
        out = []
        for i in range(0, len(wavs), batch_size):
            feats = [self.features(w) for w in wavs[i:i + batch_size]]
            x, lens = _pad(feats)
            chars, phons, l2 = self.net(x, lens)
            for b in range(len(feats)):
                out.append(("".join(CHARS[j - 1] for j in _greedy(chars[b], int(l2[b]))).strip(),
                            [self.phonemes[j - 1] for j in _greedy(phons[b], int(l2[b]))]))
        return out

    def score(self, wavs: list[np.ndarray], texts: list[str], phonemes: list[list[str]]) -> pd.DataFrame:
        """One row per utterance: transcripts, edits and reference lengths for characters and phonemes."""
        rows = []
        for (hyp_c, hyp_p), text, ref_p in zip(self.transcribe(wavs), texts, phonemes, strict=True):
            ref_c = char_target(text)
            rows.append({"transcript": hyp_c, "char_edits": Levenshtein.distance(hyp_c, ref_c), "char_len": len(ref_c),
                         "phoneme_edits": Levenshtein.distance(hyp_p, ref_p), "phoneme_len": len(ref_p),
                         "phonemes_heard": " ".join(hyp_p)})
        return pd.DataFrame(rows)

    def save(self, path: Path) -> None:
        blob = {"state_dict": self.net.state_dict(), "phonemes": self.phonemes, "mean": self.mean, "std": self.std,
                "config": asdict(self.config), "judge_id": self.judge_id, "version": JUDGE_VERSION}
        atomic_torch_save(blob, path)

    @classmethod
    def load(cls, path: Path) -> "Judge":
        blob = torch.load(path, weights_only=True)
        cfg = JudgeConfig(**blob["config"])
        net = JudgeNet(len(CHARS), len(blob["phonemes"]), cfg.hidden, cfg.layers)
        net.load_state_dict(blob["state_dict"])
        return cls(net, list(blob["phonemes"]), blob["mean"], blob["std"], cfg, blob["judge_id"])


def summarize(scores: pd.DataFrame, seed: int = 0) -> dict:
    """Pooled error rates with bootstrap CIs from `Judge.score` rows."""
    out = {"n": len(scores)}
    for name, prefix in (("cer", "char"), ("per", "phoneme")):
        e, n = scores[f"{prefix}_edits"].to_numpy(), scores[f"{prefix}_len"].to_numpy()
        out[name] = 100.0 * e.sum() / max(1, n.sum())
        out[f"{name}_lo"], out[f"{name}_hi"] = bootstrap_ci(e, n, seed=seed)
    return out


# ----------------------------------------------------------------------------- training

def _pad(feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(f) for f in feats])
    x = torch.zeros(len(feats), int(lens.max()), feats[0].shape[1])
    for i, f in enumerate(feats):
        x[i, :len(f)] = f
    return x, lens


def _spec_augment(x: torch.Tensor, n_masks: int, rng: np.random.Generator) -> torch.Tensor:
    """Zero (= the training mean) a few random frequency bands and time spans per item."""
    x = x.clone()
    for b in range(x.shape[0]):
        for _ in range(n_masks):
            f0, fw = rng.integers(0, 80 - 8), rng.integers(0, 9)
            x[b, :, f0:f0 + fw] = 0
            t0, tw = rng.integers(0, max(1, x.shape[1] - 12)), rng.integers(0, 13)
            x[b, t0:t0 + tw] = 0
    return x


def roundtrip_wav(corpus: Corpus, utt: Utterance) -> np.ndarray:
    """The utterance's codes decoded by its codec (cached on disk: Griffin-Lim is the slow part)."""
    path = corpus.build_dir / "judge" / "roundtrip" / corpus.codec_id / f"{utt.uid}-{hashlib.sha256(utt.codes.tobytes()).hexdigest()[:12]}.npy"
    if path.is_file():
        return np.load(path)
    wav = corpus.codec.decode(utt.codes).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, wav)
    atomic_write_bytes(path, buf.getvalue())
    return wav


def _judge_key(corpus: Corpus, cfg: JudgeConfig, train: list[Utterance]) -> str:
    ident = {"version": JUDGE_VERSION, "config": asdict(cfg), "codec": corpus.codec_id,
             "train": [(u.uid, hashlib.sha256(u.codes.tobytes()).hexdigest()[:12]) for u in train]}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def judge_for(corpus: Corpus, profile: str = "cpu", progress: bool = True) -> Judge:
    """The judge a profile uses (smoke: a tiny one on a few utterances, only to exercise the code path)."""
    return build_judge(corpus, JUDGE_PROFILES[profile], progress, JUDGE_TRAIN_UTTERANCES.get(profile))


def build_judge(corpus: Corpus, cfg: JudgeConfig | None = None, progress: bool = True,
                max_train: int | None = None, exclude: frozenset[str] = frozenset()) -> Judge:
    """The corpus's judge: loaded from data/build/judge/ if this configuration was trained, else trained (seeded).
    max_train: train on the first max_train training utterances only; exclude: uids it must not hear (a judge
    for diagnostics that has never heard those sentences' text). Both change the cache key (its training list)."""
    cfg = cfg or JudgeConfig()
    train = [u for u in corpus.split("train") if u.uid not in exclude][:max_train]
    if not train:
        raise ValueError("the judge needs training utterances: none are left in the corpus's train split "
                         f"(max_train={max_train}, {len(exclude)} excluded)")
    key = _judge_key(corpus, cfg, train)
    path = corpus.build_dir / "judge" / f"judge-{key}.pt"
    if path.is_file():
        return Judge.load(path)
    t0 = time.time()
    keep_freed_memory()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    phonemes = sorted({p for u in corpus.utterances for p in corpus.phonemes[u.uid]})
    p_index = {p: i + 1 for i, p in enumerate(phonemes)}
    c_index = {c: i + 1 for i, c in enumerate(CHARS)}
    # training items: (log-mel, char ids, phoneme ids) for every ground truth and some round trips
    heard = [(u, read_wav(corpus.audio_paths[u.uid])) for u in tqdm(train, desc="judge: ground truth", disable=not progress)]
    rt = [train[i] for i in sorted(rng.choice(len(train), min(cfg.roundtrips, len(train)), replace=False))]
    heard += [(u, roundtrip_wav(corpus, u)) for u in tqdm(rt, desc="judge: codec round trips", disable=not progress)]
    feats = [log_mel(w) for _, w in heard]
    allf = torch.cat(feats)
    mean, std = allf.mean(0), allf.std(0).clamp_min(1e-3)
    feats = [(f - mean) / std for f in feats]
    chars = [torch.tensor([c_index[c] for c in char_target(u.text)]) for u, _ in heard]
    phons = [torch.tensor([p_index[p] for p in corpus.phonemes[u.uid]]) for u, _ in heard]
    net = JudgeNet(len(CHARS), len(phonemes), cfg.hidden, cfg.layers)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    bar = tqdm(range(cfg.steps), desc="judge: training", disable=not progress)
    for step in bar:
        idx = rng.choice(len(feats), min(cfg.batch_size, len(feats)), replace=False)
        x, lens = _pad([feats[i] for i in idx])
        x = _spec_augment(x, cfg.spec_masks, rng)
        lc, lp, l2 = net(x, lens)
        loss = 0.0
        for logp, targets in ((lc, chars), (lp, phons)):
            tg = [targets[i] for i in idx]
            loss = loss + F.ctc_loss(logp.transpose(0, 1), torch.cat(tg), l2, torch.tensor([len(t) for t in tg]),
                                     blank=0, reduction="mean", zero_infinity=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    judge = Judge(net, phonemes, mean, std, cfg, f"{JUDGE_VERSION}-{key}")
    path.parent.mkdir(parents=True, exist_ok=True)
    judge.save(path)
    if progress:
        print(f"[judge] trained {judge.judge_id} in {time.time() - t0:.0f} s -> {path}")
    return judge


# ----------------------------------------------------------------------------- the card

def one_per_sentence(utts: list[Utterance]) -> list[Utterance]:
    """Unseen-set utterances, one voice per sentence in rotation (sentence i -> voice i mod #voices):
    every sentence once, every voice about equally often."""
    by_sentence: dict[str, list[Utterance]] = {}
    for u in utts:
        by_sentence.setdefault(u.uid.split("-")[0], []).append(u)
    out = []
    for i, key in enumerate(sorted(by_sentence)):
        group = sorted(by_sentence[key], key=lambda u: u.uid)
        out.append(group[i % len(group)])
    return out


def null_inputs(wavs: list[np.ndarray], seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Inputs that do not say the text: silence and white noise of the same length (noise at the
    speech's RMS), the speech time-reversed, and another sentence's audio (the next one's)."""
    rng = np.random.default_rng(seed)
    rms = [float(np.sqrt(np.mean(w ** 2))) or 0.1 for w in wavs]
    return {"silence": [np.zeros_like(w) for w in wavs],
            "white noise": [(r * rng.standard_normal(len(w))).astype(np.float32) for w, r in zip(wavs, rms)],
            "time-reversed": [w[::-1].copy() for w in wavs],
            "another sentence": [wavs[(i + 1) % len(wavs)] for i in range(len(wavs))]}


def judge_card(judge: Judge, corpus: Corpus, progress: bool = True, limit: int | None = None) -> pd.DataFrame:
    """Error rates of the judge on ground truth, codec round trips and null inputs, one row per input kind.
    limit: at most this many utterances per set (the smoke profile; the card is made without it)."""
    sets = {"val": corpus.split("val")[:limit], "test": corpus.split("test")[:limit],
            "unseen": one_per_sentence(corpus.split("unseen"))[:limit] if limit else corpus.split("unseen")}
    rows = []

    def add(split, kind, utts, wavs):
        s = summarize(judge.score(wavs, [u.text for u in utts], [corpus.phonemes[u.uid] for u in utts]))
        rows.append({"split": split, "input": kind, **s})
        if progress:
            print(f"[judge card] {split:7s} {kind:18s} n={s['n']:4d}  CER {s['cer']:6.2f} %  PER {s['per']:6.2f} %")

    for split, utts in sets.items():
        if utts:
            add(split, "ground truth", utts, [read_wav(corpus.audio_paths[u.uid]) for u in utts])
    for split in ("val", "unseen"):
        utts = one_per_sentence(sets[split]) if split == "unseen" else sets[split]
        if utts:
            add(split, "codec round trip", utts, [roundtrip_wav(corpus, u) for u in
                                                  tqdm(utts, desc=f"round trips ({split})", disable=not progress)])
    utts = one_per_sentence(sets["unseen"]) or sets["val"]
    split = "unseen" if sets["unseen"] else "val"
    for kind, wavs in null_inputs([read_wav(corpus.audio_paths[u.uid]) for u in utts]).items():
        add(split, f"null: {kind}", utts, wavs)
    return pd.DataFrame(rows).assign(judge_id=judge.judge_id, codec_id=corpus.codec_id, corpus_hash=corpus.corpus_hash)


def committed_card(judge: Judge, corpus: Corpus, path: Path) -> pd.DataFrame | None:
    """The card at `path` if it is this judge's on this corpus (it is deterministic: no need to remake it)."""
    if not Path(path).is_file():
        return None
    card = pd.read_csv(path)
    same = len(card) and (card.judge_id == judge.judge_id).all() and (card.corpus_hash == corpus.corpus_hash).all()
    return card if same else None


def main(argv=None):
    """`python -m ssmtts.judge`: build (or load) the corpus's judge and write its card to results/judge/."""
    import argparse

    from .corpus.build import build_corpus
    from .train.results import atomic_write_csv
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--profile", default="cpu", choices=sorted(JUDGE_PROFILES))
    p.add_argument("--codec", default=current().codec)
    p.add_argument("--out", default="results/judge")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--force", action="store_true", help="remake the card even if it is this judge's")
    a = p.parse_args(argv)
    configure(threads=a.threads)
    corpus = build_corpus(codec=a.codec)
    judge = judge_for(corpus, a.profile)
    out = Path(a.out)
    cols = ["split", "input", "n", "cer", "cer_lo", "cer_hi", "per", "per_lo", "per_hi"]
    old = None if a.force else committed_card(judge, corpus, out / "card.csv")
    if old is not None:
        print(f"[judge] {out / 'card.csv'} is this judge's card (--force to remake it)")
        print(old[cols].round(2).to_string(index=False))
        return
    card = judge_card(judge, corpus)
    atomic_write_csv(card, out / "card.csv")
    (out / "card.md").write_text(card[cols].round(2).to_markdown(index=False) + "\n", encoding="utf-8")
    print(card[cols].round(2).to_string(index=False))


if __name__ == "__main__":
    main()
