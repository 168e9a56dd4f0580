"""The summary figure: the three lenses on one page, per method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Patch

from robustbench_mm.core.errors import UserError
from robustbench_mm.report.figures.reliability import BIN_COLUMNS, bins_ece
from robustbench_mm.report.figures.shared import (
    PCT,
    RESULT_COLUMNS,
    accuracy_rows,
    band_line,
    clean_accuracy,
    finish,
    method_colors,
    method_order,
    new_figure,
    require,
    seed_stats,
    severity_label,
)


def summary_figure(results_df: pd.DataFrame, bins_df: pd.DataFrame | None, out_path: str | Path, title: str) -> Path:
    """The three lenses on one page, per method: (a) worst-case adversarial accuracy vs ε,
    (b) mean accuracy over all deformations (with clean accuracy beside it), (c) ECE before and
    after temperature scaling. A lens without data says so in its panel instead of vanishing,
    so a reader never mistakes "not run" for "zero".
    """
    df = require(results_df, RESULT_COLUMNS, "results")
    methods = method_order(df, bins_df)
    if not methods:
        raise UserError("summary figure: no results to plot")
    colors = method_colors(methods)
    fig = new_figure(15, 4.8)
    ax_adv, ax_def, ax_cal = fig.subplots(1, 3)
    _summary_adversarial(ax_adv, df, methods, colors)
    _summary_bars(
        ax_def, _deformation_bars(df), methods, colors, "accuracy (%)", "(b) deformations: mean accuracy", "deformation"
    )
    _summary_bars(
        ax_cal,
        _calibration_bars(df, bins_df),
        methods,
        colors,
        "ECE (%, lower is better)",
        "(c) calibration: ECE",
        "calibration",
    )
    fig.suptitle(f"Robustness summary — {title}")
    return finish(fig, out_path)


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} results", ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _summary_adversarial(ax: Axes, df: pd.DataFrame, methods: list[str], colors: dict[str, str]) -> None:
    adv = accuracy_rows(df, "adversarial")
    # Worst case over attacks is the honest number; fall back to PGD (then anything) if absent.
    test = next(
        (t for t in ("worst-case", "pgd-linf") if (adv["test"] == t).any()), adv["test"].iloc[0] if len(adv) else None
    )
    ax.set_title(f"(a) adversarial: {test or 'worst-case'} accuracy")
    if test is None:
        return _no_data(ax, "adversarial")
    sub = adv[adv["test"] == test]
    clean = clean_accuracy(df)
    if not clean.empty and not (sub["severity"] == 0).any():
        sub = pd.concat([sub, clean.assign(test=test, severity=0.0)], ignore_index=True)
    stats = seed_stats(sub, ["method", "severity"])
    for method in methods:
        if (stats["method"] == method).any():
            band_line(ax, stats[stats["method"] == method], colors[method], method)
    ax.set_xlabel(severity_label("adversarial", test))
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="mean ± 1 std over seeds", title_fontsize=8)


def _deformation_bars(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per-seed mean over every deformation test and severity, then mean ± std over seeds."""
    out: dict[str, pd.DataFrame] = {}
    clean = clean_accuracy(df)
    if not clean.empty:
        out["clean"] = seed_stats(clean, ["method"])
    deform = accuracy_rows(df, "deformation")
    if not deform.empty:
        out["deformed (mean over tests)"] = seed_stats(deform, ["method"])
    return out if "deformed (mean over tests)" in out else {}


def _calibration_bars(df: pd.DataFrame, bins_df: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """ECE (and ECE after temperature scaling) per method, from the results table, else bins."""
    cal = df[df["suite"] == "calibration"]
    if "clean" in set(cal["test"]):
        cal = cal[cal["test"] == "clean"]  # calibration under shift, if present, is a different question
    out = {
        label: seed_stats(cal[cal["metric"] == metric], ["method"])
        for metric, label in (("ece", "ECE"), ("ece-ts", "ECE after temperature scaling"))
        if (cal["metric"] == metric).any()
    }
    if not out and bins_df is not None and not bins_df.empty:
        require(bins_df, BIN_COLUMNS, "reliability bins")
        keys = ["method", "seed"] if "seed" in bins_df.columns else ["method"]
        per_run = [
            {"method": k[0], "seed": k[1] if len(keys) == 2 else 0, "value": bins_ece(g)}
            for k, g in bins_df.groupby(keys)
        ]
        out["ECE (from reliability bins)"] = seed_stats(pd.DataFrame(per_run), ["method"])
    return out


def _summary_bars(
    ax: Axes,
    groups: dict[str, pd.DataFrame],
    methods: list[str],
    colors: dict[str, str],
    ylabel: str,
    title: str,
    lens: str,
) -> None:
    """Grouped bars: one group per method, one bar per entry of ``groups``, ± 1 std error bars."""
    ax.set_title(title)
    if not groups:
        return _no_data(ax, lens)
    width = 0.8 / len(groups)
    x = np.arange(len(methods))
    styles: list[dict[str, Any]] = [
        dict(alpha=0.9, hatch=None),
        dict(alpha=0.45, hatch="//"),
        dict(alpha=0.3, hatch=".."),
    ]
    handles = []
    for j, (label, stats) in enumerate(groups.items()):
        s = stats.set_index("method").reindex(methods)
        style = styles[j % len(styles)]
        ax.bar(
            x + (j - (len(groups) - 1) / 2) * width,
            s["mean"] * PCT,
            width=width,
            yerr=s["std"] * PCT,
            capsize=3,
            color=[colors[m] for m in methods],
            edgecolor="black",
            linewidth=0.5,
            **style,
        )
        # Bars are coloured by method, so the legend shows the bar *kind* in neutral grey.
        handles.append(Patch(facecolor="gray", edgecolor="black", label=label, **style))
    ax.set_xticks(x, methods)
    ax.set_xlabel("training method")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    # Headroom so the legend never hides a bar; ticks stop at the data's own range (no "120%").
    top = ax.get_ylim()[1]
    ax.set_yticks([t for t in ax.get_yticks() if 0 <= t <= top])
    ax.set_ylim(0, top * 1.25)
    ax.legend(handles=handles, loc="upper right", fontsize=8, title="mean ± 1 std over seeds", title_fontsize=8)
