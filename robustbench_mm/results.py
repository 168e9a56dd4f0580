"""The one results schema: every number the benchmark produces is a row of this table."""

from __future__ import annotations

from typing import Any

import pandas as pd

COLUMNS = ["run", "dataset", "arch", "method", "seed", "suite", "test", "severity", "metric", "value", "n"]
SUITES = ("clean", "adversarial", "deformation", "corruption", "calibration", "diagnostics")


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
