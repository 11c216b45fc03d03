"""TTSModel: text -> durations -> frames -> 8 x 1024 codec-token logits, any backbone.

    text ids (B, S) -> [text emb + pos emb] -> proj -> TextEncoder -> enc (B, S, H)
    enc -> DurationPredictor -> log(1 + frames) per symbol (B, S)
    enc, durations -> LengthRegulator -> regulated (B, T, H)   (teacher-forced in training)
    reference codes (B, 8, R) -> StyleExtractor (backward Mamba, mean-pooled) -> style (B, H)
    regulated + style + proj([previous frame's 8 code embeddings] + pos emb) -> AudioDecoder
        -> heads -> logits (B, T, 8, 1024)

What the decoder reads is `cfg.decoder_input` (see models/config.py): the previous frame's codes
(autoregressive; then the decoder is causal end to end and frame t sees codes of frames < t
only), the same through prenet dropout that stays on at inference, or no codes at all
(non-autoregressive given the durations; then the decoder may also look both ways,
`decoder_causal=False`, since nothing it reads is a target). The style reference must be another
utterance (the data pipeline picks one), so the model cannot read its target.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..corpus.text import PAD_ID, TextError
from .blocks import Backbone
from .config import ModelConfig
from .mamba import MambaLayer

START = -1  # code value meaning "no previous frame" (frame 0)


def window(x: torch.Tensor, start: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """Per-item slice x[b, ..., start_b : start_b + length] along time `dim` (1 for (B, T, ...), 2 for (B, C, T))."""
    idx = start[:, None] + torch.arange(length, device=x.device)                # (B, l)
    if dim == 1:
        idx = idx.view(*idx.shape, *[1] * (x.dim() - 2)).expand(-1, -1, *x.shape[2:])
    else:
        idx = idx[:, None].expand(-1, x.shape[1], -1)
    return torch.gather(x, dim, idx)


def length_regulate(enc: torch.Tensor, durations: torch.Tensor, n_frames: int,
                    start: torch.Tensor | None = None) -> torch.Tensor:
    """Repeat symbol states by their durations: enc (B, S, H), durations (B, S) -> (B, n_frames, H).

    With start (B,), frames [start_b, start_b + n_frames) of each item (a training crop) instead
    of [0, n_frames). Frames past an utterance's total duration repeat its last symbol (they are
    masked out).
    """
    ends = torch.cumsum(durations, dim=1)                                      # (B, S)
    frames = torch.arange(n_frames, device=enc.device).expand(enc.shape[0], -1)
    if start is not None:
        frames = frames + start[:, None]                                       # (B, n_frames)
    idx = torch.searchsorted(ends, frames.contiguous(), right=True).clamp_max(enc.shape[1] - 1)
    return torch.gather(enc, 1, idx[..., None].expand(-1, -1, enc.shape[2]))


class StyleExtractor(nn.Module):
    """Reads reference frames backwards with a Mamba layer and mean-pools them to one vector."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.d_model)
        self.ssm = MambaLayer(cfg.d_model, cfg.d_inner, cfg.d_state, cfg.d_conv, cfg.dt_rank)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, ref: torch.Tensor) -> torch.Tensor:                    # ref (B, R, H)
        y, _ = self.ssm(self.norm(ref.flip(1)))                                 # (B, R, H), read backwards
        return self.out(y.mean(dim=1))                                          # (B, H)


class TTSModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        E, H, C, K = cfg.d_embed, cfg.d_model, cfg.n_codebooks, cfg.codebook_size
        self.text_emb = nn.Embedding(cfg.vocab_size, E, padding_idx=PAD_ID)
        self.audio_emb = nn.Embedding(C * K, E)          # 8 tables of 1024 in one, summed per frame
        self.pos_emb = nn.Embedding(cfg.max_positions, E)
        self.start_emb = nn.Parameter(torch.zeros(E))    # "previous frame" of frame 0
        self.embed_proj = nn.Linear(E, H) if E != H else nn.Identity()
        self.encoder = Backbone(cfg, cfg.n_enc_layers, causal=False)
        self.duration = nn.Sequential(nn.Linear(H, H), nn.GELU(), nn.Linear(H, 1))
        self.style = StyleExtractor(cfg)
        self.decoder = Backbone(cfg, cfg.n_layers, causal=cfg.decoder_causal)
        self.heads = nn.Linear(H, C * K)
        self.register_buffer("code_offsets", torch.arange(C) * K, persistent=False)
        nn.init.normal_(self.audio_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=cfg.pos_emb_std)

    # ---------------------------------------------------------------- pieces
    def _check_len(self, n: int, what: str):
        if n > self.cfg.max_positions:
            raise TextError(f"{what} has {n} positions, more than max_positions={self.cfg.max_positions}")

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, 8, T) with START allowed -> summed embeddings (B, T, E)."""
        start = codes[:, 0] == START                                            # (B, T)
        idx = codes.clamp_min(0) + self.code_offsets[None, :, None]
        e = self.audio_emb(idx).sum(dim=1)                                      # (B, T, E)
        return torch.where(start[..., None], self.start_emb.expand_as(e), e)

    def encode_text(self, text_ids: torch.Tensor):
        """text_ids (B, S) -> (enc (B, S, H), predicted log(1 + duration) (B, S))."""
        S = text_ids.shape[1]
        self._check_len(S, "text")
        mask = text_ids != PAD_ID                                                   # (B, S)
        x = self.embed_proj(self.text_emb(text_ids) + self.pos_emb(torch.arange(S, device=text_ids.device)))  # (B, S, H)
        enc, _ = self.encoder(x, mask=mask)                                         # (B, S, H)
        return enc, self.duration(enc).squeeze(-1)                                  # (B, S, H), (B, S)

    def style_vector(self, ref_codes: torch.Tensor) -> torch.Tensor:
        """Style reference codes (B, 8, R), R >= 1, ids in [0, codebook_size) -> style vector (B, H)."""
        C, K = self.cfg.n_codebooks, self.cfg.codebook_size
        if ref_codes.dim() != 3 or ref_codes.shape[1] != C:
            raise ValueError(f"style reference codes must be ({C}, frames) per item, got shape {tuple(ref_codes.shape)}")
        if ref_codes.shape[2] == 0:
            raise ValueError("the style reference has no frames: pass the codes of at least one frame of another utterance")
        lo, hi = int(ref_codes.min()), int(ref_codes.max())
        if lo < 0 or hi >= K:
            raise ValueError(f"style reference codes must be ids in [0, {K}), got values from {lo} to {hi}")
        ref = ref_codes[:, :, : self.cfg.style_frames]
        return self.style(self.embed_proj(self.embed_codes(ref)))

    def _decoder_input(self, regulated, style, prev_codes, pos_offset=0) -> torch.Tensor:
        """What the audio decoder reads for l frames: text states + style + projected (position [+ previous codes]).

        regulated (B, l, H): text states of these frames; style (B, H);
        prev_codes (B, 8, l): codes of each frame's *previous* frame (START for frame 0); with
            decoder_input="none" only their shape is used (l frames);
        pos_offset: index of the first frame (int, or (B,) per item). Returns (B, l, H).
        """
        l = prev_codes.shape[2]
        offset = torch.as_tensor(pos_offset, device=prev_codes.device).reshape(-1, 1)  # (1 or B, 1)
        self._check_len(int(offset.max()) + l, "audio")
        pos = offset + torch.arange(l, device=prev_codes.device)                          # (1 or B, l)
        inp = self.pos_emb(pos)                                                            # (1 or B, l, E)
        if self.cfg.decoder_input == "prev_codes":
            inp = inp + self.embed_codes(prev_codes)                                       # (B, l, E)
        elif self.cfg.decoder_input == "prev_codes_dropout":
            # Tacotron's prenet dropout, on in training *and* generation: the decoder cannot lean on
            # copying the previous frame, and sees at inference the noise it was trained with
            inp = inp + F.dropout(self.embed_codes(prev_codes), self.cfg.prenet_dropout, training=True)
        return regulated + style[:, None] + self.embed_proj(inp)                           # (B, l, H)

    def decode_states(self, regulated, style, prev_codes, pos_offset=0, state=None):
        """One pass of the audio decoder over l frames, up to the heads (arguments: `_decoder_input`);
        state: the decoder state left by the previous chunk, or None. Returns (states (B, l, H), new state)."""
        return self.decoder(self._decoder_input(regulated, style, prev_codes, pos_offset), state)

    def allocate_decoder_state(self, batch: int, device=None) -> list:
        """The audio decoder's state before frame 0: one mixer state per block (models/state.py)."""
        return self.decoder.allocate_state(batch, device)

    @torch.no_grad()
    def decode_step(self, regulated, style, prev_codes, position: int, state: list):
        """One frame of generation: regulated (B, 1, H), style (B, H), prev_codes (B, 8, 1), the frame's
        position, the decoder state -> (logits (B, 1, 8, 1024), new state). Same result as `decode`
        over all frames at once (the tests check it), at a cost per frame that does not grow with
        position for the SSM backbones."""
        h, state = self.decoder.step(self._decoder_input(regulated, style, prev_codes, position), state)  # (B, 1, H)
        return self.logits(h), state

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Decoder states (B, l, H) -> logits (B, l, 8, 1024). (Training scores the states with the
        fused head + loss of models/heads.py instead, never materialising these.)"""
        return self.heads(h).view(*h.shape[:2], self.cfg.n_codebooks, self.cfg.codebook_size)

    def decode(self, regulated, style, prev_codes, pos_offset: int = 0, state=None):
        """`decode_states` then the heads: logits (B, l, 8, 1024) and the new state."""
        h, state = self.decode_states(regulated, style, prev_codes, pos_offset, state)
        return self.logits(h), state

    @staticmethod
    def shift_codes(codes: torch.Tensor) -> torch.Tensor:
        """codes (B, 8, T) -> previous-frame codes (B, 8, T): START, codes[..., :-1]."""
        return F.pad(codes[..., :-1], (1, 0), value=START)

    # ---------------------------------------------------------------- training pass
    def states(self, text_ids, durations, codes, ref_codes, crop_start=None, crop_len: int | None = None):
        """Teacher-forced pass up to the heads: decoder states (B, l, H) and log-duration predictions (B, S).

        With crop_start (B,) and crop_len, only frames [start, start + l) of each item are
        decoded (the text is still encoded whole, positions stay absolute); l = T otherwise.
        """
        enc, log_dur = self.encode_text(text_ids)
        prev = self.shift_codes(codes)
        offset = 0
        if crop_start is not None:   # only the window's frames are regulated
            regulated = length_regulate(enc, durations, crop_len, start=crop_start)
            prev = window(prev, crop_start, crop_len, dim=2)
            offset = crop_start
        else:
            regulated = length_regulate(enc, durations, codes.shape[2])
        h, _ = self.decode_states(regulated, self.style_vector(ref_codes), prev, pos_offset=offset)
        return h, log_dur

    def forward(self, text_ids, durations, codes, ref_codes, crop_start=None, crop_len: int | None = None):
        """Teacher-forced pass: logits (B, l, 8, 1024) and log-duration predictions (B, S) (see `states`)."""
        h, log_dur = self.states(text_ids, durations, codes, ref_codes, crop_start, crop_len)
        return self.logits(h), log_dur

    def chunk_states(self, text_ids, durations, prev_codes, ref_codes, state=None):
        """One chunk of a long recording, decoded at positions 0..l-1 with the decoder state carried in and out.

        text_ids, durations (B, S): the symbols the chunk overlaps, durations clipped to it (summing to l);
        prev_codes (B, 8, l): each frame's previous-frame codes. Returns (states (B, l, H), log_dur, state).
        """
        enc, log_dur = self.encode_text(text_ids)
        regulated = length_regulate(enc, durations, prev_codes.shape[2])
        h, state = self.decode_states(regulated, self.style_vector(ref_codes), prev_codes, 0, state)
        return h, log_dur, state

    def forward_chunk(self, text_ids, durations, prev_codes, ref_codes, state=None):
        """`chunk_states` then the heads: (logits (B, l, 8, 1024), log_dur, state)."""
        h, log_dur, state = self.chunk_states(text_ids, durations, prev_codes, ref_codes, state)
        return self.logits(h), log_dur, state

    # ---------------------------------------------------------------- bookkeeping
    def param_counts(self) -> dict:
        """Parameters by component (the embedding tables listed separately)."""
        n = lambda m: sum(p.numel() for p in m.parameters()) if isinstance(m, nn.Module) else m.numel()
        parts = {"emb_text": self.text_emb, "emb_audio": self.audio_emb, "emb_pos": self.pos_emb,
                 "emb_proj": self.embed_proj, "encoder": self.encoder, "duration": self.duration,
                 "style": self.style, "decoder": self.decoder, "heads": self.heads}
        counts = {k: n(m) for k, m in parts.items()}
        counts["decoder"] += self.start_emb.numel()
        counts["total"] = sum(p.numel() for p in self.parameters())
        assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
        return counts
