"""Where a phase's runs execute: one after another in this process (`serial`), or as Ray tasks (`ray`).

    run_jobs(jobs, fn, on_result, executor="serial" | "ray", threads=1, gpus=0)

Every job is one (configuration, protocol, seed) run, a plain dict; `fn(job)` trains it and returns
its rows; `on_result(job, result)` runs in the driver as each job completes, so the driver alone
writes the CSVs. Under Ray every job is a task asking for `threads` CPUs (or one GPU); a task whose
worker dies (killed, out of memory, a lost node) is retried up to `retries` times and resumes from
its checkpoint, which must sit on a path every worker sees (`checkpoint_dir` of the runtime config,
SSMTTS_CHECKPOINTS; on one machine the default `results/<phase>/checkpoints` is one). An exception
raised by the job itself is not retried: it reaches the driver like in a serial run.

Ray is optional (`pip install -e .[ray]`): `executor="ray"` without it is a clear error; `serial` never
imports it. `address` (RAY_ADDRESS) joins a running cluster; without one a local cluster starts with
this machine's cores, so on a 2-core laptop two single-thread runs go side by side.
"""
from __future__ import annotations

from typing import Callable

from .runtime import EXECUTORS, configure, current


class ExecutorError(RuntimeError):
    pass


def _configured(fn: Callable, runtime_fields: dict):
    """fn run under the driver's runtime config (threads, scan backend, ...): a worker starts with its own."""
    def run(job):
        configure(**runtime_fields)
        return fn(job)
    return run


def run_jobs(jobs: list[dict], fn: Callable[[dict], dict], on_result: Callable[[dict, dict], None],
             executor: str = "serial", threads: int = 1, gpus: float = 0, retries: int = 3,
             address: str | None = None) -> None:
    """Run fn on every job and hand each result to on_result in this process, as it completes."""
    if executor not in EXECUTORS:
        raise ExecutorError(f"unknown executor {executor!r}: choose from {EXECUTORS}")
    if executor == "serial":
        for job in jobs:
            on_result(job, fn(job))
        return
    if not jobs:
        return
    try:
        import ray
    except ImportError as e:
        raise ExecutorError("EXECUTOR=ray needs Ray: `pip install -e .[ray]` (or use the serial executor)") from e
    from dataclasses import asdict
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    runtime_fields = {**asdict(current()), "threads": threads}
    task = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=retries)(_configured(fn, runtime_fields))
    pending = {task.remote(job): job for job in jobs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(done[0])
        on_result(job, ray.get(done[0]))
