"""The one results schema: every number the benchmark produces is a row of this table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # core imports no other room; the annotation only names the data's threat model
    from robustbench_mm.data.threat import ThreatModel

COLUMNS = ["run", "dataset", "arch", "method", "seed", "suite", "test", "severity", "metric", "value", "n"]

# Per-example arrays (per_example.npz) are correctness (bool) or a probability (float in [0, 1]),
# except these tests, whose array is a distance per example: >= 0, +inf where the attack found no
# adversarial example (the minimum-norm attacks and the smallest radius ε* they give).
DISTANCE_ARRAYS = frozenset({"fmn-linf", "fmn-l2", "eps-star", "eps-star-l2"})


def row(suite: str, test: str, severity: float, metric: str, value: float, n: int) -> dict[str, Any]:
    """One result row without the run identity (added by the caller that knows the run)."""
    return {
        "suite": suite,
        "test": test,
        "severity": float(severity),
        "metric": metric,
        "value": float(value),
        "n": int(n),
    }


def frame(rows: list[dict[str, Any]], identity: dict[str, Any]) -> pd.DataFrame:
    """Rows plus the run identity (run, dataset, arch, method, seed) -> a DataFrame in schema order."""
    df = pd.DataFrame([{**identity, **r} for r in rows], columns=COLUMNS)
    return df.astype({"seed": "int64", "severity": "float64", "value": "float64", "n": "int64"})


@dataclass
class Evaluation:
    """One evaluation of one model: its rows and the per-example results behind them."""

    metrics: pd.DataFrame  # the results schema
    per_example: dict[tuple[str, str, float], np.ndarray] = field(default_factory=dict)
    reliability: pd.DataFrame | None = None
    seconds: float = 0.0
    indices: np.ndarray | None = None  # which test examples (positions in the dataset's test split)
    total: int = 0  # size of the whole test split
    history: list[str] = field(default_factory=list)  # settings of the evaluations merged in (accumulate)
    threat: ThreatModel | None = None  # the dataset's radii and headline
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # further tables (the spectra), identity added
    suite_seconds: dict[str, float] = field(default_factory=dict)  # wall time of each suite (cost estimates)
