"""``mmbench run``: train every (method, seed), evaluate every run, write the report.

:func:`run_benchmark` takes settings objects, so it is the same from Python and from the CLI.
Trainings are independent, so ``jobs`` > 1 runs them in parallel processes (one per GPU when
several are present); :func:`plan_commands` prints one self-contained command per run for a
cluster scheduler instead, after which ``mmbench report`` collects the run directories.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from robustbench_mm.core.errors import UserError
from robustbench_mm.settings import EvalConfig, RunPlan, TrainConfig, to_argv


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def planned_configs(plan: RunPlan, train: TrainConfig) -> list[TrainConfig]:
    """One TrainConfig per (method, seed): ``train`` with the method, the seed and the method's
    own settings (the plan's per-method tables, then every option of ``train`` it declares)."""
    from robustbench_mm.methods import create_method, methods_with

    for option in train.method_options:
        if not set(methods_with(option)) & set(plan.methods):
            raise UserError(
                f"--{option.replace('_', '-')} does not apply to any of the planned methods ({', '.join(plan.methods)})"
            )
    configs = []
    for method in plan.methods:
        declared = create_method(method).options()
        options = {
            **plan.per_method.get(method, {}),
            **{k: v for k, v in train.method_options.items() if k in declared},
        }
        create_method(method, options, cli=True)  # a bad value fails before anything trains
        for seed in plan.seeds:
            configs.append(dataclasses.replace(train, method=method, seed=seed, method_options=options))
    return configs


def resolved_runs(configs: list[TrainConfig], data) -> list[tuple[TrainConfig, Path]]:
    """Each config with its defaults filled in, and its run directory."""
    from robustbench_mm.store.rundir import RunDir
    from robustbench_mm.training.loop import resolve_config

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
    from robustbench_mm.methods import create_method
    from robustbench_mm.store.rundir import RunDir

    for label, path in (("--runs-dir", plan.runs_dir),):
        if any(c in path for c in "\n\r"):
            raise UserError(f"{label} holds a line break; a plan line cannot carry it")
    configs = planned_configs(plan, train)
    data = _data_for_names(train)
    quote = lambda parts: " ".join(shlex.quote(p) for p in parts)  # noqa: E731
    lines = []
    for cfg, _ in resolved_runs(configs, data):
        method = create_method(cfg.method, cfg.method_options)
        command = [
            "mmbench",
            "train",
            "--method",
            cfg.method,
            "--seed",
            str(cfg.seed),
            *to_argv(cfg, skip=("method", "seed")),
            *to_argv(method),
            "--out-dir",
            plan.runs_dir,
            "--quiet",
        ]
        command += ["--force"] * plan.force
        run_dir = str(RunDir.of(plan.runs_dir, cfg))
        lines.append(f"{quote(command)} && {quote(['mmbench', 'evaluate', run_dir, *to_argv(evaluate)])}")
    return lines


def _data_for_names(train: TrainConfig):
    """What naming the runs needs from the data (its name and default architecture), without
    reading a registered dataset's files: a plan is often printed where the data is not."""
    from types import SimpleNamespace

    from robustbench_mm.data.datasets import load_dataset
    from robustbench_mm.settings import DATASET_DEFAULTS, dataset_family

    defaults = DATASET_DEFAULTS.get(dataset_family(train.dataset))
    if train.arch or (defaults is not None and defaults.arch):
        return SimpleNamespace(
            name=train.dataset, default_arch=train.arch or defaults.arch, profile=dataset_family(train.dataset)
        )
    return load_dataset(train.dataset, train.data_root, train.download)  # an image folder: its image size decides


def _train_and_evaluate(
    cfg: TrainConfig, eval_cfg: EvalConfig, out_dir: str, force: bool, chatty: bool, device: str | None
) -> tuple[str, float, float, str]:
    """One run end to end (also the body of a worker process): trained, resumed or reused, then
    evaluated unless its evaluation with these settings is already stored. ``chatty``: a line on
    stderr per epoch and when evaluating starts, named by the run (runs in parallel interleave)."""
    from robustbench_mm.data.datasets import load_dataset
    from robustbench_mm.evaluation.runner import evaluate_run
    from robustbench_mm.training.loop import train

    if device is not None:
        cfg = dataclasses.replace(cfg, device=device)
        eval_cfg = dataclasses.replace(eval_cfg, device=device)
    data = _cached_dataset(cfg, load_dataset)
    started = time.perf_counter()
    say = (
        (lambda message: print(f"{cfg.method}-s{cfg.seed}: {message}", file=sys.stderr, flush=True))
        if chatty
        else (lambda message: None)
    )
    result = train(cfg, out_dir=out_dir, force=force, progress="lines" if chatty else False, data=data, log=say)
    say("evaluating")
    evaluation = evaluate_run(result.run_dir, config=eval_cfg, data=data, reuse=True)
    what = {"finished": "up to date", "resume": "resumed"}.get(result.state, "trained")
    what += ", evaluation reused" if evaluation.seconds == 0 and result.state == "finished" else ""
    return str(result.run_dir), result.test_accuracy, time.perf_counter() - started, what


_dataset_cache: dict = {}


def _cached_dataset(cfg: TrainConfig, loader):
    key = (cfg.dataset, cfg.data_root)
    if key not in _dataset_cache:
        _dataset_cache[key] = loader(cfg.dataset, cfg.data_root, cfg.download)
    return _dataset_cache[key]


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


def run_benchmark(plan: RunPlan, train: TrainConfig, evaluate: EvalConfig) -> int:
    """Train ``plan.methods`` x ``plan.seeds`` with ``train``'s settings, evaluate each run with
    ``evaluate``'s, and write the report into ``plan.out``.

    Make-like, as ``train`` is: a second call with the same settings reuses every finished run and
    its evaluation and only writes the report again; interrupted runs continue; runs of other
    settings are refused (``plan.force`` replaces them).
    """
    from robustbench_mm.core.inference import resolve_device
    from robustbench_mm.data.datasets import load_dataset
    from robustbench_mm.report import headline_text, write_report
    from robustbench_mm.store.rundir import RunDir
    from robustbench_mm.store.storage import ensure_writable_dir

    for obj in (plan, train, evaluate):
        obj.validate()
    configs = planned_configs(plan, train)
    resolve_device(train.device)  # fail early on --device cuda without a GPU
    data = _cached_dataset(configs[0], load_dataset)
    for cfg, _ in resolved_runs(configs, data):  # every destination checked before anything trains
        RunDir.of(plan.runs_dir, cfg).training_state(cfg, plan.force)
    created = not Path(plan.out).exists()
    ensure_writable_dir(plan.out)

    started = time.perf_counter()
    jobs = min(plan.jobs or default_jobs(train.device, train.cpu_threads), len(configs))
    try:
        results = _run_all(configs, evaluate, plan, jobs, _job_devices(jobs, train.device))
    except BaseException:  # refused (a run's lock) or interrupted: leave no empty report folder behind
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(plan.out)  # only ever removes an empty folder
        raise
    seconds = time.perf_counter() - started
    report = write_report(
        [r[0] for r in results], plan.out, formats=plan.formats, seconds=seconds, floor=plan.accuracy_floor
    )
    print(headline_text(report))
    print(f"\nreport: {Path(plan.out) / ('report.' + plan.formats[0])} ({seconds:.1f} s)")
    return 1 if plan.strict and report.guard.fired else 0


def _run_all(
    configs: list[TrainConfig], evaluate: EvalConfig, plan: RunPlan, jobs: int, devices: list[str | None]
) -> list[tuple[str, float, float, str]]:
    from robustbench_mm.core.progress import Progress, mode_for

    progress = Progress(len(configs), "runs", mode_for(plan.quiet), unit="run", leave=True)

    def done(result: tuple[str, float, float, str]) -> None:
        progress.update(
            1, f"{Path(result[0]).name} {result[3]}, test accuracy {result[1] * 100:.2f}%, {result[2]:.1f} s"
        )

    args = (plan.runs_dir, plan.force, progress.mode == "lines")
    results = []
    with progress:
        if jobs == 1:
            for cfg in configs:
                results.append(_train_and_evaluate(cfg, evaluate, *args, None))
                done(results[-1])
            return results
        for result in _parallel(configs, evaluate, args, jobs, devices):
            results.append(result)
            done(result)
    return results


def _parallel(configs, evaluate, args, jobs, devices):
    """The runs in ``jobs`` worker processes, results in plan order as they come."""
    import multiprocessing as mp
    import os

    # CPU workers fork: they share the parent's already-loaded libraries copy-on-write (torch
    # alone is ~0.5 GB per process otherwise); each run sets its own thread count (a setting).
    # CUDA workers spawn: CUDA cannot be re-initialised in a fork.
    # (and with one thread each: an OpenMP team started in a forked child can hang on the parent's)
    on_cpu = all(d is None or d == "cpu" for d in devices) and not _uses_cuda(configs[0].device)
    forkable = on_cpu and configs[0].cpu_threads == 1 and "fork" in mp.get_all_start_methods()
    context = mp.get_context("fork" if forkable else "spawn")
    initargs = (os.getpid(), configs[0].cpu_threads)
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=initargs) as pool:
        futures = [
            pool.submit(_train_and_evaluate, cfg, evaluate, *args, devices[i % len(devices)])
            for i, cfg in enumerate(configs)
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


def _uses_cuda(device: str) -> bool:
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


def _job_devices(jobs: int, device: str) -> list[str | None]:
    """One GPU per job when several are present; otherwise every job keeps the configured device."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.device_count() > 1:
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [None]
