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


def strip_run_metadata(path: Path, root: Path | None = None) -> None:
    """Drop what changes on every execution of a notebook (papermill's and Jupyter's timestamps and durations,
    and the checkout's absolute path in printed warnings: `root`, default the working directory, becomes relative),
    so that re-executing it from the same CSVs rewrites the same bytes, in any clone."""
    import json
    import os
    prefix = f"{root or os.getcwd()}/"
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell["id"] = "injected-parameters"       # papermill gives it a random id on every run
        cell.get("metadata", {}).pop("execution", None)
        for out in cell.get("outputs", []):       # a Styler's plain-text form is its memory address
            if out.get("output_type") == "stream":
                out["text"] = [line.replace(prefix, "") for line in out.get("text", [])]
            plain = out.get("data", {}).get("text/plain")
            if plain and "".join(plain).startswith("<pandas.io.formats.style.Styler at 0x"):
                out["data"]["text/plain"] = ["<pandas.io.formats.style.Styler>"]
        for k in ("start_time", "end_time", "duration"):
            cell.get("metadata", {}).get("papermill", {}).pop(k, None)
    for k in ("start_time", "end_time", "duration"):
        nb.get("metadata", {}).get("papermill", {}).pop(k, None)
    atomic_write_bytes(Path(path), (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


if __name__ == "__main__":      # python -m ssmtts.files NOTEBOOK...: strip run metadata (the Makefile, after papermill)
    import sys
    for arg in sys.argv[1:]:
        strip_run_metadata(Path(arg))
