"""The tidy report table: mean ± std over seeds, the difference to ERM with a paired-bootstrap
95% CI over test examples, and corruption errors relative to ERM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from robustbench_mm.core.files import atomic_write_text
from robustbench_mm.methods import method_sort_key
from robustbench_mm.report.cells import pooled_suites
from robustbench_mm.report.collect import RunSet
from robustbench_mm.report.curve_stats import differences as curve_differences

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


def _runs_by_method(runs: RunSet) -> dict[str, list[str]]:
    methods = runs.metrics.drop_duplicates("run").set_index("run")["method"]
    by_method: dict[str, list[str]] = {}
    for run, method in methods.items():
        by_method.setdefault(method, []).append(run)
    return {m: sorted(r) for m, r in by_method.items()}


def _stacked(runs: RunSet, names: list[str], key: tuple) -> np.ndarray | None:
    arrays = [runs.per_example[r][key] for r in names if key in runs.per_example.get(r, {})]
    return np.stack(arrays) if arrays and len({a.shape for a in arrays}) == 1 else None


def _suite_mean(runs: RunSet, names: list[str], suite: str) -> np.ndarray | None:
    """(seeds, examples): each example's accuracy averaged over every test of ``suite``."""
    per_run = []
    for r in names:
        tests = [
            v for (s, t, _), v in runs.per_example.get(r, {}).items() if s == suite and t != "mean" and v.dtype == bool
        ]
        if not tests or len({v.shape for v in tests}) != 1:
            return None
        per_run.append(np.mean(tests, axis=0))
    return np.stack(per_run) if len({a.shape for a in per_run}) == 1 else None


def differences_to_erm(runs: RunSet) -> pd.DataFrame:
    """Δ vs ERM with paired-bootstrap CIs over test examples (needs an erm run): every per-example
    accuracy, each suite's mean over its tests (deformation, corruption), and the clean ECE."""
    from robustbench_mm.report.verdict import ece_difference

    by_method = _runs_by_method(runs)
    if "erm" not in by_method:
        return pd.DataFrame(columns=[*KEYS, "diff", "ci_low", "ci_high"])
    rows = []
    erm = by_method["erm"]
    keys = sorted({k for run in erm for k, v in runs.per_example.get(run, {}).items() if v.dtype == bool})
    for method in sorted(by_method, key=method_sort_key):
        if method == "erm":
            continue
        mine = by_method[method]
        pairs = [((k[0], k[1], k[2], "accuracy"), _stacked(runs, mine, k), _stacked(runs, erm, k)) for k in keys]
        pairs += [
            ((suite, "mean", 0.0, "accuracy"), _suite_mean(runs, mine, suite), _suite_mean(runs, erm, suite))
            for suite in pooled_suites()
        ]
        for (suite, test, severity, metric), a, b in pairs:
            if a is None or b is None or a.shape[1:] != b.shape[1:]:
                continue
            diff, low, high = paired_bootstrap(a, b)
            rows.append(
                {
                    "method": method,
                    "suite": suite,
                    "test": test,
                    "severity": severity,
                    "metric": metric,
                    "diff": diff,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
        ece = ece_difference(runs, mine, erm)
        if ece is not None:
            rows.append(
                {
                    "method": method,
                    "suite": "calibration",
                    "test": "clean",
                    "severity": 0.0,
                    "metric": "ece",
                    "diff": ece[0],
                    "ci_low": ece[1],
                    "ci_high": ece[2],
                }
            )
        rows += [{**r, "method": method} for r in curve_differences(runs, mine, erm)]  # median ε*, AUC
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
                rel.append(
                    (errors.loc[(method, corruption)] - counts.loc[(method, corruption)] * (1 - clean[method]))
                    / base_rel
                )
        for metric, values in (("mce-vs-erm", ce), ("relative-mce-vs-erm", rel)):
            if values:
                rows.append(
                    {
                        "dataset": summary["dataset"].iloc[0],
                        "arch": summary["arch"].iloc[0],
                        "method": method,
                        "suite": "corruption",
                        "test": "mean",
                        "severity": 0.0,
                        "metric": metric,
                        "mean": float(np.mean(values)),
                        "std": 0.0,
                        "seeds": int(summary[summary.method == method]["seeds"].max()),
                        "n": len(values),
                    }
                )
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
