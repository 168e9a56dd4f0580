"""Figures from the results table: reliability diagrams, accuracy-vs-ε and accuracy-vs-severity.

Everything here is a pandas operation over the one results schema (``results.COLUMNS``) plus,
for reliability diagrams, the per-run reliability bins (``calibration.reliability_bins`` with the
run identity added). Conventions shared by every figure:

- Many runs are summarised per method as mean ± 1 std over seeds (the band / error bar), so a
  reader sees at once whether a difference between methods exceeds the seed-to-seed noise.
- Accuracies are stored as fractions in [0, 1] and drawn in percent.
- A method keeps the same colour in every figure (erm, mixup, manifold-mixup first).
- Figures are built with ``matplotlib.figure.Figure`` directly, never through pyplot's global
  figure manager: nothing stays open, and rendering is safe inside a long-lived process. The
  user's backend is left alone (a notebook keeps its own): ``savefig`` to PNG renders with the
  Agg canvas whatever the backend, so no display is needed.
- Every PNG is written atomically (temp file in the same directory, then ``os.replace``), so a
  report page never links a half-written image.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .errors import UserError
from .storage import atomic_write

PCT = 100.0  # accuracies/ECE are fractions in the table, percent on the page
DPI = 110
BIN_COLUMNS = ("method", "bin", "lower", "upper", "count", "accuracy", "confidence")
RESULT_COLUMNS = ("method", "seed", "suite", "test", "severity", "metric", "value")

# Methods keep their registered colour in every figure; an unregistered name takes the next spare one.
_SPARE_COLORS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray", "tab:red")


# --------------------------------------------------------------------------- shared helpers


def _require(df: pd.DataFrame | None, columns: Iterable[str], what: str) -> pd.DataFrame:
    """Fail with one clear line when a table (often read from a user's CSV) lacks columns."""
    if df is None:
        raise UserError(f"{what}: no table given")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UserError(f"{what}: table lacks column(s) {', '.join(missing)}")
    return df


def _methods(*frames: pd.DataFrame | None) -> list[str]:
    """Methods in the registry's display order (ERM first), unregistered names after them."""
    from .methods import method_sort_key

    seen = {str(m) for df in frames if df is not None and "method" in df.columns for m in df["method"].unique()}
    return sorted(seen, key=method_sort_key)


def _colors(methods: list[str]) -> dict[str, str]:
    from .methods import method_color

    spare = iter(_SPARE_COLORS * 4)
    return {m: method_color(m) or next(spare) for m in methods}


def _accuracy_rows(results_df: pd.DataFrame, suite: str) -> pd.DataFrame:
    df = _require(results_df, RESULT_COLUMNS, "results")
    return df[(df["suite"] == suite) & (df["metric"] == "accuracy")]


def _seed_stats(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, std and seed count of ``value`` over seeds, per ``by`` (which must include method).

    Rows repeated within one seed (e.g. two runs sharing a seed) are averaged first so each seed
    counts once. std is the sample std (ddof=1); with a single seed it is 0 (no band drawn).
    """
    per_seed = df.groupby(by + ["seed"], sort=False)["value"].mean().reset_index()
    stats = per_seed.groupby(by, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    return stats.rename(columns={"count": "seeds"})


def _clean_accuracy(results_df: pd.DataFrame) -> pd.DataFrame:
    """Clean accuracy rows (suite clean, metric accuracy)."""
    return _accuracy_rows(results_df, "clean")


def _severity_label(suite: str, test: str) -> str:
    """x-axis label with units for a test's severity parameter."""
    t = test.lower()
    if suite == "adversarial":
        norm = "L2" if "l2" in t else "L∞"
        return f"ε ({norm} norm, pixel scale [0, 1])"
    if suite == "corruption":
        return "corruption severity (level 1–5)"
    if t.startswith("rot"):
        return "max rotation angle (degrees)"
    if t.startswith("shear"):
        return "max shear angle (degrees)"
    if t.startswith("zoom"):
        return "zoom (% of original size)"
    return "severity"


def _grid(fig: Figure, n: int, max_cols: int) -> list[Axes]:
    """n axes in a near-square grid that share the accuracy axis."""
    ncols = min(n, max_cols)
    nrows = math.ceil(n / ncols)
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return list(axes[:n])


def _band_line(ax: Axes, stats: pd.DataFrame, color: str, label: str) -> None:
    """Mean line with markers and a ± 1 std band (seed-to-seed spread)."""
    stats = stats.sort_values("severity")
    x, m, s = stats["severity"].to_numpy(), stats["mean"].to_numpy() * PCT, stats["std"].to_numpy() * PCT
    ax.plot(x, m, marker="o", markersize=4, color=color, label=label)
    ax.fill_between(x, m - s, m + s, color=color, alpha=0.2, linewidth=0)


def _legend_handles(methods: list[str], colors: dict[str, str], seeds: dict[str, int], extra: list | None = None) -> list:
    handles: list = [Line2D([], [], color=colors[m], marker="o", label=f"{m} (mean of {seeds.get(m, 0)} seeds)") for m in methods]
    handles.append(Patch(color="gray", alpha=0.25, label="± 1 std over seeds"))
    return handles + (extra or [])


def _save(fig: Figure, out_path: str | Path) -> Path:
    """Write the figure as PNG atomically (temp file + os.replace via storage.atomic_write)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out_path, lambda f: fig.savefig(f, format="png", dpi=DPI))


def _new_figure(width: float, height: float) -> Figure:
    # constrained layout makes room for the suptitle and the "outside" figure legend.
    return Figure(figsize=(width, height), layout="constrained")


# --------------------------------------------------------------------------- reliability


def _pool_bins(bins_df: pd.DataFrame) -> pd.DataFrame:
    """Pool seeds per (method, bin): counts add, accuracy/confidence are count-weighted means."""
    df = bins_df.copy()
    df["count"] = df["count"].astype(float)
    df["acc_sum"] = df["accuracy"].fillna(0.0) * df["count"]
    df["conf_sum"] = df["confidence"].fillna(0.0) * df["count"]
    pooled = df.groupby(["method", "bin"], sort=True).agg(
        lower=("lower", "first"), upper=("upper", "first"), count=("count", "sum"),
        acc_sum=("acc_sum", "sum"), conf_sum=("conf_sum", "sum"),
    ).reset_index()
    nonempty = pooled["count"] > 0
    pooled["accuracy"] = np.where(nonempty, pooled["acc_sum"] / pooled["count"].where(nonempty, 1), np.nan)
    pooled["confidence"] = np.where(nonempty, pooled["conf_sum"] / pooled["count"].where(nonempty, 1), np.nan)
    return pooled.drop(columns=["acc_sum", "conf_sum"])


def _bins_ece(bins: pd.DataFrame) -> float:
    """ECE from (pooled) bins: sum_b count_b/N * |acc_b - conf_b| (empty bins contribute 0)."""
    b = bins[bins["count"] > 0]
    return float((b["count"] * (b["accuracy"] - b["confidence"]).abs()).sum() / b["count"].sum())


def reliability_diagram(bins_df: pd.DataFrame, out_path: str | Path, title: str) -> Path:
    """One reliability diagram per method (seeds pooled), with the bin histogram underneath.

    Top: accuracy per confidence bin (bars), the gap from accuracy to the bin's mean confidence
    shaded (red hatch; above the bar = over-confident, below = under-confident), the diagonal of
    perfect calibration, and the pooled ECE in the legend. Bottom: share of examples per bin on
    a log axis, since confident models put almost everything in the last bin.
    """
    df = _require(bins_df, BIN_COLUMNS, "reliability bins")
    if df.empty:
        raise UserError("reliability diagram: no reliability bins to plot")
    pooled = _pool_bins(df)
    methods = _methods(df)
    colors = _colors(methods)
    fig = _new_figure(4.2 * len(methods), 5.6)
    grid = fig.add_gridspec(2, len(methods), height_ratios=[3, 1])
    for i, method in enumerate(methods):
        bins = pooled[pooled["method"] == method]
        seeds = df.loc[df["method"] == method, "seed"].nunique() if "seed" in df.columns else 1
        top = fig.add_subplot(grid[0, i])
        bottom = fig.add_subplot(grid[1, i], sharex=top)
        _reliability_panel(top, bins, colors[method])
        _count_panel(bottom, bins, colors[method])
        top.set_title(f"{method} ({seeds} seed{'s' if seeds != 1 else ''}, N={int(bins['count'].sum())})")
        if i == 0:
            top.set_ylabel("accuracy (fraction correct, 0–1)")
            bottom.set_ylabel("examples (% of N, log)")
    fig.suptitle(f"Reliability diagrams — {title}")
    return _finish(fig, out_path)


def _reliability_panel(ax: Axes, bins: pd.DataFrame, color: str) -> None:
    b = bins[bins["count"] > 0]
    width = (b["upper"] - b["lower"]).to_numpy()
    acc, conf = b["accuracy"].to_numpy(), b["confidence"].to_numpy()
    ax.bar(b["lower"], acc, width=width, align="edge", color=color, alpha=0.85, edgecolor="black", linewidth=0.5, label="accuracy per bin")
    ax.bar(b["lower"], conf - acc, bottom=acc, width=width, align="edge", color="tab:red", alpha=0.25,
           edgecolor="tab:red", hatch="//", linewidth=0.5, label="gap to diagonal")
    ax.plot([0, 1], [0, 1], linestyle="--", color="black", linewidth=1, label="perfect calibration")
    ece_handle = Line2D([], [], linestyle="none", label=f"ECE (pooled bins) = {_bins_ece(bins) * PCT:.2f}%")
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + [ece_handle], loc="upper left", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.tick_params(labelbottom=False)


def _count_panel(ax: Axes, bins: pd.DataFrame, color: str) -> None:
    share = bins["count"] / bins["count"].sum() * PCT
    ax.bar(bins["lower"], share.where(share > 0), width=bins["upper"] - bins["lower"], align="edge", color=color, alpha=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("confidence (max softmax probability, 0–1)")


def _finish(fig: Figure, out_path: str | Path) -> Path:
    try:
        return _save(fig, out_path)
    finally:
        fig.clear()  # release the artists now; the Figure is not registered with pyplot


# --------------------------------------------------------------------------- curves


def accuracy_vs_eps(results_df: pd.DataFrame, out_path: str | Path, title: str) -> Path:
    """Adversarial accuracy vs ε: one panel per attack test, one line per method (mean ± std).

    Clean accuracy is drawn as the ε = 0 point when a test has no ε = 0 row of its own: at ε = 0
    every attack is the identity, so the two are the same number.
    """
    adv = _accuracy_rows(results_df, "adversarial")
    if adv.empty:
        raise UserError("accuracy vs ε: no adversarial accuracy rows to plot")
    clean = _clean_accuracy(results_df)
    tests = list(pd.unique(adv["test"]))
    return _curves(adv, tests, "adversarial", out_path, f"Accuracy under attack — {title}", max_cols=4,
                   clean_at_zero=clean, methods=_methods(adv))


def accuracy_vs_severity(results_df: pd.DataFrame, out_path: str | Path, title: str, suite: str = "deformation") -> Path:
    """Accuracy vs severity for every test of ``suite`` (deformations or corruptions).

    Each method's clean accuracy is a dashed horizontal line in its colour: a line rather than a
    "severity 0" point because the identity is not at 0 for every family (zoom is 100%).
    """
    rows = _accuracy_rows(results_df, suite)
    if rows.empty:
        raise UserError(f"accuracy vs severity: no {suite} accuracy rows to plot")
    tests = list(pd.unique(rows["test"]))
    return _curves(rows, tests, suite, out_path, f"Accuracy under {suite} — {title}", max_cols=5,
                   clean_lines=_clean_accuracy(results_df), methods=_methods(rows))


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
    colors = _colors(methods)
    ncols = min(len(tests), max_cols)
    nrows = math.ceil(len(tests) / ncols)
    fig = _new_figure(3.6 * ncols + 0.6, 2.9 * nrows + 0.9)
    seeds = rows.groupby("method")["seed"].nunique().to_dict()
    clean_means = _seed_stats(clean_lines, ["method"]).set_index("method")["mean"] if clean_lines is not None and not clean_lines.empty else None
    for ax, test in zip(_grid(fig, len(tests), max_cols), tests):
        sub = rows[rows["test"] == test]
        if clean_at_zero is not None and not clean_at_zero.empty and not (sub["severity"] == 0).any():
            sub = pd.concat([sub, clean_at_zero.assign(test=test, severity=0.0)], ignore_index=True)
        stats = _seed_stats(sub, ["method", "severity"])
        for method in methods:
            if (stats["method"] == method).any():
                _band_line(ax, stats[stats["method"] == method], colors[method], method)
            if clean_means is not None and method in clean_means.index:
                ax.axhline(clean_means[method] * PCT, color=colors[method], linestyle="--", linewidth=1, alpha=0.7)
        ax.set_title(test)
        ax.set_xlabel(_severity_label(suite, test))
        if suite == "corruption":
            ax.set_xticks(sorted(stats["severity"].unique()))
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 100)
    extra = [Line2D([], [], color="gray", linestyle="--", label="clean accuracy")] if clean_means is not None else []
    handles = _legend_handles(methods, colors, seeds, extra)
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=9)
    fig.suptitle(suptitle)
    return _finish(fig, out_path)


# --------------------------------------------------------------------------- summary


def summary_figure(results_df: pd.DataFrame, bins_df: pd.DataFrame | None, out_path: str | Path, title: str) -> Path:
    """The three lenses on one page, per method: (a) worst-case adversarial accuracy vs ε,
    (b) mean accuracy over all deformations (with clean accuracy beside it), (c) ECE before and
    after temperature scaling. A lens without data says so in its panel instead of vanishing,
    so a reader never mistakes "not run" for "zero".
    """
    df = _require(results_df, RESULT_COLUMNS, "results")
    methods = _methods(df, bins_df)
    if not methods:
        raise UserError("summary figure: no results to plot")
    colors = _colors(methods)
    fig = _new_figure(15, 4.8)
    ax_adv, ax_def, ax_cal = fig.subplots(1, 3)
    _summary_adversarial(ax_adv, df, methods, colors)
    _summary_bars(ax_def, _deformation_bars(df), methods, colors, "accuracy (%)", "(b) deformations: mean accuracy", "deformation")
    _summary_bars(ax_cal, _calibration_bars(df, bins_df), methods, colors, "ECE (%, lower is better)", "(c) calibration: ECE", "calibration")
    fig.suptitle(f"Robustness summary — {title}")
    return _finish(fig, out_path)


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} results", ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _summary_adversarial(ax: Axes, df: pd.DataFrame, methods: list[str], colors: dict[str, str]) -> None:
    adv = _accuracy_rows(df, "adversarial")
    # Worst case over attacks is the honest number; fall back to PGD (then anything) if absent.
    test = next((t for t in ("worst-case", "pgd-linf") if (adv["test"] == t).any()), adv["test"].iloc[0] if len(adv) else None)
    ax.set_title(f"(a) adversarial: {test or 'worst-case'} accuracy")
    if test is None:
        return _no_data(ax, "adversarial")
    sub = adv[adv["test"] == test]
    clean = _clean_accuracy(df)
    if not clean.empty and not (sub["severity"] == 0).any():
        sub = pd.concat([sub, clean.assign(test=test, severity=0.0)], ignore_index=True)
    stats = _seed_stats(sub, ["method", "severity"])
    for method in methods:
        if (stats["method"] == method).any():
            _band_line(ax, stats[stats["method"] == method], colors[method], method)
    ax.set_xlabel(_severity_label("adversarial", test))
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="mean ± 1 std over seeds", title_fontsize=8)


def _deformation_bars(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per-seed mean over every deformation test and severity, then mean ± std over seeds."""
    out: dict[str, pd.DataFrame] = {}
    clean = _clean_accuracy(df)
    if not clean.empty:
        out["clean"] = _seed_stats(clean, ["method"])
    deform = _accuracy_rows(df, "deformation")
    if not deform.empty:
        out["deformed (mean over tests)"] = _seed_stats(deform, ["method"])
    return out if "deformed (mean over tests)" in out else {}


def _calibration_bars(df: pd.DataFrame, bins_df: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """ECE (and ECE after temperature scaling) per method, from the results table, else bins."""
    cal = df[df["suite"] == "calibration"]
    if "clean" in set(cal["test"]):
        cal = cal[cal["test"] == "clean"]  # calibration under shift, if present, is a different question
    out = {label: _seed_stats(cal[cal["metric"] == metric], ["method"])
           for metric, label in (("ece", "ECE"), ("ece-ts", "ECE after temperature scaling"))
           if (cal["metric"] == metric).any()}
    if not out and bins_df is not None and not bins_df.empty:
        _require(bins_df, BIN_COLUMNS, "reliability bins")
        keys = ["method", "seed"] if "seed" in bins_df.columns else ["method"]
        per_run = [{"method": k[0], "seed": k[1] if len(keys) == 2 else 0, "value": _bins_ece(g)}
                   for k, g in bins_df.groupby(keys)]
        out["ECE (from reliability bins)"] = _seed_stats(pd.DataFrame(per_run), ["method"])
    return out


def _summary_bars(
    ax: Axes, groups: dict[str, pd.DataFrame], methods: list[str], colors: dict[str, str], ylabel: str, title: str, lens: str
) -> None:
    """Grouped bars: one group per method, one bar per entry of ``groups``, ± 1 std error bars."""
    ax.set_title(title)
    if not groups:
        return _no_data(ax, lens)
    width = 0.8 / len(groups)
    x = np.arange(len(methods))
    styles = [dict(alpha=0.9, hatch=None), dict(alpha=0.45, hatch="//"), dict(alpha=0.3, hatch="..")]
    handles = []
    for j, (label, stats) in enumerate(groups.items()):
        s = stats.set_index("method").reindex(methods)
        style = styles[j % len(styles)]
        ax.bar(x + (j - (len(groups) - 1) / 2) * width, s["mean"] * PCT, width=width, yerr=s["std"] * PCT, capsize=3,
               color=[colors[m] for m in methods], edgecolor="black", linewidth=0.5, **style)
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


# --------------------------------------------------------------------------- everything


def _only(df: pd.DataFrame | None, dataset: str, arch: str) -> pd.DataFrame | None:
    """Rows of one (dataset, arch) when the table says which; a plot mixes neither."""
    if df is None:
        return None
    if "dataset" in df.columns:
        df = df[df["dataset"].astype(str) == str(dataset)]
    if "arch" in df.columns:
        df = df[df["arch"].astype(str) == str(arch)]
    return df


def render_all(results_df: pd.DataFrame, bins_df: pd.DataFrame | None, out_dir: str | Path, dataset: str, arch: str) -> list[Path]:
    """Render every plot whose data is present into ``out_dir``; return the written paths.

    Files: reliability.png, accuracy_vs_eps.png, deformation.png, corruption.png, summary.png.
    """
    results_df = _only(_require(results_df, RESULT_COLUMNS, "results"), dataset, arch)
    bins_df = _only(bins_df, dataset, arch)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{dataset} · {arch}"
    written: list[Path] = []
    if bins_df is not None and not bins_df.empty:
        written.append(reliability_diagram(bins_df, out_dir / "reliability.png", title))
    if not _accuracy_rows(results_df, "adversarial").empty:
        written.append(accuracy_vs_eps(results_df, out_dir / "accuracy_vs_eps.png", title))
    for suite in ("deformation", "corruption"):
        if not _accuracy_rows(results_df, suite).empty:
            written.append(accuracy_vs_severity(results_df, out_dir / f"{suite}.png", title, suite=suite))
    has_lens = any(not _accuracy_rows(results_df, s).empty for s in ("adversarial", "deformation")) or (
        results_df["suite"] == "calibration").any() or (bins_df is not None and not bins_df.empty)
    if has_lens:
        written.append(summary_figure(results_df, bins_df, out_dir / "summary.png", title))
    return written
