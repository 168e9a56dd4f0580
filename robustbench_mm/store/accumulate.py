"""Evaluations accumulate: a run evaluated again keeps what it had and gains what is new.

The new rows replace the rows of the same (suite, test, severity, metric); every other row stays,
and so do the per-example results and reliability bins the new evaluation did not recompute.
Numbers that summarise other rows are recomputed from the per-example results of both, so they
always cover everything measured: the worst case over attacks (an evaluation that adds
``--attacks autoattack`` to an earlier default one reports the worst over both). The store knows
no suite: the caller hands :func:`merge` the hook (``derive``) that computes them, the suites'
own rule (``evaluation.interface.derived``).

Merging is refused when the two evaluations looked at different test examples, and an
evaluation of another model (the run was retrained) is dropped rather than merged. Each
publication records, in ``evaluation.toml``, the test examples, the model file and the settings
of every evaluation merged in, so ``mmbench run`` can tell an evaluation that is already done.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from robustbench_mm import __version__
from robustbench_mm.core.errors import UserError
from robustbench_mm.core.results import COLUMNS, Evaluation, row
from robustbench_mm.data.threat import ThreatModel
from robustbench_mm.settings import EvalConfig, to_table, to_toml
from robustbench_mm.store import evalstore
from robustbench_mm.store.rundir import model_digest

KEYS = ["suite", "test", "severity", "metric"]
LOCATION_ONLY = ("data_root", "download")  # where the data is, not what is measured


class Evaluated(Protocol):
    """What publishing an evaluation needs of a run: its folder and the file its model is in
    (a :class:`~.rundir.RunDir`, or the folder of a model trained elsewhere)."""

    @property
    def path(self) -> Path: ...

    @property
    def model_path(self) -> Path: ...


def settings_id(config: EvalConfig) -> str:
    """A digest of the settings that determine an evaluation's numbers."""
    table = {k: v for k, v in to_table(config).items() if k not in LOCATION_ONLY}
    return hashlib.sha256((__version__ + "\n" + to_toml(table)).encode()).hexdigest()[:16]


def _digest(path: Path) -> str:
    return model_digest(path)


def _subset_id(indices: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]


def already_done(stored: evalstore.StoredEvaluation | None, run: Evaluated, config: EvalConfig):
    """The stored evaluation when it already holds ``config``'s results for the run's current model."""
    if stored is None or not stored.record:
        return None
    record = stored.record
    if record.get("model", {}).get("sha256") != _digest(run.model_path):
        return None
    if settings_id(config) not in record.get("history", {}).get("settings", []):
        return None
    return Evaluation(
        stored.metrics,
        stored.per_example,
        stored.reliability,
        tables=stored.tables,
        total=int(record.get("subset", {}).get("total", 0)),
        threat=ThreatModel.from_table(record.get("threat")),
    )


Derive = Callable[[dict, dict], dict]  # (stored per-example, new per-example) -> derived per-example
Refresh = Callable[[pd.DataFrame, dict], pd.DataFrame]  # (merged rows, merged per-example) -> rows


def merge(
    stored: evalstore.StoredEvaluation | None,
    new,
    digest: str | None = None,
    derive: Derive | None = None,
    refresh: Refresh | None = None,
):
    """``new`` on top of ``stored`` (see the module docstring); ``new`` itself when nothing is
    stored. ``digest``: the sha256 of the model ``new`` evaluated (what decides whether ``stored``
    is of it). ``derive(stored, new)``: the per-example results that summarise others, recomputed
    over both (each becomes an accuracy row, replacing the row of the same key); then
    ``refresh(metrics, per_example)``: rows recomputed from the merged per-example results (the
    robustness curve), the suites' own rules as well."""
    if stored is None or not _same_model(stored, new, digest):
        new.history = []
        return new
    _check_same_examples(stored, new)
    stored = _as_run(stored, str(new.metrics["run"].iloc[0]))
    keys = set(map(tuple, new.metrics[KEYS].astype({"severity": float}).itertuples(index=False, name=None)))
    old_rows = stored.metrics[
        [
            tuple(r) not in keys
            for r in stored.metrics[KEYS].astype({"severity": float}).itertuples(index=False, name=None)
        ]
    ]
    per_example = {**stored.per_example, **new.per_example}
    metrics = pd.concat([old_rows, new.metrics], ignore_index=True)[COLUMNS]
    if derive is not None:
        metrics, per_example = _derived(metrics, per_example, derive(stored.per_example, new.per_example))
    if refresh is not None:
        metrics = refresh(metrics, per_example)[COLUMNS]
    reliability = new.reliability if new.reliability is not None else stored.reliability
    tables = {**stored.tables, **new.tables}
    stored_seconds = (stored.record or {}).get("seconds")
    seconds = {**(stored_seconds if isinstance(stored_seconds, dict) else {}), **new.suite_seconds}
    merged = dataclasses.replace(
        new, metrics=metrics, per_example=per_example, reliability=reliability, tables=tables, suite_seconds=seconds
    )
    merged.history = list(stored.record.get("history", {}).get("settings", []))
    return merged


