"""Typed inference and chunk states: one dataclass per mixer, tensors as fields.

A decoder's state is a list with one entry per block (`Backbone.allocate_state`). Each entry is
the state of that block's mixer: `MambaState` (Mamba-1 and Mamba-2 layers), `HybridState` (the
hybrid's Mamba branch and its convolutions' last inputs) or `KVCache` (attention). A state
passed to a layer is never modified in place; the layer returns the new one.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch


class State:
    """Shared helpers of the state dataclasses (tensor fields, possibly nested states or tuples)."""

    def map(self, fn):
        """The same state with `fn` applied to every tensor (e.g. `lambda t: t.detach()`)."""
        return type(self)(**{f.name: _map(getattr(self, f.name), fn) for f in fields(self)})

    def detach(self):
        return self.map(torch.Tensor.detach)

    @property
    def ssm(self) -> torch.Tensor | None:      # overridden by states that hold an SSM state
        return None


def _map(value, fn):
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, State):
        return value.map(fn)
    if isinstance(value, (tuple, list)):
        return type(value)(_map(v, fn) for v in value)
    return value


@dataclass
class MambaState(State):
    conv: torch.Tensor          # (B, d_conv - 1, C): the last inputs of the causal depthwise conv
    ssm_state: torch.Tensor     # Mamba-1: (B, Din, N); Mamba-2: (B, heads, head_dim, N)

    @property
    def ssm(self) -> torch.Tensor:
        return self.ssm_state


@dataclass
class HybridState(State):
    mamba: MambaState
    convs: tuple                # one (B, k - 1, H) tensor per causal conv branch: its last inputs

    @property
    def ssm(self) -> torch.Tensor:
        return self.mamba.ssm_state


@dataclass
class KVCache(State):
    k: torch.Tensor             # (B, heads, T_past, H / heads)
    v: torch.Tensor             # (B, heads, T_past, H / heads)


def detach_state(state: list | None) -> list | None:
    """A decoder state (one State per block) cut from the graph, e.g. between training chunks."""
    return None if state is None else [s.detach() if s is not None else None for s in state]


def ssm_rms(state: list) -> float:
    """RMS over all entries of the SSM states in a decoder state (blocks without one are skipped)."""
    sq, n = 0.0, 0
    for s in state:
        if s is not None and s.ssm is not None:
            sq, n = sq + float(s.ssm.float().pow(2).sum()), n + s.ssm.numel()
    return (sq / n) ** 0.5 if n else float("nan")


STATE_TYPES = {cls.__name__: cls for cls in (MambaState, HybridState, KVCache)}


def to_plain(x):
    """States (nested in lists/tuples) -> dicts tagged with their type: what a checkpoint loaded with
    `torch.load(weights_only=True)` may hold. `from_plain` rebuilds them."""
    if isinstance(x, State):
        return {"state_type": type(x).__name__, **{f.name: to_plain(getattr(x, f.name)) for f in fields(x)}}
    if isinstance(x, (list, tuple)):
        return type(x)(to_plain(v) for v in x)
    return x


def from_plain(x):
    if isinstance(x, dict) and "state_type" in x:
        return STATE_TYPES[x["state_type"]](**{k: from_plain(v) for k, v in x.items() if k != "state_type"})
    if isinstance(x, (list, tuple)):
        return type(x)(from_plain(v) for v in x)
    return x
