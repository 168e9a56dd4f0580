"""The README's all-methods table from a report.csv: per method, the worst case at the headline
radius with its paired difference to ERM, the median ε*, clean accuracy and the corruptions' mean.

    python scripts/methods_table.py runs/report/report.csv [--eps 0.1]
"""

from __future__ import annotations

import argparse

import pandas as pd

NAMES = {
    "erm": "ERM",
    "mixup": "input mixup",
    "manifold-mixup": "Manifold Mixup",
    "cutmix": "CutMix",
    "label-smoothing": "label smoothing",
    "pgd-at": "PGD-AT",
    "trades": "TRADES",
    "augmix": "AugMix",
    "noisy-feature-mixup": "Noisy Feature Mixup",
}


def _pick(table: pd.DataFrame, suite: str, test: str, severity: float, metric: str) -> pd.DataFrame:
    rows = table[
        (table.suite == suite) & (table.test == test) & (table.severity == severity) & (table.metric == metric)
    ]
    return rows.set_index("method")


def methods_table(table: pd.DataFrame, eps: float) -> str:
    worst = _pick(table, "adversarial", "worst-case", eps, "accuracy")
    star = _pick(table, "adversarial", "curve", 0.0, "median-eps")
    clean = _pick(table, "clean", "clean", 0.0, "accuracy")
    corruption = _pick(table, "corruption", "mean", 0.0, "accuracy")
    lines = [
        f"| method | worst case ε = {eps:g} | Δ vs ERM [95% CI] | median ε* | clean | corruptions mean |",
        "|---|---|---|---|---|---|",
    ]
    for method in worst.sort_values("mean", ascending=False).index:
        w = worst.loc[method]
        delta = "" if pd.isna(w["diff"]) else f"{100 * w['diff']:+.1f} [{100 * w.ci_low:+.1f}, {100 * w.ci_high:+.1f}]"
        lines.append(
            f"| {NAMES.get(method, method)} | {100 * w['mean']:.1f}% | {delta} | {star.loc[method, 'mean']:.3f} | "
            f"{100 * clean.loc[method, 'mean']:.1f}% | {100 * corruption.loc[method, 'mean']:.1f}% |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_csv")
    parser.add_argument("--eps", type=float, default=0.1)
    args = parser.parse_args()
    print(methods_table(pd.read_csv(args.report_csv), args.eps), end="")


if __name__ == "__main__":
    main()
