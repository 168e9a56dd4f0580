"""Figures of the paper's lenses, checked on what they draw."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.results import frame, row
from robustbench_mm.evaluation.suites.ood import LAMBDAS
from robustbench_mm.report import figures as plots

METHODS = ("erm", "mixup", "manifold-mixup")
DECAY = {"erm": 0.9, "mixup": 0.8, "manifold-mixup": 0.5}  # faster decay = flatter


def spectra_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    parts = []
    for method in METHODS:
        for seed in (0, 1):
            for layer in ("penultimate", "layer10", "layer2"):
                values = DECAY[method] ** np.arange(30) * rng.uniform(0.9, 1.1, 30)
                values[25:] = 0.0  # beyond the rank
                parts.append(
                    pd.DataFrame(
                        {
                            "method": method,
                            "seed": seed,
                            "layer": layer,
                            "index": np.arange(1, 31),
                            "value": values / values.sum(),
                        }
                    )
                )
    return pd.concat(parts, ignore_index=True)


def results_table() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frames = []
    for k, method in enumerate(METHODS):
        for seed in (0, 1):
            rows = [
                row(
                    "ood",
                    "interpolation",
                    lam,
                    "confidence",
                    1 - (0.1 + 0.1 * k) * (1 - abs(2 * lam - 1)) + rng.normal(0, 0.01),
                    360,
                )
                for lam in LAMBDAS
            ]
            rows += [
                row("ood", s, 0, "auroc-msp", 0.6 + 0.1 * k + rng.normal(0, 0.02), 360) for s in ("uniform", "gaussian")
            ]
            rows.append(row("clean", "clean", 0, "accuracy", 0.97, 360))
            frames.append(
                frame(rows, dict(run=f"{method}-s{seed}", dataset="digits", arch="cnn", method=method, seed=seed))
            )
    return pd.concat(frames, ignore_index=True)


def test_spectra_figure_draws_seed_means_per_layer() -> None:
    table = spectra_table()
    fig = plots.spectra_figure(table, max_index=28)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["layer2", "layer10", "penultimate"]
    for ax in axes:
        assert ax.get_yscale() == "log"
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines) == [f"{m} (2 seeds)" for m in METHODS]
        for method in METHODS:
            part = table[(table["method"] == method) & (table["layer"] == ax.get_title())]
            want = part.groupby("index")["value"].mean().loc[:25]  # zeros (index > 25) left out of the log axis
            np.testing.assert_allclose(lines[f"{method} (2 seeds)"].get_ydata(), want.to_numpy())
            np.testing.assert_array_equal(lines[f"{method} (2 seeds)"].get_xdata(), np.arange(1, 26))


def test_interpolation_figure_draws_confidence_in_percent() -> None:
    table = results_table()
    ax = plots.interpolation_figure(table).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == list(METHODS)
    for method, line in lines.items():
        part = table[(table["method"] == method) & (table["test"] == "interpolation")]
        want = 100 * part.groupby("severity")["value"].mean()
        np.testing.assert_allclose(line.get_xdata(), LAMBDAS)
        np.testing.assert_allclose(line.get_ydata(), want.to_numpy())
    # the synthetic manifold-mixup dips most at λ = 0.5: the drawn minimum says so too
    assert min(lines["manifold-mixup"].get_ydata()) < min(lines["erm"].get_ydata()) - 15


def test_auroc_figure_bars() -> None:
    table = results_table()
    ax = plots.auroc_figure(table).axes[0]
    heights = [patch.get_height() for patch in ax.patches]
    want = [
        100 * table[(table["method"] == m) & (table["test"] == s) & (table["metric"] == "auroc-msp")]["value"].mean()
        for m in METHODS
        for s in ("uniform", "gaussian")
    ]
    np.testing.assert_allclose(heights, want)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["uniform", "gaussian"]


def test_pngs_are_written_atomically(tmp_path: Path) -> None:
    paths = [
        plots.plot_spectra(spectra_table(), tmp_path / "spectra.png", "digits · cnn"),
        plots.plot_interpolation(results_table(), tmp_path / "interp.png"),
        plots.plot_auroc(results_table(), tmp_path / "auroc.png"),
    ]
    for path in paths:
        image = mpimg.imread(path)
        assert image.ndim == 3 and image.std() > 0.05  # decodes, and is not a blank page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auroc.png", "interp.png", "spectra.png"]


def test_missing_rows_or_columns_are_one_line() -> None:
    without = results_table().query("suite != 'ood'")
    with pytest.raises(UserError, match="no ood/interpolation"):
        plots.interpolation_figure(without)
    with pytest.raises(UserError, match="no ood/\\*/0/auroc-msp rows"):
        plots.auroc_figure(without)
    with pytest.raises(UserError, match="lacks column\\(s\\) layer"):
        plots.spectra_figure(spectra_table().drop(columns="layer"))


def test_importing_the_lenses_leaves_matplotlib_alone() -> None:
    code = (
        "import matplotlib; before = matplotlib.rcParams._get('backend');"
        "import robustbench_mm.report.figures, robustbench_mm.report.figures.boundaries, "
        "robustbench_mm.evaluation.suites.ood, robustbench_mm.evaluation.suites.representation;"
        "import sys; "
        "sys.exit(0 if matplotlib.rcParams._get('backend') == before and 'matplotlib.pyplot' not in sys.modules else 1)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent).returncode == 0
