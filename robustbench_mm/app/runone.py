"""One run end to end, the unit every scheduler hands out: trained (or resumed, or reused), then
evaluated unless its evaluation with these settings is already stored."""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Any

from robustbench_mm.settings import EvalConfig, TrainConfig


@dataclass(frozen=True)
class RunSpec:
    """What a scheduler is asked to carry out: one (method, seed) of a plan."""

    index: int  # its place in the plan (the report lists runs in plan order)
    name: str  # the run directory's name under ``runs_dir``
    cfg: TrainConfig
    evaluate: EvalConfig
    runs_dir: str
    force: bool = False

    def run_dir(self) -> str:
        from pathlib import Path

        return str(Path(self.runs_dir) / self.name)


@dataclass(frozen=True)
class RunResult:
    """What :func:`train_and_evaluate` hands back (across processes and cluster jobs: picklable)."""

    run_dir: str
    test_accuracy: float
    seconds: float
    what: str  # trained | resumed | up to date[, evaluation reused]


@dataclass
class Outcome:
    """What became of a run: ``finished`` (trained and evaluated), ``failed``, ``skipped`` (a
    budget left no room for it) or ``stopped`` (in flight when the budget ran out)."""

    spec: RunSpec
    state: str
    test_accuracy: float = float("nan")
    seconds: float = 0.0
    what: str = ""  # trained | resumed | up to date[, evaluation reused]
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.state == "finished"

    @classmethod
    def finished_with(cls, spec: RunSpec, result: RunResult) -> Outcome:
        return cls(spec, "finished", test_accuracy=result.test_accuracy, seconds=result.seconds, what=result.what)

    def line(self) -> str:
        """The progress line for this run."""
        if self.finished:
            return f"{self.spec.name} {self.what}, test accuracy {self.test_accuracy * 100:.2f}%, {self.seconds:.1f} s"
        return f"{self.spec.name} {self.state}" + (f": {self.error}" if self.error else "")


def train_and_evaluate(
    cfg: TrainConfig, eval_cfg: EvalConfig, out_dir: str, force: bool, chatty: bool, device: str | None
) -> RunResult:
    """One run end to end (also the body of a worker process or cluster job). ``chatty``: a line
    on stderr per epoch and when evaluating starts, named by the run (runs in parallel interleave)."""
    from robustbench_mm.evaluation.runner import evaluate_run

    if device is not None:
        cfg = dataclasses.replace(cfg, device=device)
        eval_cfg = dataclasses.replace(eval_cfg, device=device)
    data = cached_dataset(cfg)
    started = time.perf_counter()
    result = train_only(cfg, out_dir, force, chatty, data)
    _say(chatty, cfg, "evaluating")
    evaluation = evaluate_run(result.run_dir, config=eval_cfg, data=data, reuse=True)
    what = describe(result.state, reused_evaluation=evaluation.seconds == 0)
    return RunResult(str(result.run_dir), result.test_accuracy, time.perf_counter() - started, what)


def train_only(cfg: TrainConfig, out_dir: str, force: bool, chatty: bool, data: Any) -> Any:
    from robustbench_mm.training.loop import train

    say = (lambda message: _say(True, cfg, message)) if chatty else (lambda message: None)
    return train(cfg, out_dir=out_dir, force=force, progress="lines" if chatty else False, data=data, log=say)


def describe(train_state: str, reused_evaluation: bool) -> str:
    what = {"finished": "up to date", "resume": "resumed"}.get(train_state, "trained")
    return what + (", evaluation reused" if reused_evaluation and train_state == "finished" else "")


def _say(chatty: bool, cfg: TrainConfig, message: str) -> None:
    if chatty:
        print(f"{cfg.method}-s{cfg.seed}: {message}", file=sys.stderr, flush=True)


_dataset_cache: dict = {}


def cached_dataset(cfg: TrainConfig) -> Any:
    """The dataset, decoded once per process (every run of a plan shares it)."""
    from robustbench_mm.data.datasets import load_dataset

    key = (cfg.dataset, cfg.data_root)
    if key not in _dataset_cache:
        _dataset_cache[key] = load_dataset(cfg.dataset, cfg.data_root, cfg.download)
    return _dataset_cache[key]


def is_complete(spec: RunSpec) -> bool:
    """Trained with these settings and evaluated with these: nothing left to do for the run."""
    from robustbench_mm.evaluation.catalog import default_suites
    from robustbench_mm.store.accumulate import already_done
    from robustbench_mm.store.rundir import RunDir
    from robustbench_mm.training.loop import resolve_config

    run = RunDir(spec.run_dir())
    if spec.force or not run.is_trained:
        return False
    resolved, _ = resolve_config(spec.cfg, cached_dataset(spec.cfg))
    if run.training_state(resolved, False) != "finished" or (stored := run.evaluation()) is None:
        return False
    # evaluate_run names the default suites before it compares settings; so do we
    evaluate = dataclasses.replace(spec.evaluate, suites=spec.evaluate.suites or default_suites()).validate()
    return already_done(stored, run, evaluate) is not None
