"""``mmbench run``: train every (method, seed), evaluate every run, write the report.

Trainings are independent, so ``--jobs N`` runs them in parallel processes (one per GPU
when several are present); ``--plan`` prints one self-contained command per run for a
cluster scheduler instead, after which ``mmbench report`` collects the run directories.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .config import TrainConfig
from .errors import UserError

DEFAULT_METHODS = ["erm", "mixup", "manifold-mixup"]
DEFAULT_SEEDS = [0, 1, 2]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def planned_configs(args: argparse.Namespace) -> tuple[list[TrainConfig], dict]:
    """One TrainConfig per (method, seed), after preset and flags are applied."""
    from .cli import _flatten, train_config
    from .methods import METHODS

    base = TrainConfig()
    preset: dict = {}
    if getattr(args, "preset", None):
        from .presets import apply_preset

        base, preset = apply_preset(args.preset, base)
    base = train_config(args, base)
    base.out_dir = args.runs_dir
    if args.methods is not None and not _flatten(args.methods):
        raise UserError("--methods is empty; give at least one method or leave it out")
    methods = _flatten(args.methods) or preset.get("methods") or DEFAULT_METHODS
    if args.seeds is not None and not _flatten(args.seeds):
        raise UserError("--seeds is empty; give at least one seed or leave it out")
    seeds = _flatten(args.seeds) or preset.get("seeds") or DEFAULT_SEEDS
    if any(s < 0 for s in seeds):
        raise UserError("--seeds must be >= 0")
    for method in methods:
        METHODS.get(method)
    if len(set(methods)) != len(methods) or len(set(seeds)) != len(seeds):
        raise UserError("--methods and --seeds must not repeat a value")
    base.validate()
    configs = []
    for method in methods:
        # Per-method alphas (a preset may give one per method); --alpha applies to all.
        alpha = base.alpha if args.alpha is not None else preset.get("alpha", {}).get(method, base.alpha)
        for seed in seeds:
            configs.append(dataclasses.replace(base, method=method, seed=seed, alpha=None if method == "erm" else alpha,
                                               mix_layers=None if method != "manifold-mixup" else base.mix_layers))
    return configs, preset


def plan_commands(configs: list[TrainConfig], eval_cfg, resume: bool) -> list[str]:
    """Self-contained POSIX shell commands: train, then evaluate, one line per run.

    Every resolved setting that differs from the defaults is spelled out, so a line means the
    same thing on any machine (a Slurm array task, say) whatever preset produced it.
    """
    from .config import EvalConfig

    lines = []
    defaults = TrainConfig()
    for cfg in configs:
        train = ["mmbench", "train", "--method", cfg.method, "--seed", str(cfg.seed), "--out-dir", cfg.out_dir, "--quiet"]
        for field in ("dataset", "data_root", "arch", "alpha", "mix_layers", "mix_loss", "pairing", "epochs", "batch_size",
                      "lr", "weight_decay", "schedule", "milestones", "holdout_fraction", "device", "amp"):
            value = getattr(cfg, field)
            if value is None or (value == getattr(defaults, field) and field != "dataset"):
                continue
            flag = "--" + field.replace("_", "-")
            train += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
        if cfg.compile:
            train.append("--compile")
        if resume:
            train.append("--resume")
        evaluate = ["mmbench", "evaluate"]
        base = EvalConfig()
        for field, flag in (("suites", "--suite"), ("attacks", "--attacks"), ("eps", "--eps"), ("eps_l2", "--eps-l2"),
                            ("corruptions", "--corruptions"), ("severities", "--severities"), ("pgd_steps", "--pgd-steps"),
                            ("pgd_restarts", "--pgd-restarts"), ("pgd_step_size", "--pgd-step-size"),
                            ("deformations", "--deformations"), ("max_examples", "--max-examples"), ("seed", "--eval-seed"),
                            ("cifar_c_root", "--cifar-c-root"), ("attack_precision", "--attack-precision")):
            value = getattr(eval_cfg, field)
            if value is None or value == getattr(base, field):
                continue
            evaluate += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
        quote = lambda parts: " ".join(shlex.quote(p) for p in parts)  # noqa: E731
        # train prints the run directory last; quoted, it may hold spaces. `run=$(...) &&` keeps
        # a failed training from starting the evaluation (plain sh, no pipefail needed).
        lines.append(f'run="$({quote(train)})" && {quote(evaluate)} "$(printf \'%s\\n\' "$run" | tail -n 1)"')
    return lines


def _train_and_evaluate(cfg: TrainConfig, eval_cfg, force: bool, resume: bool, device: str | None) -> tuple[str, float, float]:
    """One run end to end (also the body of a worker process)."""
    import torch

    from .data import load_dataset
    from .evaluation import evaluate_run
    from .train import train

    if device is not None:
        cfg = dataclasses.replace(cfg, device=device)
        eval_cfg = dataclasses.replace(eval_cfg, device=device)
    if _worker_threads:
        torch.set_num_threads(_worker_threads)
    data = _cached_dataset(cfg, load_dataset)
    started = time.perf_counter()
    run_dir = Path(cfg.out_dir) / cfg.resolved(data.default_arch).run_name
    if resume and (run_dir / "model.pt").exists() and not (run_dir / "checkpoint.pt").exists():
        accuracy = float("nan")  # finished earlier (checkpoint removed): nothing to train
    else:
        result = train(cfg, force=force, resume=resume, progress=False, data=data, log=lambda s: None)
        run_dir, accuracy = result.run_dir, result.test_accuracy
    evaluate_run(run_dir, config=eval_cfg, data=data)
    return str(run_dir), accuracy, time.perf_counter() - started


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


def run_benchmark(args: argparse.Namespace) -> int:
    from .cli import _flatten, eval_config
    from .inference import resolve_device
    from .report import headline_markdown, write_report
    from .storage import ensure_writable_dir

    configs, preset = planned_configs(args)
    eval_cfg = eval_config(args)
    if preset.get("eval"):
        from .presets import apply_eval_preset

        eval_cfg = apply_eval_preset(preset["eval"], eval_cfg, args)
    if args.plan:
        for line in plan_commands(configs, eval_cfg, args.resume):
            print(line)
        return 0
    resolve_device(configs[0].device)  # fail early on --device cuda without a GPU
    formats = _flatten(args.format) or ["md"]
    if any(f not in ("md", "html") for f in formats):
        raise UserError("unknown report format; valid: md, html")
    # Validate every destination before training anything: no run is half-overwritten.
    from .data import load_dataset

    data = _cached_dataset(configs[0], load_dataset)
    run_dirs = [Path(cfg.out_dir) / cfg.resolved(data.default_arch).run_name for cfg in configs]
    for run_dir in run_dirs:
        if not args.force and not args.resume and (run_dir / "config.toml").exists():
            raise UserError(f"run directory {run_dir} already exists; pass --force to replace it or --resume to continue it")
    ensure_writable_dir(args.out)

    started = time.perf_counter()
    jobs = min(args.jobs or default_jobs(configs[0].device), len(configs))
    devices = _job_devices(jobs, configs[0].device)
    if jobs == 1:
        results = []
        for cfg in configs:
            results.append(_train_and_evaluate(cfg, eval_cfg, args.force, args.resume, None))
            _say(f"{Path(results[-1][0]).name}: test accuracy {results[-1][1] * 100:.2f}%, {results[-1][2]:.1f} s")
    else:
        import multiprocessing as mp
        import os

        threads = max(1, (os.cpu_count() or 1) // jobs)
        # CPU workers fork: they share the parent's already-loaded libraries copy-on-write
        # (torch alone is ~0.5 GB per process otherwise), and run one torch thread, so no
        # OpenMP team is inherited. CUDA workers spawn: CUDA cannot be re-initialised in a fork.
        on_cpu = all(d is None or d == "cpu" for d in devices) and not _uses_cuda(configs[0].device)
        context = mp.get_context("fork" if on_cpu and "fork" in mp.get_all_start_methods() else "spawn")
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
            futures = [pool.submit(_train_and_evaluate, cfg, eval_cfg, args.force, args.resume, devices[i % len(devices)])
                       for i, cfg in enumerate(configs)]
            results = []
            try:
                for future in futures:
                    results.append(future.result())
                    _say(f"{Path(results[-1][0]).name}: test accuracy {results[-1][1] * 100:.2f}%, {results[-1][2]:.1f} s")
            except BaseException:  # Ctrl-C or a failed run: stop now; --resume continues from the checkpoints
                workers = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
                pool.shutdown(wait=False, cancel_futures=True)
                for process in workers:
                    process.terminate()
                raise
    seconds = time.perf_counter() - started
    write_report([r[0] for r in results], args.out, formats=formats, seconds=seconds)
    print(headline_markdown([r[0] for r in results]))
    print(f"\nreport: {Path(args.out) / 'report.md'} ({seconds:.1f} s)")
    return 0


def _uses_cuda(device: str) -> bool:
    import torch

    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def default_jobs(device: str) -> int:
    """One job per GPU on CUDA; on the CPU one single-threaded process per core.

    Small models do not share two cores well inside one process (OpenMP threads spin and
    wait on each other), while independent trainings do: on a 2-core machine two one-thread
    workers finish the default benchmark in about half the time of one two-thread process.
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
