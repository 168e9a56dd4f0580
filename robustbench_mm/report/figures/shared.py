"""What every figure shares: input checks, method order and colours, seed statistics, axis
labels with units, the figure and how it is written.

Method order, colour and label come from the methods registry (:mod:`robustbench_mm.methods`),
the unit of a test's severity from the code that defines the test (attacks, deformations,
corruptions), so a new method or test needs no change here.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.files import atomic_write_bytes

PCT = 100.0  # accuracies/ECE are fractions in the table, percent on the page
DPI = 110
RESULT_COLUMNS = ("method", "seed", "suite", "test", "severity", "metric", "value")

# A method without a registered colour (a name from an older table) takes the next spare one
# that no registered method uses.
_SPARE_COLORS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray", "tab:red")


def require(df: pd.DataFrame | None, columns: Iterable[str], what: str) -> pd.DataFrame:
    """Fail with one clear line when a table (often read from a user's CSV) lacks columns."""
    if df is None:
        raise UserError(f"{what}: no table given")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UserError(f"{what}: table lacks column(s) {', '.join(missing)}")
    return df


def method_order(*frames: pd.DataFrame | None) -> list[str]:
    """The methods of the tables in the registry's display order (ERM first), unregistered after."""
    from robustbench_mm.methods import method_sort_key

    seen = {str(m) for df in frames if df is not None and "method" in df.columns for m in df["method"].unique()}
    return sorted(seen, key=method_sort_key)


def method_colors(methods: list[str]) -> dict[str, str]:
    """Each method's registered colour (the same in every figure); spare colours for the rest."""
    from robustbench_mm.methods import METHODS, method_color

    taken = {METHODS.get(name).color for name in METHODS.names()}
    spare = iter([c for c in _SPARE_COLORS if c not in taken] * 4 or _SPARE_COLORS * 4)
    return {m: method_color(m) or next(spare) for m in methods}


def seed_stats(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, std and seed count of ``value`` over seeds, per ``by`` (which must include method).

    Rows repeated within one seed (e.g. two runs sharing a seed) are averaged first so each seed
    counts once. std is the sample std (ddof=1); with a single seed it is 0 (no band drawn).
    """
    per_seed = df.groupby(by + ["seed"], sort=False)["value"].mean().reset_index()
    stats = per_seed.groupby(by, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    return stats.rename(columns={"count": "seeds"})


def accuracy_rows(results_df: pd.DataFrame, suite: str) -> pd.DataFrame:
    df = require(results_df, RESULT_COLUMNS, "results")
    return df[(df["suite"] == suite) & (df["metric"] == "accuracy")]


def clean_accuracy(results_df: pd.DataFrame) -> pd.DataFrame:
    """Clean accuracy rows (suite clean, metric accuracy)."""
    return accuracy_rows(results_df, "clean")


_NORM_NAMES = {"linf": "L∞", "l2": "L2"}


def severity_label(suite: str, test: str) -> str:
    """x-axis label with units for a test's severity, as the test's owner defines it."""
    if suite == "adversarial":
        from robustbench_mm.attacks import ATTACKS
        from robustbench_mm.evaluation.suites.adversarial import WORST_CASE_NORMS

        norm = WORST_CASE_NORMS.get(test) or (ATTACKS.get(test).norm if test in ATTACKS else None)
        if norm == "none":
            return "ε (none: an unbounded attack, drawn at 0)"
        if norm in _NORM_NAMES:
            return f"ε ({_NORM_NAMES[norm]} norm, pixel scale [0, 1])"
        return "ε (pixel scale [0, 1])"  # an attack this process does not know
    if suite == "corruption":
        from robustbench_mm.corruptions.common import SEVERITY_LABEL

        return SEVERITY_LABEL
    if suite == "deformation":
        from robustbench_mm.corruptions.deformations import SEVERITY_UNITS

        return SEVERITY_UNITS.get(test, "severity")
    return "severity"


def new_figure(width: float, height: float) -> Figure:
    # Figure, not pyplot: nothing stays open and the user's backend is never touched. The dpi
    # is the saved one, so pixel positions read from the axes' transforms match the PNG.
    # Constrained layout makes room for the suptitle and an "outside" figure legend.
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def grid(fig: Figure, n: int, max_cols: int) -> list[Axes]:
    """n axes in a near-square grid that share the accuracy axis."""
    ncols = min(n, max_cols)
    nrows = math.ceil(n / ncols)
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return list(axes[:n])


def band(
    ax: Axes,
    x: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    color: str,
    label: str,
    marker: str | None = "o",
    markersize: float = 4,
) -> None:
    """Mean line (with markers) and a ± 1 std band: the seed-to-seed spread."""
    ax.plot(x, mean, marker=marker, markersize=markersize, color=color, label=label)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)


def band_line(ax: Axes, stats: pd.DataFrame, color: str, label: str) -> None:
    """:func:`band` of seed statistics over severity, in percent."""
    stats = stats.sort_values("severity")
    band(ax, stats["severity"].to_numpy(), stats["mean"].to_numpy() * PCT, stats["std"].to_numpy() * PCT, color, label)


def legend_handles(
    methods: list[str], colors: dict[str, str], seeds: dict[str, int], extra: list | None = None
) -> list:
    handles: list = [
        Line2D([], [], color=colors[m], marker="o", label=f"{m} (mean of {seeds.get(m, 0)} seeds)") for m in methods
    ]
    handles.append(Patch(color="gray", alpha=0.25, label="± 1 std over seeds"))
    return handles + (extra or [])


def save_png(fig: Figure, out_path: str | Path) -> Path:
    """Write the figure as PNG atomically (a report page never links a half-written image).

    No "Software" metadata: the same figure gives the same bytes under any matplotlib version.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return atomic_write_bytes(out_path, buffer.getvalue())


def finish(fig: Figure, out_path: str | Path) -> Path:
    """Save, then release the figure's artists (the Figure is not registered with pyplot)."""
    try:
        return save_png(fig, out_path)
    finally:
        fig.clear()
