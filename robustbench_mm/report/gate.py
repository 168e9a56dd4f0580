"""The regression gate: compare a current report.csv with a committed baseline.

A score fails when it is worse than the baseline by more than BOTH an absolute margin (in the
metric's own units, ``--tolerance``, default 0.02 = two accuracy points: practical significance)
AND K standard errors of the difference of the two seed-means (``--tolerance-std``, default 4:
statistical significance), or when a baseline row is missing from the current table. The
standard error comes from both tables' spread over seeds, sqrt(s_b²/k_b + s_c²/k_c): two honest
runs of the same code on machines whose float rounding differs train different models, and
differ by about as much as two sets of seeds do. K = 4 keeps the chance that any of the several
thousand gated rows fails by chance alone small (Bonferroni); tables of one seed gate on the
absolute margin alone.
Which way is worse, and which values are possible at all, come from the metric registry
(:mod:`robustbench_mm.core.metrics`): an unknown metric, an impossible value (accuracy 5, ECE −3,
inf) or tables of different datasets, architectures or threat models are refused outright.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.files import read_csv_table, require_numeric
from robustbench_mm.core.metrics import NEITHER, metric
from robustbench_mm.core.untrusted import clip, plain
from robustbench_mm.report.markup import markdown_table

KEYS = ["method", "suite", "test", "severity", "metric"]
PROTOCOL = ("dataset", "arch")  # columns that must agree between the two tables


def read_report(path: str | Path) -> pd.DataFrame:
    """A report.csv, checked: columns, numbers, known metrics, values inside each metric's range."""
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
        raise UserError(f"{path}: duplicate rows for {clip('/'.join(str(first[k]) for k in KEYS))}")
    if df["severity"].isna().any():
        raise UserError(f"{path}: a row has no severity")
    _check_counts(df, path)
    for name, rows in df.groupby("metric", sort=True):
        info = metric(str(name))  # an unknown metric is refused: it could never fail the gate
        _check_values(rows, info, path)
    return df


def _check_counts(df: pd.DataFrame, path: Path) -> None:
    """``seeds`` and ``n``, where present, are whole numbers (at least one seed, no negative count)."""
    for column, low in (("seeds", 1), ("n", 0)):
        if column not in df.columns:
            continue
        require_numeric(df, path, [column])
        values = df[column].astype(float)
        bad = ~values.map(lambda v, low=low: math.isfinite(v) and v == int(v) and low <= v <= 10**9)
        if bad.any():
            raise UserError(f"{path}: {column} = {_plain(values[bad].iloc[0])} is not a whole number >= {low}")


def _check_values(rows: pd.DataFrame, info, path: Path) -> None:
    """``mean`` inside the metric's range (NaN only for a row over no examples), ``std`` a finite
    spread no wider than the range allows (NaN only for a single seed)."""
    means, stds = rows["mean"].astype(float), rows["std"].astype(float)
    counts = rows["n"].astype(float) if "n" in rows.columns else pd.Series(1.0, index=rows.index)
    seeds = rows["seeds"].astype(float) if "seeds" in rows.columns else pd.Series(1.0, index=rows.index)
    bad = ~means.map(info.valid) | (means.isna() & (counts > 0))
    if bad.any():
        r = rows[bad].iloc[0]
        raise UserError(
            f"{path}: {plain(str(info.name))} = {_plain(r['mean'])} is outside its range "
            f"[{info.low:g}, {info.high:g}] ({clip('/'.join(str(r[k]) for k in KEYS[:4]))})"
        )
    widest = info.high - info.low if math.isfinite(info.high - info.low) else 1e150  # squares stay finite
    bad = ~stds.map(lambda v: 0 <= v <= widest) & ~(stds.isna() & (seeds <= 1))
    if bad.any():
        r = rows[bad].iloc[0]
        raise UserError(
            f"{path}: std of {plain(str(info.name))} = {_plain(r['std'])} is not a spread in [0, {widest:g}] "
            f"({clip('/'.join(str(r[k]) for k in KEYS[:4]))})"
        )


def _plain(value) -> str:
    """A number as a plain number in a message ('5', 'nan', '-1'), never numpy's repr."""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return clip(value, 40)


