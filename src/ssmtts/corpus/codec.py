"""Audio <-> discrete tokens: 8 codebooks x 1024 codes at 75 frames/s, two backends.

* `EncodecCodec` - Meta's EnCodec 24 kHz at 6 kbps through the `encodec` package, with its
  pretrained weights (torch hub cache, a directory you give, or the package's own download).
* `MelKMeansCodec` - the offline backend for machines without those weights: residual
  k-means (8 stages x 1024 centroids) over 80-bin log-mel frames at 75 Hz (hop 320 at 24 kHz),
  fitted on the training split with a fixed seed; decoded for listening with Griffin-Lim.
  Same token shape as EnCodec, so the models and the harness cannot tell them apart, but
  every artefact and CSV row records `codec_id`, and results are only compared within one.

EnCodec with random weights is *not* an offline backend: its codebooks are zeros until
k-means initialised and its decoder outputs noise.
"""
from __future__ import annotations

import hashlib
import io
import sys
import types
from pathlib import Path

import numpy as np
import torch

from .durations import FRAME_RATE, HOP, SAMPLE_RATE

N_CODEBOOKS, CODEBOOK_SIZE = 8, 1024
ENCODEC_WEIGHTS = "encodec_24khz-d7cc33bc.th"


class CodecWeightsMissing(RuntimeError):
    pass


# ----------------------------------------------------------------------------- EnCodec
def import_encodec():
    """Import `encodec` without torchaudio.

    encodec/utils.py imports torchaudio at module top, only for audio IO helpers this project
    does with soundfile/soxr; the PyPI torchaudio would force another torch build. If no
    working torchaudio is importable, a stub stands in and names itself if ever used.
    """
    if "torchaudio" not in sys.modules:
        try:
            import torchaudio  # noqa: F401  (a user's working install is fine)
        except Exception:
            stub = types.ModuleType("torchaudio")

            def _missing(name):
                raise AttributeError(f"torchaudio.{name} is not available: ssmtts does audio IO "
                                     "with soundfile/soxr and never needs torchaudio")
            stub.__getattr__ = _missing
            sys.modules["torchaudio"] = stub
    import encodec
    return encodec


def find_encodec_weights(weights_dir: str | Path | None = None) -> Path | None:
    """The first existing copy of the 24 kHz checkpoint: `weights_dir`, then torch hub's cache."""
    candidates = []
    if weights_dir:
        candidates.append(Path(weights_dir) / ENCODEC_WEIGHTS)
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / ENCODEC_WEIGHTS)
    return next((p for p in candidates if p.is_file()), None)


def checked_codes(codes, n_codebooks: int = N_CODEBOOKS, codebook_size: int = CODEBOOK_SIZE) -> np.ndarray:
    """Codes to decode as int64 (n_codebooks, T), T >= 1, every id in [0, codebook_size); a ValueError
    naming the problem otherwise (a negative id would silently wrap around in an index)."""
    a = np.asarray(codes)
    if a.ndim != 2 or a.shape[0] != n_codebooks:
        raise ValueError(f"codes must have shape ({n_codebooks}, frames), got {a.shape}")
    if a.shape[1] == 0:
        raise ValueError("codes have no frames: nothing to decode")
    if not np.issubdtype(a.dtype, np.integer):
        if not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all() or (a != np.round(a)).any():
            raise ValueError(f"codes must be whole numbers, got dtype {a.dtype}")
    lo, hi = a.min(), a.max()
    if lo < 0 or hi >= codebook_size:
        raise ValueError(f"codes must be ids in [0, {codebook_size}), got values from {lo} to {hi}")
    return a.astype(np.int64)


