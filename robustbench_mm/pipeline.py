"""``mmbench run``: train every (method, seed), evaluate every run, write the report.

:func:`run_benchmark` takes settings objects, so it is the same from Python and from the CLI.
Trainings are independent, so ``jobs`` > 1 runs them in parallel processes (one per GPU when
several are present); :func:`plan_commands` prints one self-contained command per run for a
cluster scheduler instead, after which ``mmbench report`` collects the run directories.
"""

from __future__ import annotations

import dataclasses
import shlex
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .errors import UserError
from .settings import EvalConfig, RunPlan, TrainConfig, to_argv


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def planned_configs(plan: RunPlan, train: TrainConfig) -> list[TrainConfig]:
    """One TrainConfig per (method, seed): ``train`` with the method, the seed and the method's
    own settings (the plan's per-method tables, then every option of ``train`` it declares)."""
    from .methods import create_method, methods_with

    for option in train.method_options:
        if not set(methods_with(option)) & set(plan.methods):
            raise UserError(f"--{option.replace('_', '-')} does not apply to any of the planned methods "
                            f"({', '.join(plan.methods)})")
    configs = []
    for method in plan.methods:
        declared = create_method(method).options()
        options = {**plan.per_method.get(method, {}), **{k: v for k, v in train.method_options.items() if k in declared}}
        create_method(method, options, cli=True)  # a bad value fails before anything trains
        for seed in plan.seeds:
            configs.append(dataclasses.replace(train, method=method, seed=seed, method_options=options))
    return configs


def resolved_runs(configs: list[TrainConfig], data) -> list[tuple[TrainConfig, Path]]:
    """Each config with its defaults filled in, and its run directory."""
    from .rundir import RunDir
    from .train import resolve_config

    out = []
    for cfg in configs:
        resolved, _ = resolve_config(cfg, data)
        out.append((resolved, RunDir.of(".", resolved).path))
    return out


def plan_commands(plan: RunPlan, train: TrainConfig, evaluate: EvalConfig) -> list[str]:
    """Self-contained POSIX shell commands: train, then evaluate, one line per run.

    Every resolved setting that differs from its default is spelled out (the method's own
    settings and the dataset's defaults included), so a line means the same thing on any machine
    (a Slurm array task, say) whatever preset or defaults produced it.
    """
    from .methods import create_method
    from .rundir import RunDir

    for label, path in (("--runs-dir", plan.runs_dir),):
        if any(c in path for c in "\n\r"):
            raise UserError(f"{label} holds a line break; a plan line cannot carry it")
    configs = planned_configs(plan, train)
    data = _data_for_names(train)
    quote = lambda parts: " ".join(shlex.quote(p) for p in parts)  # noqa: E731
    lines = []
    for cfg, _ in resolved_runs(configs, data):
        method = create_method(cfg.method, cfg.method_options)
        command = ["mmbench", "train", "--method", cfg.method, "--seed", str(cfg.seed),
                   *to_argv(cfg, skip=("method", "seed")), *to_argv(method), "--out-dir", plan.runs_dir, "--quiet"]
        command += ["--force"] * plan.force + ["--resume"] * plan.resume
        run_dir = str(RunDir.of(plan.runs_dir, cfg))
        lines.append(f"{quote(command)} && {quote(['mmbench', 'evaluate', run_dir, *to_argv(evaluate)])}")
    return lines


def _data_for_names(train: TrainConfig):
    """What naming the runs needs from the data (its name and default architecture), without
    reading a registered dataset's files: a plan is often printed where the data is not."""
    from types import SimpleNamespace

    from .data import load_dataset
    from .settings import DATASET_DEFAULTS, dataset_family

    defaults = DATASET_DEFAULTS.get(dataset_family(train.dataset))
    if train.arch or (defaults is not None and defaults.arch):
        return SimpleNamespace(name=train.dataset, default_arch=train.arch or defaults.arch)
    return load_dataset(train.dataset, train.data_root, train.download)  # an image folder: its image size decides


def _train_and_evaluate(cfg: TrainConfig, eval_cfg: EvalConfig, out_dir: str, force: bool, resume: bool,
                        device: str | None) -> tuple[str, float, float]:
    """One run end to end (also the body of a worker process)."""
    import torch

    from .data import load_dataset
    from .evaluation import evaluate_run
    from .rundir import RunDir
    from .train import resolve_config, train

    if device is not None:
        cfg = dataclasses.replace(cfg, device=device)
        eval_cfg = dataclasses.replace(eval_cfg, device=device)
    if _worker_threads:
        torch.set_num_threads(_worker_threads)
    data = _cached_dataset(cfg, load_dataset)
    started = time.perf_counter()
    run = RunDir.of(out_dir, resolve_config(cfg, data)[0])
    if resume and run.is_trained and not run.file("checkpoint.pt").exists():
        accuracy = float("nan")  # finished earlier (checkpoint removed): nothing to train
    else:
        result = train(cfg, out_dir=out_dir, force=force, resume=resume, progress=False, data=data, log=lambda s: None)
        accuracy = result.test_accuracy
    evaluate_run(run.path, config=eval_cfg, data=data)
    return str(run.path), accuracy, time.perf_counter() - started


