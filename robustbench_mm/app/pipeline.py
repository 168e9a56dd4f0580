"""``mmbench run``: train every (method, seed), evaluate every run, write the report.

:func:`run_benchmark` takes settings objects, so it is the same from Python and from the CLI.
The runs are independent; a scheduler (:mod:`robustbench_mm.app.schedulers`: local processes,
the overlapped single-device schedule, submitit jobs on this machine or on Slurm) carries them
out. :func:`plan_commands` prints one self-contained command per run for any other cluster
scheduler instead, after which ``mmbench report`` collects the run directories.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import sys
import time
from pathlib import Path

from robustbench_mm.core.errors import UserError
from robustbench_mm.settings import EvalConfig, RunPlan, TrainConfig, to_argv


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def planned_configs(plan: RunPlan, train: TrainConfig) -> list[TrainConfig]:
    """One TrainConfig per (method, seed): ``train`` with the method, the seed and the method's
    own settings (the plan's per-method tables, then every option of ``train`` it declares)."""
    from robustbench_mm.methods import METHODS, create_method, methods_with
    from robustbench_mm.settings import settings_of

    for option in train.method_options:
        if not set(methods_with(option)) & set(plan.methods):
            raise UserError(
                f"--{option.replace('_', '-')} does not apply to any of the planned methods ({', '.join(plan.methods)})"
            )
    configs = []
    for method in plan.methods:
        # every declared setting, not options(): that omits settings whose default is None (--at-eps)
        declared = {s.name for s in settings_of(METHODS.get(method))}
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

    from robustbench_mm.data.cards import CARDS, dataset_family
    from robustbench_mm.data.datasets import load_dataset

    defaults = CARDS.get(dataset_family(train.dataset))
    if train.arch or (defaults is not None and defaults.arch):
        arch = train.arch or (defaults.arch if defaults is not None else None)
        return SimpleNamespace(name=train.dataset, default_arch=arch, profile=dataset_family(train.dataset))
    return load_dataset(train.dataset, train.data_root, train.download)  # an image folder: its image size decides


def run_benchmark(plan: RunPlan, train: TrainConfig, evaluate: EvalConfig) -> int:
    """Train ``plan.methods`` x ``plan.seeds`` with ``train``'s settings, evaluate each run with
    ``evaluate``'s, and write the report into ``plan.out``; ``plan.launcher`` says how the runs
    are carried out (:mod:`robustbench_mm.app.schedulers`), which never changes a number.

    Make-like, as ``train`` is: a second call with the same settings reuses every finished run and
    its evaluation and only writes the report again; interrupted runs continue; runs of other
    settings are refused (``plan.force`` replaces them). Returns the exit status: 0, or 1 when a
    run did not finish (failed, or left out by a budget) or (``plan.strict``) is undertrained.
    """
    from robustbench_mm.app.runone import RunSpec, cached_dataset
    from robustbench_mm.app.schedulers import create_scheduler
    from robustbench_mm.core.files import ensure_writable_dir
    from robustbench_mm.core.inference import resolve_device
    from robustbench_mm.core.progress import Progress, mode_for
    from robustbench_mm.store.rundir import RunDir

    for obj in (plan, train, evaluate):
        obj.validate()
    configs = planned_configs(plan, train)
    if plan.launcher != "slurm":  # a login node has no GPU; the jobs' nodes do
        resolve_device(train.device)  # fail early on --device cuda without a GPU
    data = cached_dataset(configs[0])
    specs = []
    for i, (cfg, (resolved, _)) in enumerate(zip(configs, resolved_runs(configs, data), strict=True)):
        RunDir.of(plan.runs_dir, resolved).training_state(resolved, plan.force)  # checked before anything trains
        specs.append(RunSpec(i, resolved.run_name, cfg, evaluate, plan.runs_dir, plan.force))
    progress = Progress(len(specs), "runs", mode_for(plan.quiet), unit="run", leave=True)
    scheduler = create_scheduler(plan, train, len(specs), chatty=progress.mode == "lines")
    created = not Path(plan.out).exists()
    ensure_writable_dir(plan.out)

    started = time.perf_counter()
    try:
        with scheduler:
            scheduler.submit(specs)
            if scheduler.detached:
                _say(scheduler.summary())
                if not plan.wait:
                    _say(f"not waiting: `mmbench status {plan.runs_dir}` shows the runs; `mmbench run` again attaches")
                    return 0
            outcomes = _collect(scheduler, progress, plan)
    except BaseException:  # refused (a run's lock) or interrupted: leave no empty report folder behind
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(plan.out)  # only ever removes an empty folder
        raise
    return _report(plan, outcomes, time.perf_counter() - started)


def _collect(scheduler, progress, plan: RunPlan) -> list:
    """Every run's outcome, in plan order."""
    outcomes = []
    try:
        with progress:
            for outcome in scheduler.outcomes():
                outcomes.append(outcome)
                progress.update(1, outcome.line())
    except KeyboardInterrupt:
        if scheduler.detached:
            from robustbench_mm.app.schedulers.cluster import waiting_hint

            _say(waiting_hint(plan))
        raise
    return sorted(outcomes, key=lambda o: o.spec.index)


def _report(plan: RunPlan, outcomes: list, seconds: float) -> int:
    """The report over the runs that finished; the others named, with the way to go on."""
    from robustbench_mm.report import headline_text, write_report

    finished = [o for o in outcomes if o.finished]
    missing = [o for o in outcomes if not o.finished]
    for outcome in missing:
        _say(f"not finished: {outcome.line()}")
    if not finished:
        raise UserError(f"no run finished; `mmbench status {plan.runs_dir}` shows each run's state")
    report = write_report(
        [o.spec.run_dir() for o in finished], plan.out, formats=plan.formats, seconds=seconds, floor=plan.accuracy_floor
    )
    print(headline_text(report))
    print(f"\nreport: {Path(plan.out) / ('report.' + plan.formats[0])} ({seconds:.1f} s)")
    if missing:
        _say(f"incomplete: {len(missing)} of {len(outcomes)} runs not in the report; the same command continues them")
        return 1
    return 1 if plan.strict and report.guard.fired else 0
