"""``--launcher processes`` (the default): the runs in this process (``--jobs 1``) or in ``--jobs``
worker processes, one per GPU when several are present. A failed run stops the others and raises:
the same command continues from the checkpoints."""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

from robustbench_mm.app.runone import Outcome, RunResult, RunSpec, train_and_evaluate
from robustbench_mm.app.schedulers import Scheduler
from robustbench_mm.settings import EvalConfig, TrainConfig


class ProcessScheduler(Scheduler):
    name = "processes"

    def __init__(self, jobs: int, devices: list[str | None], chatty: bool = False) -> None:
        self.jobs, self.devices, self.chatty = jobs, devices, chatty
        self.specs: list[RunSpec] = []

    def submit(self, specs: Sequence[RunSpec]) -> None:
        self.specs += specs

    def outcomes(self) -> Iterator[Outcome]:
        specs, self.specs = self.specs, []
        if self.jobs == 1:
            for spec in specs:
                yield _outcome(spec, train_and_evaluate(*_args(spec, self.chatty), None))
            return
        results = _parallel(specs, self.jobs, self.devices, self.chatty)
        for spec, result in zip(specs, results, strict=False):  # a failure raises
            yield _outcome(spec, result)


def _args(spec: RunSpec, chatty: bool) -> tuple[TrainConfig, EvalConfig, str, bool, bool]:
    return spec.cfg, spec.evaluate, spec.runs_dir, spec.force, chatty


def _outcome(spec: RunSpec, result: RunResult) -> Outcome:
    return Outcome.finished_with(spec, result)


def _init_worker(parent: int, threads: int) -> None:
    import torch

    from robustbench_mm.core.procs import die_with_parent

    die_with_parent(parent)  # a killed `mmbench run` takes its workers with it
    # A forked child must never start an OpenMP team of its own (the parent's does not survive the
    # fork): the whole worker runs with the runs' own thread count, which train and evaluate keep.
    torch.set_num_threads(threads)
    # Ctrl-C reaches the whole process group; the parent handles it by stopping every worker
    # (a worker that caught it would go on to the next queued run)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _parallel(specs: Sequence[RunSpec], jobs: int, devices: list[str | None], chatty: bool) -> Iterator[RunResult]:
    """The runs in ``jobs`` worker processes, results in plan order as they come."""
    import multiprocessing as mp
    import os

    first = specs[0].cfg
    # CPU workers fork: they share the parent's already-loaded libraries copy-on-write (torch
    # alone is ~0.5 GB per process otherwise); each run sets its own thread count (a setting).
    # CUDA workers spawn: CUDA cannot be re-initialised in a fork.
    # (and with one thread each: an OpenMP team started in a forked child can hang on the parent's)
    on_cpu = all(d is None or d == "cpu" for d in devices) and not uses_cuda(first.device)
    forkable = on_cpu and first.cpu_threads == 1 and "fork" in mp.get_all_start_methods()
    context = mp.get_context("fork" if forkable else "spawn")
    initargs = (os.getpid(), first.cpu_threads)
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=initargs) as pool:
        futures = [
            pool.submit(train_and_evaluate, *_args(spec, chatty), devices[i % len(devices)])
            for i, spec in enumerate(specs)
        ]
        try:
            for future in futures:
                yield future.result()
        except BaseException:  # Ctrl-C or a failed run: stop now; the same command continues from the checkpoints
            workers = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
            pool.shutdown(wait=False, cancel_futures=True)
            for process in workers:
                process.terminate()
            raise


def uses_cuda(device: str) -> bool:
    import torch

    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def default_jobs(device: str, cpu_threads: int = 1) -> int:
    """One job per GPU on CUDA; on the CPU one process per ``cpu_threads`` cores.

    Small models do not share two cores well inside one process (OpenMP threads spin and
    wait on each other), while independent trainings do.
    """
    import os

    import torch

    if device != "cpu" and torch.cuda.is_available():
        return max(1, torch.cuda.device_count())
    return max(1, (os.cpu_count() or 1) // cpu_threads)


def job_devices(jobs: int, device: str) -> list[str | None]:
    """One GPU per job when several are present; otherwise every job keeps the configured device."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.device_count() > 1:
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [None]