_dataset_cache: dict = {}
_worker_threads = 0


def _cached_dataset(cfg: TrainConfig, loader):
    key = (cfg.dataset, cfg.data_root)
    if key not in _dataset_cache:
        _dataset_cache[key] = loader(cfg.dataset, cfg.data_root, cfg.download)
    return _dataset_cache[key]


def _init_worker(threads: int) -> None:
    global _worker_threads
    _worker_threads = threads
    # Ctrl-C reaches the whole process group; the parent handles it by stopping every worker
    # (a worker that caught it would go on to the next queued run)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_benchmark(plan: RunPlan, train: TrainConfig, evaluate: EvalConfig) -> int:
    """Train ``plan.methods`` x ``plan.seeds`` with ``train``'s settings, evaluate each run with
    ``evaluate``'s, and write the report into ``plan.out``."""
    from .data import load_dataset
    from .inference import resolve_device
    from .report import headline_markdown, write_report
    from .rundir import RunDir
    from .storage import ensure_writable_dir

    for obj in (plan, train, evaluate):
        obj.validate()
    configs = planned_configs(plan, train)
    resolve_device(train.device)  # fail early on --device cuda without a GPU
    # Validate every destination before training anything: no run is half-overwritten.
    data = _cached_dataset(configs[0], load_dataset)
    for cfg, _ in resolved_runs(configs, data):
        run = RunDir.of(plan.runs_dir, cfg)
        if not plan.force and not plan.resume and run.file("config.toml").exists():
            raise UserError(f"run directory {run} already exists; pass --force to replace it or --resume to continue it")
    ensure_writable_dir(plan.out)

    started = time.perf_counter()
    jobs = min(plan.jobs or default_jobs(train.device), len(configs))
    results = _run_all(configs, evaluate, plan, jobs, _job_devices(jobs, train.device))
    seconds = time.perf_counter() - started
    write_report([r[0] for r in results], plan.out, formats=plan.formats, seconds=seconds)
    print(headline_markdown([r[0] for r in results]))
    print(f"\nreport: {Path(plan.out) / 'report.md'} ({seconds:.1f} s)")
    return 0


def _run_all(configs: list[TrainConfig], evaluate: EvalConfig, plan: RunPlan, jobs: int,
             devices: list[str | None]) -> list[tuple[str, float, float]]:
    def done(result: tuple[str, float, float]) -> None:
        _say(f"{Path(result[0]).name}: test accuracy {result[1] * 100:.2f}%, {result[2]:.1f} s")

    args = (plan.runs_dir, plan.force, plan.resume)
    results = []
    if jobs == 1:
        for cfg in configs:
            results.append(_train_and_evaluate(cfg, evaluate, *args, None))
            done(results[-1])
        return results
    import multiprocessing as mp
    import os

    threads = max(1, (os.cpu_count() or 1) // jobs)
    # CPU workers fork: they share the parent's already-loaded libraries copy-on-write
    # (torch alone is ~0.5 GB per process otherwise), and run one torch thread, so no
    # OpenMP team is inherited. CUDA workers spawn: CUDA cannot be re-initialised in a fork.
    on_cpu = all(d is None or d == "cpu" for d in devices) and not _uses_cuda(configs[0].device)
    context = mp.get_context("fork" if on_cpu and "fork" in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = [pool.submit(_train_and_evaluate, cfg, evaluate, *args, devices[i % len(devices)])
                   for i, cfg in enumerate(configs)]
        try:
            for future in futures:
                results.append(future.result())
                done(results[-1])
        except BaseException:  # Ctrl-C or a failed run: stop now; --resume continues from the checkpoints
            workers = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
            pool.shutdown(wait=False, cancel_futures=True)
            for process in workers:
                process.terminate()
            raise
    return results


def _uses_cuda(device: str) -> bool:
    import torch

    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def default_jobs(device: str) -> int:
    """One job per GPU on CUDA; on the CPU one single-threaded process per core.

    Small models do not share two cores well inside one process (OpenMP threads spin and
    wait on each other), while independent trainings do.
    """
    import os

    import torch

    if device != "cpu" and torch.cuda.is_available():
        return max(1, torch.cuda.device_count())
    return max(1, os.cpu_count() or 1)


def _job_devices(jobs: int, device: str) -> list[str | None]:
    """One GPU per job when several are present; otherwise every job keeps the configured device."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.device_count() > 1:
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [None]