def check_comparable(baseline: pd.DataFrame, current: pd.DataFrame) -> None:
    """Refuse tables of different datasets, architectures or threat models (radii per attack)."""
    for column in PROTOCOL:
        if column in baseline.columns and column in current.columns:
            a, b = sorted(map(str, baseline[column].unique())), sorted(map(str, current[column].unique()))
            if a != b:
                raise UserError(
                    f"the tables are not comparable: {column} {clip(', '.join(a))} in the baseline, "
                    f"{clip(', '.join(b))} in the current table"
                )
    radii = [_radii(t) for t in (baseline, current)]
    if radii[0] and radii[1] and radii[0] != radii[1]:
        attack = sorted(set(radii[0]) ^ set(radii[1]) or {k for k in radii[0] if radii[0][k] != radii[1].get(k)})[0]
        raise UserError(
            f"the tables are not comparable: attack {clip(attack)} was run at other radii (another threat model)"
        )


def _radii(table: pd.DataFrame) -> dict[str, tuple[float, ...]]:
    adv = table[(table["suite"] == "adversarial") & (table["metric"] == "accuracy")]
    return {
        str(t): tuple(sorted(np.round(rows["severity"].astype(float), 6).unique())) for t, rows in adv.groupby("test")
    }


@dataclass
class CheckResult:
    table: pd.DataFrame  # one row per compared score with its status
    failed: bool

    def markdown(self, only_changes: bool = True) -> str:
        shown = self.table[self.table.status != "same"] if only_changes else self.table
        counts = self.table.status.value_counts().to_dict()
        head = f"**Regression gate: {'FAILED' if self.failed else 'passed'}** — " + ", ".join(
            f"{counts.get(s, 0)} {s}" for s in ("worse", "missing", "better", "same", "new")
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
        """Strict JSON: non-finite numbers (an unbounded attack's infinite radius) become null."""
        records = [{k: _json_value(v) for k, v in r.items()} for r in self.table.to_dict(orient="records")]
        return json.dumps({"failed": self.failed, "rows": records}, indent=2, allow_nan=False)


def _json_value(value):
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


DEFAULT_TOLERANCE, DEFAULT_TOLERANCE_STD = 0.02, 4.0


def compare(
    baseline: pd.DataFrame,
    current: pd.DataFrame,
    tolerance: float = DEFAULT_TOLERANCE,
    tolerance_std: float = DEFAULT_TOLERANCE_STD,
) -> CheckResult:
    if not (tolerance >= 0 and tolerance_std >= 0):
        raise UserError("tolerances must be >= 0")
    check_comparable(baseline, current)
    base = _scores(baseline)
    cur = _scores(current)
    merged = base.merge(cur, on=KEYS, how="outer", suffixes=("_base", "_cur"), indicator=True)
    rows = []
    for _, r in merged.iterrows():
        info = metric(str(r.metric))
        allowed = max(tolerance, tolerance_std * _standard_error(r))
        change = r.mean_cur - r.mean_base if r._merge == "both" else np.nan
        rows.append(
            {
                **{k: r[k] for k in KEYS},
                "baseline": r.mean_base,
                "current": r.mean_cur,
                "change": change,
                "allowed": allowed,
                "status": _status(r._merge, r.mean_base, r.mean_cur, change, allowed, info),
            }
        )
    table = pd.DataFrame(rows)
    return CheckResult(table, bool(table["status"].isin(["worse", "missing"]).any()) if len(table) else False)


def _scores(table: pd.DataFrame) -> pd.DataFrame:
    out = table[[*KEYS, "mean", "std"]].copy()
    out["seeds"] = table["seeds"] if "seeds" in table.columns else 1
    out["severity"] = out["severity"].round(6)
    return out


def _standard_error(r: pd.Series) -> float:
    """SE of the difference of the two seed-means (0 where a table has one seed or no spread)."""
    parts = []
    for side in ("base", "cur"):
        std, seeds = r.get(f"std_{side}"), r.get(f"seeds_{side}")
        if pd.notna(std) and pd.notna(seeds) and seeds > 1:
            parts.append(float(std) / math.sqrt(float(seeds)))
    return math.hypot(*parts)  # never overflows, whatever the spreads


def _status(merge: str, base: float, cur: float, change: float, allowed: float, info) -> str:
    if merge == "left_only":
        return "missing"
    if merge == "right_only":
        return "new"
    if base == cur or (math.isnan(base) and math.isnan(cur)):  # equal, or measured in neither table
        return "same"
    if math.isnan(base) != math.isnan(cur):  # a number appeared or vanished
        return "worse" if math.isnan(cur) and info.gated and info.direction != NEITHER else "same"
    if info.direction == NEITHER or not info.gated or abs(change) <= allowed or np.isclose(change, 0):
        return "same"
    return "better" if info.direction * change > 0 else "worse"