class EncodecCodec:
    """EnCodec 24 kHz, 6 kbps (8 codebooks). `pretrained=False` is for tests of the code path only."""
    n_codebooks, codebook_size, sample_rate, frame_rate = N_CODEBOOKS, CODEBOOK_SIZE, SAMPLE_RATE, SAMPLE_RATE / HOP

    def __init__(self, pretrained: bool = True, weights_dir: str | Path | None = None,
                 allow_download: bool = True):
        encodec = import_encodec()
        if pretrained:
            found = find_encodec_weights(weights_dir)
            try:
                if found is not None and weights_dir and found.parent == Path(weights_dir):
                    self.model = encodec.EncodecModel.encodec_model_24khz(repository=found.parent)
                elif found is not None or allow_download:
                    # the package's own path: torch hub cache, downloading if absent
                    self.model = encodec.EncodecModel.encodec_model_24khz()
                else:
                    raise FileNotFoundError(ENCODEC_WEIGHTS)
            except Exception as e:
                where = Path(torch.hub.get_dir()) / "checkpoints"
                raise CodecWeightsMissing(
                    f"EnCodec pretrained weights '{ENCODEC_WEIGHTS}' could not be loaded ({type(e).__name__}: {e}). "
                    f"Put the file in {where}/ (torch hub cache) or in a directory passed as "
                    f"weights_dir / ENCODEC_DIR=..., or use the offline codec (CODEC=melkmeans).") from e
            self.codec_id = "encodec24k-6kbps"
        else:
            self.model = encodec.EncodecModel.encodec_model_24khz(pretrained=False)
            self.codec_id = "encodec24k-6kbps-RANDOM"
        self.model.set_target_bandwidth(6.0)
        self.model.eval()

    @torch.no_grad()
    def encode(self, wav: np.ndarray) -> np.ndarray:
        """float32 mono wav at 24 kHz -> int16 codes (8, ceil(n / 320))."""
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None, None]
        frames = self.model.encode(x)
        codes = torch.cat([c for c, _ in frames], dim=-1)[0]
        return codes.numpy().astype(np.int16)

    @torch.no_grad()
    def decode(self, codes: np.ndarray) -> np.ndarray:
        c = torch.from_numpy(checked_codes(codes))[None]
        return self.model.decode([(c, None)])[0, 0].numpy()


# ----------------------------------------------------------------------------- offline units
N_MELS, N_FFT, F_MAX, LOG_FLOOR = 80, 1024, 12000.0, 1e-5


def log_mel(wav: np.ndarray) -> torch.Tensor:
    """(n,) float wav at 24 kHz -> (ceil(n/320), 80) natural-log mel magnitudes, one row per codec frame."""
    import librosa  # lazy: numba import is slow and only corpus building needs it
    n = len(wav)
    n_frames = -(-n // HOP)
    # at least N_FFT samples, so that the centred STFT's reflect padding exists for any length
    x = torch.from_numpy(np.pad(np.asarray(wav, np.float32), (0, max(n_frames * HOP, N_FFT) - n)))
    spec = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), center=True,
                      pad_mode="reflect", return_complex=True).abs()[:, :n_frames]
    fb = torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmax=F_MAX))
    return torch.log(torch.clamp(fb @ spec, min=LOG_FLOOR)).T.contiguous()


def _sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(1, keepdim=True) - 2 * x @ c.T + (c * c).sum(1)[None]


def _nearest(x: torch.Tensor, c: torch.Tensor, block: int = 8192) -> torch.Tensor:
    return torch.cat([_sq_dist(x[i:i + block], c).argmin(1) for i in range(0, len(x), block)])


