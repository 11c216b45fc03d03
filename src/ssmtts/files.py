"""Atomic file writes: a reader (or a run killed mid-write) never sees half a file.

Every writer in the package goes through `atomic_write_bytes`: the data goes to a temporary file
in the same folder (so the rename stays on one filesystem), then `os.replace` puts it in place.
"""
from __future__ import annotations

import io
import os
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_torch_save(obj, path: Path) -> None:
    """torch.save through `atomic_write_bytes` (checkpoints, exported models)."""
    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_csv(df, path: Path) -> None:
    """A pandas DataFrame as CSV (no index), atomically."""
    atomic_write_bytes(path, df.to_csv(index=False).encode("utf-8"))
