"""The regression gate: compare a current report.csv with a committed baseline.

A score fails when it is worse than the baseline by more than the allowed margin (absolute,
in the metric's own units — 0.02 is two accuracy points — or K standard deviations over
seeds with ``--tolerance-std``), or when a baseline row is missing from the current table.
Direction is per metric: accuracy up is better; ECE, NLL, Brier, MCE and diagnostics flags
down is better; descriptive metrics (confidence, temperature) are shown but never fail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .document import markdown_table
from .errors import UserError
from .storage import read_csv_table, require_numeric

KEYS = ["method", "suite", "test", "severity", "metric"]
HIGHER_IS_BETTER = {"accuracy"}
LOWER_IS_BETTER = {"ece", "ece-adaptive", "ece-classwise", "mce", "nll", "brier", "flag", "mce-vs-erm", "relative-mce-vs-erm"}


def direction(metric: str) -> int:
    """+1 when higher is better, -1 when lower is better, 0 when neither (never gates)."""
    base = metric[:-3] if metric.endswith("-ts") else metric
    if base in HIGHER_IS_BETTER:
        return 1
    if base in LOWER_IS_BETTER:
        return -1
    return 0


def read_report(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise UserError(f"report table not found: {path}")
    if path.is_dir():
        raise UserError(f"report table {path} is a directory, expected a report.csv file")
    df = read_csv_table(path, "a readable CSV report")
    missing = [c for c in [*KEYS, "mean"] if c not in df.columns]
    if missing:
        raise UserError(f"{path} is not a report.csv: missing column(s) {', '.join(missing)}")
    if df.empty:
        raise UserError(f"{path} holds no rows")
    if "std" not in df.columns:
        df["std"] = 0.0
    require_numeric(df, path, ["severity", "mean", "std"])
    duplicated = df.duplicated(subset=KEYS)
    if duplicated.any():
        first = df[duplicated].iloc[0]
        raise UserError(f"{path}: duplicate rows for {'/'.join(str(first[k]) for k in KEYS)}")
    return df


@dataclass
class CheckResult:
    table: pd.DataFrame  # one row per compared score with its status
    failed: bool

    def markdown(self, only_changes: bool = True) -> str:
        shown = self.table[self.table.status != "same"] if only_changes else self.table
        counts = self.table.status.value_counts().to_dict()
        head = (
            f"**Regression gate: {'FAILED' if self.failed else 'passed'}** — "
            + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("worse", "missing", "better", "same", "new"))
        )
        if shown.empty:
            return head + "\n\nNo score changed beyond the tolerance.\n"
        cols = ["status", "method", "suite", "test", "severity", "metric", "baseline", "current", "change", "allowed"]
        view = shown[cols].copy()
        for c in ("baseline", "current", "change", "allowed"):
            view[c] = view[c].map(lambda v: "–" if pd.isna(v) else f"{v:.4g}")
        view["severity"] = view["severity"].map(lambda v: f"{v:g}")
        order = {"worse": 0, "missing": 1, "better": 2, "new": 3, "same": 4}
        view = view.sort_values("status", key=lambda s: s.map(order), kind="stable")
        return head + "\n\n" + markdown_table(view) + "\n"

    def to_json(self) -> str:
        records = self.table.replace({np.nan: None}).to_dict(orient="records")
        return json.dumps({"failed": self.failed, "rows": records}, indent=2)


def compare(baseline: pd.DataFrame, current: pd.DataFrame, tolerance: float = 0.02, tolerance_std: float | None = None) -> CheckResult:
    if tolerance < 0 or (tolerance_std is not None and tolerance_std < 0):
        raise UserError("tolerances must be >= 0")
    base = baseline[[*KEYS, "mean", "std"]].copy()
    cur = current[[*KEYS, "mean"]].copy()
    for df in (base, cur):
        df["severity"] = df["severity"].round(6)
    merged = base.merge(cur, on=KEYS, how="outer", suffixes=("_base", "_cur"), indicator=True)
    rows = []
    failed = False
    for _, r in merged.iterrows():
        sign = direction(str(r.metric))
        allowed = tolerance if tolerance_std is None else max(tolerance, tolerance_std * float(r["std"] if pd.notna(r["std"]) else 0.0))
        change = r.mean_cur - r.mean_base if r._merge == "both" else np.nan
        if r._merge == "left_only":
            status = "missing"
        elif r._merge == "right_only":
            status = "new"
        elif sign == 0 or abs(change) <= allowed or np.isclose(change, 0):
            status = "same"
        else:
            status = "better" if sign * change > 0 else "worse"
        failed |= status in ("worse", "missing")
        rows.append({**{k: r[k] for k in KEYS}, "baseline": r.mean_base, "current": r.mean_cur, "change": change,
                     "allowed": allowed, "status": status})
    return CheckResult(pd.DataFrame(rows), failed)
