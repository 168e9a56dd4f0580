"""Reading a set of evaluated run directories back, and refusing sets that are not one comparison."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..errors import UserError
from ..rundir import RunDir


@dataclass
class RunSet:
    """Everything read back from a set of evaluated run directories."""

    metrics: pd.DataFrame
    per_example: dict[str, dict] = field(default_factory=dict)  # run name -> {(suite, test, sev): bool array}
    reliability: pd.DataFrame | None = None
    configs: dict[str, dict] = field(default_factory=dict)  # run name -> config.toml contents
    train_seconds: float = 0.0


def collect(run_dirs: Sequence[str | Path]) -> RunSet:
    if not run_dirs:
        raise UserError("no run directories given to report")
    frames, per_example, bins, configs, seconds = [], {}, [], {}, 0.0
    for run in map(RunDir, run_dirs):
        if not run.path.is_dir():
            raise UserError(f"run directory not found: {run.path}")
        frames.append(run.read_metrics())
        per_example[run.name] = run.read_per_example()
        reliability = run.read_reliability()
        if reliability is not None:
            bins.append(reliability)
        if run.file("config.toml").exists():
            configs[run.name] = run.read_toml()
        log = run.read_train_log()
        if log is not None:
            seconds += float(log["seconds"].sum())
    metrics = pd.concat(frames, ignore_index=True)
    if metrics.empty:
        raise UserError("the given runs hold no metrics")
    datasets = sorted(metrics["dataset"].astype(str).unique())
    if len(datasets) > 1:
        raise UserError(f"cannot report over runs of different datasets: {', '.join(datasets)}")
    if metrics.duplicated(subset=["run", "suite", "test", "severity", "metric"]).any():
        raise UserError("two of the given run directories share a name (or a metrics.csv repeats a row); report each run once")
    pairs = metrics.drop_duplicates("run").groupby(["method", "seed"])["run"].apply(list)
    twice = pairs[pairs.map(len) > 1]
    if len(twice):  # two copies of one run would be averaged as two seeds
        (method, seed), runs = next(iter(twice.items()))
        raise UserError(f"runs {', '.join(runs)} are all {method} seed {seed}; report each (method, seed) once")
    adversarial = metrics[metrics["suite"] == "adversarial"]
    attacked = {run: frozenset() for run in metrics["run"].unique()}
    attacked.update({run: frozenset(zip(rows["test"], rows["severity"])) for run, rows in adversarial.groupby("run")})
    if len(set(attacked.values())) > 1:  # a worst case over different attack sets is not one quantity
        runs = sorted(attacked.items())
        (run_a, set_a), (run_b, set_b) = runs[0], next(item for item in runs if item[1] != runs[0][1])
        only = sorted(set_a ^ set_b)[0]
        raise UserError(f"runs {run_a} and {run_b} were attacked differently (e.g. {only[0]} at ε {only[1]:g} in only one); "
                        "evaluate them with the same settings")
    clean = metrics[(metrics["suite"] == "clean") & (metrics["metric"] == "accuracy")]
    if clean["n"].nunique() > 1:  # a mean over 360 and 50 test examples is not a result
        sizes = ", ".join(f"{r} ({int(n)})" for r, n in clean.set_index("run")["n"].items())
        raise UserError(f"the runs were evaluated on different numbers of test examples: {sizes}")
    reliability = pd.concat(bins, ignore_index=True) if bins else None
    return RunSet(metrics, per_example, reliability, configs, seconds)
