"""Reading a set of evaluated run directories back, and refusing sets that are not one comparison."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import clip, clip_path
from robustbench_mm.data.threat import ThreatModel
from robustbench_mm.store.rundir import RunDir


@dataclass
class RunSet:
    """Everything read back from a set of evaluated run directories."""

    metrics: pd.DataFrame
    per_example: dict[str, dict] = field(default_factory=dict)  # run name -> {(suite, test, sev): bool array}
    reliability: pd.DataFrame | None = None
    configs: dict[str, dict] = field(default_factory=dict)  # run name -> config.toml contents
    train_seconds: float = 0.0
    threat: ThreatModel | None = None  # the threat model the runs were attacked under
    subset: dict = field(default_factory=dict)  # the test examples: n of total (evaluation.toml [subset])
    facts: dict[str, dict] = field(default_factory=dict)  # run name -> config.toml [run] table
    logs: dict[str, pd.DataFrame] = field(default_factory=dict)  # run name -> train_log.csv
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # further tables (spectra), every run's


def collect(run_dirs: Sequence[str | Path]) -> RunSet:
    """Read every run's published evaluation, config and log; refuse runs that are not one comparison."""
    if not run_dirs:
        raise UserError("no run directories given to report")
    runs = RunSet(pd.DataFrame())
    frames, bins, records = [], [], []
    for run in map(RunDir, run_dirs):
        if not run.path.is_dir():
            raise UserError(f"run directory not found: {clip_path(run.path)}")
        stored = run.evaluation()  # every file from one published generation
        if stored is None:
            raise UserError(
                f"{clip_path(run.path)} has no evaluation; run mmbench evaluate {clip_path(run.path)} first"
            )
        frames.append(stored.metrics)
        runs.per_example[run.name] = stored.per_example
        records.append((run.name, stored.record))
        if stored.reliability is not None:
            bins.append(stored.reliability)
        for name, table in stored.tables.items():
            runs.tables[name] = (
                pd.concat([runs.tables[name], table], ignore_index=True) if name in runs.tables else table
            )
        if run.config_path.exists():
            runs.configs[run.name] = run.read_toml()
            runs.facts[run.name] = run.facts()
        log = run.read_train_log()
        if log is not None:
            runs.logs[run.name] = log
            runs.train_seconds += float(log["seconds"].sum())
    runs.metrics = pd.concat(frames, ignore_index=True)
    if runs.metrics.empty:
        raise UserError("the given runs hold no metrics")
    _check_one_comparison(runs.metrics)
    runs.threat, runs.subset = _common_record(records)
    runs.reliability = pd.concat(bins, ignore_index=True) if bins else None
    return runs


def _check_one_comparison(metrics: pd.DataFrame) -> None:
    """One dataset, each (method, seed) once, the same attacks and the same number of test examples."""
    datasets = sorted(metrics["dataset"].astype(str).unique())
    if len(datasets) > 1:
        raise UserError(f"cannot report over runs of different datasets: {clip(', '.join(datasets), 200)}")
    if metrics.duplicated(subset=["run", "suite", "test", "severity", "metric"]).any():
        raise UserError(
            "two of the given run directories share a name (or a metrics.csv repeats a row); report each run once"
        )
    pairs = metrics.drop_duplicates("run").groupby(["method", "seed"])["run"].apply(list)
    twice = pairs[pairs.map(len) > 1]
    if len(twice):  # two copies of one run would be averaged as two seeds
        (method, seed), runs = next(iter(twice.items()))
        raise UserError(f"runs {', '.join(runs)} are all {method} seed {seed}; report each (method, seed) once")
    adversarial = metrics[metrics["suite"] == "adversarial"]
    attacked: dict[str, frozenset[tuple[str, float]]] = {run: frozenset() for run in metrics["run"].unique()}
    attacked.update(
        {run: frozenset(zip(rows["test"], rows["severity"], strict=True)) for run, rows in adversarial.groupby("run")}
    )
    if len(set(attacked.values())) > 1:  # a worst case over different attack sets is not one quantity
        ordered = sorted(attacked.items())
        (run_a, set_a), (run_b, set_b) = ordered[0], next(item for item in ordered if item[1] != ordered[0][1])
        only = sorted(set_a ^ set_b)[0]
        raise UserError(
            f"runs {run_a} and {run_b} were attacked differently (e.g. {only[0]} at ε {only[1]:g} in only one); "
            "evaluate them with the same settings"
        )
    clean = metrics[(metrics["suite"] == "clean") & (metrics["metric"] == "accuracy")]
    if clean["n"].nunique() > 1:  # a mean over 360 and 50 test examples is not a result
        sizes = ", ".join(f"{r} ({int(n)})" for r, n in clean.set_index("run")["n"].items())
        raise UserError(f"the runs were evaluated on different numbers of test examples: {clip(sizes, 200)}")


def _common_record(records: list[tuple[str, dict]]) -> tuple[ThreatModel | None, dict]:
    """The threat model and the test subset the runs share (refused when they differ)."""
    threats = {name: ThreatModel.from_table(record.get("threat")) for name, record in records}
    known = {t for t in threats.values() if t is not None}
    if len(known) > 1:
        raise UserError(
            "the runs were attacked under different threat models "
            f"({clip(', '.join(sorted(t.name for t in known)), 120)})"
        )
    subsets = {name: record.get("subset", {}) for name, record in records if record.get("subset")}
    ids = {(s.get("indices"), s.get("total")) for s in subsets.values()}
    if len(ids) > 1:
        raise UserError("the runs were evaluated on different test examples; evaluate them with the same --n-test")
    return (next(iter(known)) if known else None), (next(iter(subsets.values())) if subsets else {})
