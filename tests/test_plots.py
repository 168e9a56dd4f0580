"""Every plot renders from a synthetic results table into a valid, non-trivial PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from robustbench_mm import plots
from robustbench_mm.errors import UserError
from robustbench_mm.results import COLUMNS
from synthetic import synthetic_tables

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    return synthetic_tables()


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 10_000
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left no temp file behind


def test_render_all_writes_every_plot(tables: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    results_df, bins_df = tables
    assert list(results_df.columns) == COLUMNS
    paths = plots.render_all(results_df, bins_df, tmp_path / "figs", dataset="digits", arch="cnn")
    names = {p.name for p in paths}
    assert names == {"reliability.png", "accuracy_vs_eps.png", "deformation.png", "corruption.png", "summary.png"}
    for p in paths:
        _assert_png(p)
    assert plt.get_fignums() == []


def test_individual_plots_and_partial_data(tables: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    results_df, bins_df = tables
    _assert_png(plots.reliability_diagram(bins_df, tmp_path / "r.png", "digits · cnn"))
    _assert_png(plots.accuracy_vs_eps(results_df, tmp_path / "a.png", "digits · cnn"))
    _assert_png(plots.accuracy_vs_severity(results_df, tmp_path / "c.png", "digits · cnn", suite="corruption"))
    # Summary with one lens missing still renders (the panel says "no ... results").
    no_adv = results_df[results_df["suite"] != "adversarial"]
    _assert_png(plots.summary_figure(no_adv, None, tmp_path / "s.png", "digits · cnn"))
    # Only calibration data: just the reliability diagram and the summary.
    only_cal = results_df[results_df["suite"] == "calibration"]
    names = {p.name for p in plots.render_all(only_cal, bins_df, tmp_path / "cal", "digits", "cnn")}
    assert names == {"reliability.png", "summary.png"}
    # Another dataset's rows are filtered out, leaving nothing to draw.
    assert plots.render_all(results_df, bins_df, tmp_path / "none", "cifar10", "cnn") == []
    with pytest.raises(UserError):
        plots.accuracy_vs_eps(no_adv, tmp_path / "x.png", "t")
    with pytest.raises(UserError):
        plots.reliability_diagram(bins_df.drop(columns="count"), tmp_path / "x.png", "t")
    assert plt.get_fignums() == []