def _same_model(stored: evalstore.StoredEvaluation, new, digest: str | None) -> bool:
    """Identity by content: the stored evaluation's model.pt sha256 is the new one's. Never the
    folder's name: a run copied to another folder is the same model, a retrained run is not.
    Evaluations of the first releases recorded no hash: their method and seed decide."""
    recorded = (stored.record or {}).get("model", {}).get("sha256")
    if recorded is not None and digest is not None:
        return recorded == digest
    identity = stored.metrics[["method", "seed"]].drop_duplicates()
    wanted = new.metrics[["method", "seed"]].drop_duplicates()
    return len(identity) == 1 and identity.astype(str).values.tolist() == wanted.astype(str).values.tolist()


def _as_run(stored: evalstore.StoredEvaluation, name: str) -> evalstore.StoredEvaluation:
    """The stored rows under the run's current folder name (a copied run keeps its old name in them)."""

    def renamed(table: pd.DataFrame | None) -> pd.DataFrame | None:
        if table is None or "run" not in table.columns:
            return table
        table = table.copy()
        table["run"] = name
        return table

    return dataclasses.replace(
        stored,
        metrics=renamed(stored.metrics),
        reliability=renamed(stored.reliability),
        tables={k: renamed(v) for k, v in stored.tables.items()},
    )


def _check_same_examples(stored: evalstore.StoredEvaluation, new) -> None:
    subset = stored.record.get("subset", {})
    if not subset or new.indices is None:
        return
    if subset.get("indices") != _subset_id(new.indices) or int(subset.get("total", -1)) != new.total:
        raise UserError(
            f"this run was evaluated on other test examples ({subset.get('n')} of {subset.get('total')}); "
            f"this evaluation uses {len(new.indices)} of {new.total}: give the same --n-test, or "
            "pass --fresh to start over"
        )


def _derived(metrics: pd.DataFrame, per_example: dict, derived: dict) -> tuple[pd.DataFrame, dict]:
    """``derived`` (key -> bool per example) into the merged results: its arrays and accuracy rows."""
    if not derived:
        return metrics, per_example
    identity = metrics.iloc[0][["run", "dataset", "arch", "method", "seed"]].to_dict()
    per_example = {**per_example, **derived}
    rows = [
        {**identity, **row(suite, test, sev, "accuracy", float(ok.mean()) if len(ok) else 0.0, len(ok))}
        for (suite, test, sev), ok in derived.items()
    ]
    replaced = {(s, t, float(sev), "accuracy") for s, t, sev in derived}
    keys = metrics[KEYS].astype({"severity": float}).itertuples(index=False, name=None)
    kept = metrics[[tuple(k) not in replaced for k in keys]]
    return pd.concat([kept, pd.DataFrame(rows, columns=COLUMNS)], ignore_index=True)[COLUMNS], per_example


def publish(run: Evaluated, evaluation, config: EvalConfig) -> None:
    """Write the (merged) evaluation into the run as its new generation."""
    history = [*evaluation.history, settings_id(config)]
    indices = evaluation.indices if evaluation.indices is not None else np.arange(int(evaluation.metrics["n"].max()))
    record = {
        "subset": {
            "n": int(len(indices)),
            "total": int(evaluation.total or len(indices)),
            "indices": _subset_id(indices),
        },
        "model": {"sha256": _digest(run.model_path)},
        "history": {"settings": list(dict.fromkeys(history)), "version": __version__},
        "settings": {k: v for k, v in to_table(config).items() if k not in LOCATION_ONLY},
        "seconds": dict(evaluation.suite_seconds),  # wall time per suite: what a CPU-cost estimate reads
    }
    if evaluation.threat is not None:
        record["threat"] = dataclasses.asdict(evaluation.threat)
    evalstore.write(
        run.path, evaluation.metrics, evaluation.per_example, evaluation.reliability, record, evaluation.tables
    )
