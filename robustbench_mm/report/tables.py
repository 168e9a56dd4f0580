"""The tidy report table: mean ± std over seeds, the difference to ERM with a paired-bootstrap
95% CI over test examples, and corruption errors relative to ERM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..methods import method_sort_key
from ..storage import atomic_write_text
from .collect import RunSet

KEYS = ["method", "suite", "test", "severity", "metric"]
BOOTSTRAP_SAMPLES = 1000


def summarize(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds for every (method, suite, test, severity, metric)."""
    grouped = metrics.groupby(KEYS, sort=False)["value"]
    summary = grouped.agg(mean="mean", std="std", seeds="count").reset_index()
    summary["std"] = summary["std"].fillna(0.0)
    summary["n"] = metrics.groupby(KEYS, sort=False)["n"].max().values
    summary.insert(0, "arch", metrics["arch"].iloc[0])
    summary.insert(0, "dataset", metrics["dataset"].iloc[0])
    return summary


def paired_bootstrap(
    correct_a: np.ndarray, correct_b: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """Accuracy difference a - b and its 95% CI, resampling test examples (seeds pooled).

    ``correct_*`` are (seeds, examples) boolean arrays over the same test examples; each
    example's score is its mean correctness over seeds, and the bootstrap resamples examples.
    """
    diff = correct_a.mean(axis=0) - correct_b.mean(axis=0)
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for start in range(0, samples, 100):  # chunks keep memory flat for 10k-example test sets
        idx = rng.integers(0, len(diff), size=(min(100, samples - start), len(diff)))
        means[start : start + len(idx)] = diff[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def differences_to_erm(runs: RunSet) -> pd.DataFrame:
    """Δ accuracy vs ERM with bootstrap CIs for every per-example test (needs an erm run)."""
    methods = runs.metrics.drop_duplicates("run").set_index("run")["method"]
    by_method: dict[str, list[str]] = {}
    for run, method in methods.items():
        by_method.setdefault(method, []).append(run)
    if "erm" not in by_method:
        return pd.DataFrame(columns=[*KEYS, "diff", "ci_low", "ci_high"])
    rows = []
    keys = sorted({k for run in by_method["erm"] for k in runs.per_example.get(run, {})})
    for method in sorted(by_method, key=method_sort_key):
        if method == "erm":
            continue
        for key in keys:
            a = [runs.per_example[r][key] for r in sorted(by_method[method]) if key in runs.per_example.get(r, {})]
            b = [runs.per_example[r][key] for r in sorted(by_method["erm"]) if key in runs.per_example.get(r, {})]
            if not a or not b or len({x.shape for x in a + b}) != 1:
                continue
            diff, low, high = paired_bootstrap(np.stack(a), np.stack(b))
            rows.append({"method": method, "suite": key[0], "test": key[1], "severity": key[2], "metric": "accuracy",
                         "diff": diff, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=[*KEYS, "diff", "ci_low", "ci_high"])


def corruption_errors(summary: pd.DataFrame) -> pd.DataFrame:
    """mCE and relative mCE of each method with our ERM model as the baseline.

    Hendrycks & Dietterich (2019), with ERM in AlexNet's place: for corruption c,
    CE_m(c) = Σ_s E_m(c, s) / Σ_s E_erm(c, s) and the relative CE_m(c) =
    Σ_s (E_m(c, s) - E_m(clean)) / Σ_s (E_erm(c, s) - E_erm(clean)), E = 1 - accuracy of the
    seed-mean; each is averaged over corruptions. Corruptions that cost ERM less than one
    accuracy point summed over severities are left out of the relative mean (its ratio would
    divide by ~0); ``n`` holds how many corruptions each mean covers.
    """
    acc = summary[(summary.suite == "corruption") & (summary.metric == "accuracy") & (summary.test != "mean")]
    clean = summary[(summary.suite == "clean") & (summary.metric == "accuracy")].set_index("method")["mean"]
    if acc.empty or "erm" not in set(acc.method) or "erm" not in clean.index:
        return pd.DataFrame(columns=summary.columns)
    errors = acc.assign(error=1 - acc["mean"]).groupby(["method", "test"])["error"].sum()
    counts = acc.groupby(["method", "test"])["severity"].count()
    rows = []
    for method in sorted(acc.method.unique(), key=method_sort_key):
        ce, rel = [], []
        for corruption in errors.loc["erm"].index:
            if (method, corruption) not in errors.index:
                continue
            base = errors.loc[("erm", corruption)]
            ce.append(errors.loc[(method, corruption)] / max(base, 1e-12))
            base_rel = base - counts.loc[("erm", corruption)] * (1 - clean["erm"])
            if base_rel >= 0.01 and method in clean.index:
                rel.append((errors.loc[(method, corruption)] - counts.loc[(method, corruption)] * (1 - clean[method])) / base_rel)
        for metric, values in (("mce-vs-erm", ce), ("relative-mce-vs-erm", rel)):
            if values:
                rows.append({"dataset": summary["dataset"].iloc[0], "arch": summary["arch"].iloc[0], "method": method,
                             "suite": "corruption", "test": "mean", "severity": 0.0, "metric": metric,
                             "mean": float(np.mean(values)), "std": 0.0, "seeds": int(summary[summary.method == method]["seeds"].max()),
                             "n": len(values)})
    return pd.DataFrame(rows, columns=summary.columns)


def report_table(runs: RunSet) -> pd.DataFrame:
    """The tidy report: summary statistics plus the difference to ERM where it exists."""
    summary = summarize(runs.metrics)
    extra = corruption_errors(summary)
    if not extra.empty:
        summary = pd.concat([summary, extra], ignore_index=True)
    diffs = differences_to_erm(runs)
    table = summary.merge(diffs, on=KEYS, how="left")
    table["_m"] = table["method"].map(method_sort_key)
    table = table.sort_values(["_m", "suite", "test", "severity", "metric"], kind="stable").drop(columns="_m")
    return table.reset_index(drop=True)


def write_report_csv(table: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, table.to_csv(index=False, float_format="%.6g"))
