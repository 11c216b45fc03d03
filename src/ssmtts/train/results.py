"""Tidy CSVs written atomically, run metadata, and mean +- 95% CI summaries."""
from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import atomic_write_csv  # noqa: F401  (re-exported: the CSV writers import it from here)


def upsert_rows(path: Path, rows: pd.DataFrame, key: str | tuple[str, ...] = "run_id") -> pd.DataFrame:
    """Replace any rows of the same key (a column, or several) and append: re-running a run never duplicates it."""
    path = Path(path)
    if path.is_file() and path.stat().st_size > 0:
        old = pd.read_csv(path)
        cols = [key] if isinstance(key, str) else list(key)
        new_keys = set(map(tuple, rows[cols].astype(str).to_numpy()))
        old = old[[k not in new_keys for k in map(tuple, old[cols].astype(str).to_numpy())]]
        rows = pd.concat([old, rows], ignore_index=True) if len(old) else rows
    atomic_write_csv(rows, path)
    return rows


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10)
        # outputs under results/ (re-executed notebooks, figures) do not make the code dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/", ":!/results"],
                               capture_output=True, text=True, cwd=Path(__file__).parent, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except Exception:
        return "unknown"


def environment_row(device: str) -> dict:
    """Where and how a result was made: the runtime config's columns (scan path that ran, kernel ISA, threads,
    malloc, device, dtype), CPU, versions and the commit."""
    import torch

    from ..runtime import runtime_row
    versions = {}
    for pkg in ("numpy", "pandas", "mambapy", "mamba-ssm", "encodec"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = ""
    return {**runtime_row(device), "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
            "python": platform.python_version(), "packages": ";".join(f"{k}={v}" for k, v in versions.items() if v),
            "git_commit": git_commit()}


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, int]:
    """Mean, half-width of the t-based CI, and n (NaNs dropped; half-width NaN for n < 2)."""
    from scipy import stats
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return np.nan, np.nan, 0
    if n == 1:
        return float(v[0]), np.nan, 1
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * v.std(ddof=1) / np.sqrt(n)
    return float(v.mean()), float(half), n


def summarize(runs: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per group: <metric>_mean, <metric>_ci95 over finished runs, n; runs that diverged or ran
    out of memory are counted in n_diverged / n_oom."""
    rows = []
    for keys, g in runs.groupby(by, sort=False):
        row = dict(zip(by, keys if isinstance(keys, tuple) else (keys,)))
        ok = g[g["status"] == "finished"]
        row["n"], row["n_diverged"] = len(ok), int((g["status"] == "diverged").sum())
        row["n_oom"] = int((g["status"] == "out_of_memory").sum())
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_ci95"], _ = mean_ci(ok[m].to_numpy(dtype=float))
        rows.append(row)
    return pd.DataFrame(rows)
