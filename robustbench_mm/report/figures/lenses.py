"""Figures of the paper's own lenses: singular-value spectra, confidence between classes, outlier AUROC.

Same conventions as the other figures (:mod:`.shared`): many runs are summarised per method as
mean ± 1 std over seeds (each seed counted once), a method keeps its registered colour
everywhere, figures are ``matplotlib.figure.Figure`` objects (no pyplot) written atomically.

Inputs: the results table (``results.COLUMNS``) for the ood figures; for the spectra, the
table that :func:`robustbench_mm.evaluation.suites.representation.representation_rows` returns with the run
identity added (columns ``method, seed, layer, index, value``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from robustbench_mm.core.errors import UserError
from robustbench_mm.report.figures.shared import (
    PCT,
    RESULT_COLUMNS,
    band,
    finish,
    method_colors,
    method_order,
    new_figure,
    require,
    seed_stats,
)

SPECTRUM_COLUMNS = ("method", "seed", "layer", "index", "value")


def layer_order(layers: Iterable[str]) -> list[str]:
    """``layer0``, ``layer1``, ..., ``layer10`` by number, then ``penultimate``, then any other name."""

    def key(name: str) -> tuple[int, int, str]:
        match = re.fullmatch(r"layer(\d+)", name)
        if match:
            return (0, int(match.group(1)), name)
        return (1 if name == "penultimate" else 2, 0, name)

    return sorted(set(layers), key=key)


def spectra_figure(spectra: pd.DataFrame, title: str = "", max_index: int = 40) -> Figure:
    """One panel per layer: each method's normalised singular values (σ_i / Σσ, mean over classes) vs i.

    Log y-axis: a flatter representation falls faster. The first ``max_index`` values; zeros
    (beyond a class's rank) are left out of the log scale.
    """
    df = require(spectra, SPECTRUM_COLUMNS, "singular-value spectra")
    df = df[df["index"] <= max_index]
    if df.empty:
        raise UserError("singular-value spectra: nothing to plot")
    layers = layer_order(df["layer"].astype(str))
    methods = method_order(df)
    colors = method_colors(methods)
    stats = seed_stats(df, ["method", "layer", "index"])
    fig = new_figure(3.4 * len(layers), 3.6)
    axes = fig.subplots(1, len(layers), squeeze=False)[0]
    for ax, layer in zip(axes, layers, strict=True):
        for method in methods:
            part = stats[(stats["method"] == method) & (stats["layer"] == layer)].sort_values("index")
            mean = part["mean"].to_numpy()
            shown = mean > 0
            seeds = int(part["seeds"].max()) if len(part) else 0
            band(
                ax,
                part["index"].to_numpy()[shown],
                mean[shown],
                part["std"].to_numpy()[shown],
                colors[method],
                f"{method} ({seeds} seed{'s' if seeds != 1 else ''})",
                marker=None,
            )
        ax.set_yscale("log")
        ax.set_title(layer)
        ax.set_xlabel("singular value index i")
    axes[0].set_ylabel("σ_i / Σσ (mean over classes)")
    axes[-1].legend(fontsize=8)
    fig.suptitle(f"Class-centred singular-value spectra{' — ' + title if title else ''}")
    return fig


def _ood_rows(results: pd.DataFrame) -> pd.DataFrame:
    df = require(results, RESULT_COLUMNS, "results")
    return df[df["suite"] == "ood"]


def interpolation_figure(results: pd.DataFrame, title: str = "") -> Figure:
    """Mean confidence (%) on λ x_i + (1 - λ) x_j, pairs of different classes, vs λ, per method."""
    df = _ood_rows(results)
    df = df[(df["test"] == "interpolation") & (df["metric"] == "confidence")]
    if df.empty:
        raise UserError("interpolation figure: no ood/interpolation/*/confidence rows")
    methods = method_order(df)
    colors = method_colors(methods)
    stats = seed_stats(df, ["method", "severity"])
    fig = new_figure(5.2, 3.8)
    ax = fig.subplots()
    for method in methods:
        part = stats[stats["method"] == method].sort_values("severity")
        band(
            ax,
            part["severity"].to_numpy(),
            PCT * part["mean"].to_numpy(),
            PCT * part["std"].to_numpy(),
            colors[method],
            method,
            markersize=3,
        )
    ax.set_xlabel("λ (0 and 1: the test images themselves)")
    ax.set_ylabel("mean confidence (max softmax, %)")
    ax.legend(fontsize=8)
    ax.set_title(f"Confidence between classes{' — ' + title if title else ''}", fontsize=10)
    return fig


def auroc_figure(results: pd.DataFrame, title: str = "", score: str = "msp") -> Figure:
    """Outlier-detection AUROC (%) per outlier set and method: bars at the mean, ± 1 std over seeds."""
    df = _ood_rows(results)
    df = df[df["metric"] == f"auroc-{score}"]
    if df.empty:
        raise UserError(f"AUROC figure: no ood/*/0/auroc-{score} rows")
    methods = method_order(df)
    colors = method_colors(methods)
    sets = list(dict.fromkeys(df["test"].astype(str)))
    stats = seed_stats(df, ["method", "test"])
    fig = new_figure(1.6 + 1.5 * len(sets), 3.8)
    ax = fig.subplots()
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        part = stats[stats["method"] == method].set_index("test").reindex(sets)
        x = np.arange(len(sets)) + (k - (len(methods) - 1) / 2) * width
        ax.bar(
            x,
            PCT * part["mean"].to_numpy(),
            width,
            yerr=PCT * part["std"].to_numpy(),
            color=colors[method],
            label=method,
        )
    ax.axhline(50.0, color="gray", linestyle=":", linewidth=1)
    ax.set_xticks(np.arange(len(sets)), sets)
    ax.set_ylim(0, 100)
    ax.set_ylabel(f"AUROC ({score}, %; 50 = chance)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"Telling test images from outliers{' — ' + title if title else ''}", fontsize=10)
    return fig


def plot_spectra(spectra: pd.DataFrame, out_path: str | Path, title: str = "") -> Path:
    return finish(spectra_figure(spectra, title), out_path)


def plot_interpolation(results: pd.DataFrame, out_path: str | Path, title: str = "") -> Path:
    return finish(interpolation_figure(results, title), out_path)


def plot_auroc(results: pd.DataFrame, out_path: str | Path, title: str = "") -> Path:
    return finish(auroc_figure(results, title), out_path)
