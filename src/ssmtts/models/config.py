"""Model configuration: one dataclass, validated at construction, flat for CSV rows and papermill."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

BACKBONES = ("transformer", "hybrid", "mamba", "mamba2")
# What the audio decoder reads besides the regulated text, the style and the frame position:
#   prev_codes          the previous frame's 8 codes (autoregressive, teacher-forced in training)
#   prev_codes_dropout  the same through Tacotron-style prenet dropout (p = prenet_dropout), kept on at inference
#   none                no codes: every frame is predicted from text, style and position alone
#                       (non-autoregressive given the durations; the decoder never reads its target)
DECODER_INPUTS = ("prev_codes", "prev_codes_dropout", "none")


class ConfigError(ValueError):
    pass


@dataclass
class ModelConfig:
    backbone: str = "mamba"        # transformer | hybrid | mamba | mamba2
    n_layers: int = 4              # audio decoder blocks (the variable the phases sweep)
    n_enc_layers: int = 2          # text encoder blocks
    d_model: int = 128             # H
    expand: float = 1.5            # E: Mamba inner width = E * H
    d_state: int = 16              # N, per channel
    d_conv: int = 4                # Mamba's causal depthwise conv width
    conv_kernels: tuple = (3, 5)   # hybrid conv branch receptive fields
    n_heads: int = 4               # transformer attention heads
    mlp_ratio: float = 4.0         # transformer MLP width / H
    mamba2_head_dim: int = 32      # P for the Mamba-2 (SSD) backbone
    d_embed: int | None = None     # E_emb for text/audio/positional tables; None -> H
    vocab_size: int = 0            # 0 -> the corpus vocabulary size
    n_codebooks: int = 8
    codebook_size: int = 1024
    max_positions: int = 2048
    dropout: float = 0.0
    layer_scale_init: float = 0.1
    style_frames: int = 150        # reference audio frames read by the style extractor (2 s)
    decoder_input: str = "none"    # see DECODER_INPUTS; "none" was chosen by the decoder ablation (notebooks/decoder_ablation)
    decoder_causal: bool | None = None  # False: attention / convolutions look both ways (only with decoder_input="none");
                                        # None: bidirectional when no codes are read (the ablation's choice), else causal
    prenet_dropout: float = 0.5    # prev_codes_dropout only
    mamba_bidirectional: bool = False  # mamba only: the stacks that may look both ways (text encoder; a decoder with
                                       # decoder_causal=False) add a second Mamba layer reading the sequence reversed
                                       # (Vim's bidirectional Mamba); a causal decoder stays forward-only
    pos_emb_std: float = 0.02      # init scale of the learned position table (text and frames); the text table is
                                   # N(0, 1), so at 0.02 attention starts nearly blind to order (Mamba scans in order)

    def __post_init__(self):
        if isinstance(self.conv_kernels, list):
            self.conv_kernels = tuple(self.conv_kernels)
        if self.vocab_size == 0:
            from ..corpus.text import VOCAB_SIZE
            self.vocab_size = VOCAB_SIZE
        if self.d_embed is None:
            self.d_embed = self.d_model
        if self.decoder_causal is None:
            self.decoder_causal = self.decoder_input != "none"
        problems = []
        if self.backbone not in BACKBONES:
            problems.append(f"unknown backbone {self.backbone!r} (choose from {', '.join(BACKBONES)})")
        for name in ("n_layers", "d_model", "d_state", "d_conv", "d_embed", "n_codebooks",
                     "codebook_size", "max_positions", "n_heads", "vocab_size", "style_frames"):
            if int(getattr(self, name)) <= 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_enc_layers < 0:
            problems.append(f"n_enc_layers must be >= 0, got {self.n_enc_layers}")
        if not self.expand > 0:
            problems.append(f"expand E must be > 0, got {self.expand}")
        elif not math.isclose(self.expand * self.d_model, round(self.expand * self.d_model)):
            problems.append(f"expand {self.expand} x d_model {self.d_model} is not a whole number of channels")
        if self.backbone == "transformer" and self.d_model % max(self.n_heads, 1):
            problems.append(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.backbone == "mamba2" and self.d_inner % self.mamba2_head_dim:
            problems.append(f"Mamba-2 inner width {self.d_inner} is not divisible by head dim {self.mamba2_head_dim}")
        if len(self.conv_kernels) != 2 or any(int(k) < 1 for k in self.conv_kernels):
            problems.append(f"conv_kernels must be two positive sizes, got {self.conv_kernels}")
        if self.decoder_input not in DECODER_INPUTS:
            problems.append(f"unknown decoder_input {self.decoder_input!r} (choose from {', '.join(DECODER_INPUTS)})")
        elif not self.decoder_causal and self.decoder_input != "none":
            problems.append("a decoder that reads previous-frame codes must be causal (decoder_causal=True): "
                            "looking ahead it would read its own targets")
        if self.mamba_bidirectional and self.backbone != "mamba":
            problems.append(f"mamba_bidirectional is for the pure Mamba backbone, not {self.backbone!r}")
        if not 0 <= self.prenet_dropout < 1:
            problems.append(f"prenet_dropout must be in [0, 1), got {self.prenet_dropout}")
        if not self.pos_emb_std > 0:
            problems.append(f"pos_emb_std must be > 0, got {self.pos_emb_std}")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if problems:
            raise ConfigError("invalid ModelConfig: " + "; ".join(problems))

    @property
    def d_inner(self) -> int:
        return int(round(self.expand * self.d_model))

    @property
    def dt_rank(self) -> int:
        return math.ceil(self.d_model / 16)

    @property
    def reads_codes(self) -> bool:
        return self.decoder_input != "none"

    @property
    def decoder_tag(self) -> str:
        """'' for the original recipe (previous-frame codes, causal), else e.g. '_dec-none' or '_dec-none-bidir'."""
        if self.decoder_input == "prev_codes":
            return ""
        name = {"prev_codes_dropout": f"prevdrop{self.prenet_dropout:g}", "none": "none"}[self.decoder_input]
        return f"_dec-{name}" + ("" if self.decoder_causal else "-bidir")

    @property
    def name(self) -> str:
        extra = f"_K{self.conv_kernels[0]}-{self.conv_kernels[1]}" if self.backbone == "hybrid" else ""
        emb = f"_Emb{self.d_embed}" if self.d_embed != self.d_model else ""
        pos = f"_pos{self.pos_emb_std:g}" if self.pos_emb_std != 0.02 else ""
        bi = "_bi" if self.mamba_bidirectional else ""
        drop = f"_drop{self.dropout:g}" if self.dropout else ""
        return f"{self.backbone}{bi}_L{self.n_layers}_H{self.d_model}_E{self.expand:g}{extra}{emb}{pos}{drop}{self.decoder_tag}"

    def with_overrides(self, overrides: dict) -> "ModelConfig":
        """`replace(self, **overrides)`, refusing a change its name would not show: run ids are built from names,
        so two models of one name would share a run id and a finished run would be taken for the other."""
        unnamed = [k for k, v in overrides.items() if v != getattr(self, k) and replace(self, **{k: v}).name == self.name]
        if unnamed:
            raise ConfigError(f"--set {', '.join(unnamed)}: the configuration's name ({self.name}) would not show this "
                              "change, so its runs would be mistaken for the unchanged model's; add the field to "
                              "ModelConfig.name first")
        return replace(self, **overrides)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["conv_kernels"] = list(self.conv_kernels)
        return d

    def to_row(self, prefix: str = "model_") -> dict:
        """Flat scalars for a CSV row (conv_kernels as 'k1-k2')."""
        d = self.to_dict()
        d["conv_kernels"] = "-".join(map(str, self.conv_kernels))
        return {prefix + k: v for k, v in d.items()}

    @classmethod
    def parse_overrides(cls, pairs: list[str]) -> dict:
        """FIELD=VALUE strings (a CLI's --set) -> overrides for `with_overrides`; values read as Python
        literals (1.0, False, (3, 5)), anything else as a string ("none")."""
        import ast
        known = {f.name for f in fields(cls)}
        out = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or key not in known:
                raise ConfigError(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of {sorted(known)}")
            try:
                out[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown ModelConfig fields: {sorted(unknown)}")
        d = dict(d)
        for k, v in list(d.items()):   # a CSV row leaves NaN where an older run had no such field
            if isinstance(v, float) and math.isnan(v):
                del d[k]
        d.setdefault("decoder_input", "prev_codes")   # rows and checkpoints from before the field: the only decoder then
        if isinstance(d.get("conv_kernels"), str):
            d["conv_kernels"] = tuple(int(k) for k in d["conv_kernels"].split("-"))
        return cls(**d)
