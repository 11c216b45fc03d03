"""Phases on a local Ray cluster: the same learning rows as the serial executor, also when a worker dies mid-run."""
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ssmtts.executors import ExecutorError, run_jobs
from ssmtts.phases import PHASES, phase_jobs, record_run, run_phase, train_job
from ssmtts.train.loop import run_training

ray = pytest.importorskip("ray", reason="the Ray executor is an optional extra: pip install -e .[ray]")

# what a run learned (compared exactly up to float32 noise); times, memory and provenance columns differ
NOT_LEARNING = ("elapsed_s", "wall", "_ms", "ms_", "mem", "tokens_per_s", "git_commit", "executor", "torch_threads",
                "malloc", "_s_to_", "minutes")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])   # this module's die_once runs in the workers
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def serial(corpus, tmp_path_factory):
    """The serial executor's rows (both protocols, two seeds), with one thread as the Ray tasks run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                   # same float summation order as the tasks (threads=1)
    try:
        return run_phase("phase1", corpus, "smoke", seeds=(0, 1), out_dir=tmp_path_factory.mktemp("serial"),
                         protocols=["heldout", "reported"], progress=False)
    finally:
        torch.set_num_threads(threads)


def _same_learning(a: pd.DataFrame, b: pd.DataFrame, key):
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    assert list(a[key].itertuples(index=False)) == list(b[key].itertuples(index=False))
    cols = [c for c in a.columns if c in b.columns and not any(s in c for s in NOT_LEARNING) and not c.endswith("_s")]
    for c in cols:
        if pd.api.types.is_numeric_dtype(a[c]):
            np.testing.assert_allclose(a[c].to_numpy(float), b[c].to_numpy(float), rtol=1e-6, atol=1e-9, err_msg=c)
        else:
            assert a[c].fillna("").astype(str).tolist() == b[c].fillna("").astype(str).tolist(), c
    return cols


def test_a_smoke_phase_on_ray_gives_the_serial_rows(corpus, tmp_path, local_ray, serial):
    on_ray = run_phase("phase1", corpus, "smoke", seeds=(0, 1), out_dir=tmp_path / "ray", protocols=["heldout", "reported"],
                       progress=False, executor="ray", threads=1)
    assert len(on_ray["runs"]) == 8 and set(on_ray["runs"].executor) == {"ray"}
    cols = _same_learning(serial["runs"], on_ray["runs"], ["run_id"])
    assert {"best_train_acc", "best_val_acc", "final_val_ce"} <= set(cols)
    _same_learning(serial["curves"], on_ray["curves"], ["run_id", "step"])
    _same_learning(serial["milestones"], on_ray["milestones"], ["run_id", "metric", "threshold"])


def die_once(job):
    """Train to the first checkpoint, then kill this worker process (once per run): Ray retries the task."""
    marker = Path(job["marker"])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        run_training(job["model"], job["train"], job["corpus"], job["meta"]["seed"], job["meta"]["run_id"],
                     Path(job["ckpt_dir"]), job["device"], stop_after=job["train"].checkpoint_every, progress=False)
        os._exit(1)
    return train_job(job)


def test_a_run_whose_worker_dies_is_retried_and_resumes_to_the_same_rows(corpus, tmp_path, local_ray, serial):
    heldout = {k: v[v.protocol == "heldout"] for k, v in serial.items() if k in ("runs", "curves")}
    out = tmp_path / "ray" / "phase1"
    out.mkdir(parents=True)
    models, trains = PHASES["phase1"]("smoke")
    jobs = phase_jobs("phase1", corpus, "smoke", (0, 1), out, models, trains, ["heldout"], "cpu")
    for i, job in enumerate(jobs):
        job["marker"] = str(tmp_path / f"died-{i}")
    run_jobs(jobs, die_once, lambda job, result: record_run(out, job, result, "ray"), "ray", threads=1)
    assert all(Path(j["marker"]).is_file() for j in jobs)                     # every run's first worker died
    assert all(int(Path(j["marker"]).read_text()) != os.getpid() for j in jobs)
    _same_learning(heldout["runs"], pd.read_csv(out / "runs.csv"), ["run_id"])
    _same_learning(heldout["curves"], pd.read_csv(out / "curves.csv"), ["run_id", "step"])


def test_unknown_or_missing_executors_are_clear_errors():
    with pytest.raises(ExecutorError, match="unknown executor 'dask'"):
        run_jobs([{}], lambda j: j, lambda j, r: None, "dask")
