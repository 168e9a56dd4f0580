"""Accuracy curves: under attack vs ε, and under deformations or corruptions vs severity.

One panel per test, one line per method: the mean over seeds with a ± 1 std band, so a reader
sees at once whether a difference between methods exceeds the seed-to-seed noise.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D

from robustbench_mm.core.errors import UserError
from robustbench_mm.report.figures.shared import (
    PCT,
    accuracy_rows,
    band_line,
    clean_accuracy,
    finish,
    grid,
    legend_handles,
    method_colors,
    method_order,
    new_figure,
    seed_stats,
    severity_label,
)


def accuracy_vs_eps(results_df: pd.DataFrame, out_path: str | Path, title: str) -> Path:
    """Adversarial accuracy vs ε: one panel per attack test, one line per method (mean ± std).

    Clean accuracy is drawn as the ε = 0 point when a test has no ε = 0 row of its own: at ε = 0
    every attack is the identity, so the two are the same number.
    """
    adv = accuracy_rows(results_df, "adversarial")
    if adv.empty:
        raise UserError("accuracy vs ε: no adversarial accuracy rows to plot")
    clean = clean_accuracy(results_df)
    tests = list(pd.unique(adv["test"]))
    return _curves(
        adv,
        tests,
        "adversarial",
        out_path,
        f"Accuracy under attack — {title}",
        max_cols=4,
        clean_at_zero=clean,
        methods=method_order(adv),
    )


def accuracy_vs_severity(
    results_df: pd.DataFrame, out_path: str | Path, title: str, suite: str = "deformation"
) -> Path:
    """Accuracy vs severity for every test of ``suite`` (deformations or corruptions).

    Each method's clean accuracy is a dashed horizontal line in its colour: a line rather than a
    "severity 0" point because the identity is not at 0 for every family (zoom is 100%).
    """
    rows = accuracy_rows(results_df, suite)
    rows = rows[rows["test"] != "mean"]  # the suite's mean over its tests has no severity axis
    if rows.empty:
        raise UserError(f"accuracy vs severity: no {suite} accuracy rows to plot")
    tests = list(pd.unique(rows["test"]))
    return _curves(
        rows,
        tests,
        suite,
        out_path,
        f"Accuracy under {suite} — {title}",
        max_cols=5,
        clean_lines=clean_accuracy(results_df),
        methods=method_order(rows),
    )


def _curves(
    rows: pd.DataFrame,
    tests: list[str],
    suite: str,
    out_path: str | Path,
    suptitle: str,
    max_cols: int,
    methods: list[str],
    clean_at_zero: pd.DataFrame | None = None,
    clean_lines: pd.DataFrame | None = None,
) -> Path:
    colors = method_colors(methods)
    ncols = min(len(tests), max_cols)
    nrows = math.ceil(len(tests) / ncols)
    fig = new_figure(3.6 * ncols + 0.6, 2.9 * nrows + 0.9)
    seeds = rows.groupby("method")["seed"].nunique().to_dict()
    has_clean = clean_lines is not None and not clean_lines.empty
    clean_means = seed_stats(clean_lines, ["method"]).set_index("method")["mean"] if has_clean else None
    for ax, test in zip(grid(fig, len(tests), max_cols), tests, strict=True):
        sub = rows[rows["test"] == test]
        if clean_at_zero is not None and not clean_at_zero.empty and not (sub["severity"] == 0).any():
            sub = pd.concat([sub, clean_at_zero.assign(test=test, severity=0.0)], ignore_index=True)
        stats = seed_stats(sub, ["method", "severity"])
        for method in methods:
            if (stats["method"] == method).any():
                band_line(ax, stats[stats["method"] == method], colors[method], method)
            if clean_means is not None and method in clean_means.index:
                ax.axhline(clean_means[method] * PCT, color=colors[method], linestyle="--", linewidth=1, alpha=0.7)
        ax.set_title(test)
        ax.set_xlabel(severity_label(suite, test))
        if suite == "corruption":
            ax.set_xticks(sorted(stats["severity"].unique()))
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 100)
    extra = [Line2D([], [], color="gray", linestyle="--", label="clean accuracy")] if clean_means is not None else []
    handles = legend_handles(methods, colors, seeds, extra)
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=9)
    fig.suptitle(suptitle)
    return finish(fig, out_path)
