"""The robustness curve: robust accuracy at every ε from each example's smallest adversarial
radius ε* (:mod:`robustbench_mm.report.curve_stats`), one line per method with its 95% band
(paired bootstrap over test examples, seeds pooled), the headline radius marked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from robustbench_mm.core.errors import UserError
from robustbench_mm.report.figures.shared import PCT, finish, method_colors, method_order, new_figure

FILE = "robustness_curve.png"


def robustness_curve(curves: pd.DataFrame, out_path: str | Path, title: str, headline: float | None = None) -> Path:
    """``curves``: columns method, eps, mean, low, high (accuracies as fractions)."""
    if curves.empty:
        raise UserError("robustness curve: no per-example ε* to plot (evaluate with the minimum-norm attack)")
    methods = method_order(curves)
    colors = method_colors(methods)
    fig = new_figure(6.4, 4.4)
    ax = fig.subplots()
    for method in methods:
        part = curves[curves["method"] == method].sort_values("eps")
        ax.plot(part["eps"], part["mean"] * PCT, color=colors[method], label=method)
        ax.fill_between(
            part["eps"], part["low"] * PCT, part["high"] * PCT, color=colors[method], alpha=0.2, linewidth=0
        )
    handles: list[Artist] = [Line2D([], [], color=colors[m], label=m) for m in methods]
    handles.append(Patch(color="gray", alpha=0.25, label="95% CI (bootstrap over test examples)"))
    if headline:
        ax.axvline(headline, color="gray", linestyle=":", linewidth=1)
        handles.append(Line2D([], [], color="gray", linestyle=":", label=f"headline ε = {headline:.4g}"))
    ax.set_xlabel("ε (L∞)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(0, float(curves["eps"].max()) or 1.0)
    ax.grid(alpha=0.3)
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize=8)
    fig.suptitle(f"Robustness curve — {title}")
    return finish(fig, out_path)
