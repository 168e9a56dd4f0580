"""Reliability diagrams: accuracy per confidence bin against the diagonal, seeds pooled.

Drawn in three layers so the gap never hides the accuracy it is measured from:

1. the gap region from the bin's accuracy to its mean confidence, hatched grey, *behind* the bars
   (visible above a bar, where the model is over-confident);
2. the accuracy bars, opaque, in the method's colour;
3. the gap's outline, a black unfilled box, on top (shows an under-confident gap, which lies
   inside the bar, without covering it).

Neutral grey and black, because the methods' colours include red (pgd-at).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from robustbench_mm.core.errors import UserError
from robustbench_mm.report.figures.shared import PCT, finish, method_colors, method_order, new_figure, require

BIN_COLUMNS = ("method", "bin", "lower", "upper", "count", "accuracy", "confidence")
GAP_HATCH_COLOR = "0.45"
GAP_EDGE_COLOR = "black"


def pool_bins(bins_df: pd.DataFrame) -> pd.DataFrame:
    """Pool seeds per (method, bin): counts add, accuracy/confidence are count-weighted means."""
    df = bins_df.copy()
    df["count"] = df["count"].astype(float)
    df["acc_sum"] = df["accuracy"].fillna(0.0) * df["count"]
    df["conf_sum"] = df["confidence"].fillna(0.0) * df["count"]
    pooled = (
        df.groupby(["method", "bin"], sort=True)
        .agg(
            lower=("lower", "first"),
            upper=("upper", "first"),
            count=("count", "sum"),
            acc_sum=("acc_sum", "sum"),
            conf_sum=("conf_sum", "sum"),
        )
        .reset_index()
    )
    nonempty = pooled["count"] > 0
    pooled["accuracy"] = np.where(nonempty, pooled["acc_sum"] / pooled["count"].where(nonempty, 1), np.nan)
    pooled["confidence"] = np.where(nonempty, pooled["conf_sum"] / pooled["count"].where(nonempty, 1), np.nan)
    return pooled.drop(columns=["acc_sum", "conf_sum"])


def bins_ece(bins: pd.DataFrame) -> float:
    """ECE from (pooled) bins: sum_b count_b/N * |acc_b - conf_b| (empty bins contribute 0)."""
    b = bins[bins["count"] > 0]
    return float((b["count"] * (b["accuracy"] - b["confidence"]).abs()).sum() / b["count"].sum())


def reliability_figure(bins_df: pd.DataFrame, title: str) -> Figure:
    """One reliability diagram per method (seeds pooled), with the bin histogram underneath.

    Top: accuracy per confidence bin (bars), the gap from accuracy to the bin's mean confidence
    (above the bar = over-confident, inside it = under-confident), the diagonal of perfect
    calibration; the pooled ECE in the panel's title. Bottom: share of examples per bin on a log
    axis, since confident models put almost everything in the last bin. One legend under the
    panels: inside one it would cover bars, which fill the whole height when under-confident.
    """
    df = require(bins_df, BIN_COLUMNS, "reliability bins")
    if df.empty:
        raise UserError("reliability diagram: no reliability bins to plot")
    pooled = pool_bins(df)
    methods = method_order(df)
    colors = method_colors(methods)
    fig = new_figure(4.2 * len(methods), 5.6)
    layout = fig.add_gridspec(2, len(methods), height_ratios=[3, 1])
    for i, method in enumerate(methods):
        bins = pooled[pooled["method"] == method]
        seeds = df.loc[df["method"] == method, "seed"].nunique() if "seed" in df.columns else 1
        top = fig.add_subplot(layout[0, i])
        bottom = fig.add_subplot(layout[1, i], sharex=top)
        _reliability_panel(top, bins, colors[method])
        _count_panel(bottom, bins, colors[method])
        top.set_title(
            f"{method}\n{seeds} seed{'s' if seeds != 1 else ''}, N={int(bins['count'].sum())}, "
            f"ECE (pooled bins) {bins_ece(bins) * PCT:.2f}%",
            fontsize=10,
        )
        if i == 0:
            top.set_ylabel("accuracy (fraction correct, 0–1)")
            bottom.set_ylabel("examples (% of N, log)")
    handles = [
        Patch(facecolor="0.6", edgecolor="black", linewidth=0.5, label="accuracy per bin (in the method's colour)"),
        Patch(facecolor="none", edgecolor=GAP_EDGE_COLOR, hatch="///", label="gap to the bin's mean confidence"),
        Line2D([], [], linestyle="--", color="black", linewidth=1, label="perfect calibration"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=9)
    fig.suptitle(f"Reliability diagrams — {title}")
    return fig


def reliability_diagram(bins_df: pd.DataFrame, out_path: str | Path, title: str) -> Path:
    """:func:`reliability_figure` written as a PNG to ``out_path``."""
    return finish(reliability_figure(bins_df, title), out_path)


def _reliability_panel(ax: Axes, bins: pd.DataFrame, color: str) -> None:
    b = bins[bins["count"] > 0]
    lower, width = b["lower"].to_numpy(), (b["upper"] - b["lower"]).to_numpy()
    acc, conf = b["accuracy"].to_numpy(), b["confidence"].to_numpy()
    gap = dict(x=lower, height=conf - acc, bottom=acc, width=width, align="edge")
    ax.bar(**gap, facecolor="none", edgecolor=GAP_HATCH_COLOR, hatch="///", linewidth=0, zorder=1)
    ax.bar(lower, acc, width=width, align="edge", color=color, edgecolor="black", linewidth=0.5, zorder=2)
    ax.bar(**gap, fill=False, edgecolor=GAP_EDGE_COLOR, linewidth=1.2, zorder=3)
    ax.plot([0, 1], [0, 1], linestyle="--", color="black", linewidth=1, zorder=4)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.tick_params(labelbottom=False)


def _count_panel(ax: Axes, bins: pd.DataFrame, color: str) -> None:
    share = bins["count"] / bins["count"].sum() * PCT
    ax.bar(
        bins["lower"], share.where(share > 0), width=bins["upper"] - bins["lower"], align="edge", color=color, alpha=0.6
    )
    ax.set_yscale("log")
    ax.set_xlabel("confidence (max softmax probability, 0–1)")