def kmeans(x: torch.Tensor, k: int, iters: int, seed: int, init_sample: int = 20000) -> torch.Tensor:
    """k-means++ init on a seeded subsample, then Lloyd iterations on all of x.

    Dead centroids (no points) are re-seeded at the points farthest from their centroid, so
    every code stays in use.
    """
    if len(x) < k:
        raise ValueError(f"the offline codec needs at least {k} training frames to fit {k} centroids, "
                         f"got {len(x)} ({len(x) / FRAME_RATE:.1f} s of audio): add training utterances")
    g = torch.Generator().manual_seed(seed)
    sub = x[torch.randperm(len(x), generator=g)[:init_sample]]
    centers = torch.empty(k, x.shape[1])
    centers[0] = sub[torch.randint(len(sub), (1,), generator=g)]
    d2 = ((sub - centers[0]) ** 2).sum(1)
    for i in range(1, k):
        centers[i] = sub[torch.multinomial(d2.clamp_min(0) + 1e-12, 1, generator=g)]
        d2 = torch.minimum(d2, ((sub - centers[i]) ** 2).sum(1))
    for _ in range(iters):
        assign = _nearest(x, centers)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centers).index_add_(0, assign, x)
        alive = counts > 0
        centers[alive] = sums[alive] / counts[alive, None]
        if (~alive).any():
            err = ((x - centers[assign]) ** 2).sum(1)
            centers[~alive] = x[err.topk(int((~alive).sum())).indices]
    return centers


class MelKMeansCodec:
    """Residual k-means over log-mel frames: 8 stages x 1024 centroids (80 dims)."""
    n_codebooks, codebook_size, sample_rate, frame_rate = N_CODEBOOKS, CODEBOOK_SIZE, SAMPLE_RATE, SAMPLE_RATE / HOP

    def __init__(self, codebooks: torch.Tensor):
        assert codebooks.shape == (N_CODEBOOKS, CODEBOOK_SIZE, N_MELS), codebooks.shape
        self.codebooks = codebooks.float().contiguous()
        self.checksum = hashlib.sha256(self.codebooks.numpy().tobytes()).hexdigest()
        self.codec_id = f"melkmeans8x1024-{self.checksum[:10]}"

    @classmethod
    def fit(cls, wavs, seed: int = 0, iters: int = 20) -> "MelKMeansCodec":
        from tqdm.auto import tqdm
        x = torch.cat([log_mel(w) for w in wavs])
        books, residual = [], x
        for stage in tqdm(range(N_CODEBOOKS), desc=f"residual k-means on {len(x)} frames"):
            c = kmeans(residual, CODEBOOK_SIZE, iters, seed=seed * 100 + stage)
            residual = residual - c[_nearest(residual, c)]
            books.append(c)
        return cls(torch.stack(books))

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        torch.save({"codebooks": self.codebooks, "sha256": self.checksum}, buf)
        path.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> "MelKMeansCodec":
        blob = torch.load(path, weights_only=True)
        codec = cls(blob["codebooks"])
        if codec.checksum != blob["sha256"]:
            raise ValueError(f"{path}: codebook checksum mismatch (file corrupted?)")
        return codec

    def quantize(self, mel: torch.Tensor) -> torch.Tensor:
        codes, residual = [], mel
        for c in self.codebooks:
            idx = _nearest(residual, c)
            residual = residual - c[idx]
            codes.append(idx)
        return torch.stack(codes)

    def encode(self, wav: np.ndarray) -> np.ndarray:
        return self.quantize(log_mel(wav)).numpy().astype(np.int16)

    def codes_to_mel(self, codes: np.ndarray, n_stages: int = N_CODEBOOKS) -> torch.Tensor:
        c = torch.as_tensor(checked_codes(codes))
        return sum(self.codebooks[s][c[s]] for s in range(n_stages))

    def decode(self, codes: np.ndarray, n_iter: int = 32) -> np.ndarray:
        import librosa
        mel = torch.exp(self.codes_to_mel(codes)).T.numpy()
        # librosa's mel_to_audio starts Griffin-Lim from unseeded random phases, so the same codes
        # gave a slightly different waveform (and MCD) on every call: its two steps, phases seeded
        stft = librosa.feature.inverse.mel_to_stft(mel, sr=SAMPLE_RATE, n_fft=N_FFT, power=1.0, fmax=F_MAX)
        wav = librosa.griffinlim(stft, n_iter=n_iter, hop_length=HOP, n_fft=N_FFT, random_state=0)
        n = mel.shape[1] * HOP                     # one 320-sample hop per frame, like the encoder's input
        return np.pad(wav, (0, max(0, n - len(wav))))[:n].astype(np.float32)
