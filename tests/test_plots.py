"""Every plot renders from a synthetic results table into a valid, non-trivial PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from robustbench_mm import calibration, plots
from robustbench_mm.errors import UserError
from robustbench_mm.results import COLUMNS, frame, row

METHODS = {"erm": 0.0, "mixup": 0.08, "manifold-mixup": 0.12}  # method -> robustness bonus
SEEDS = (0, 1)
EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
DEFORMATIONS = {"rotate": (20, 40, 60), "shear": (28.6, 57.3), "zoom-in": (60, 80), "zoom-out": (120, 140)}
CORRUPTIONS = ("gaussian_noise", "defocus_blur", "fog", "contrast")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run_rows(method: str, seed: int, rng: np.random.Generator) -> list[dict]:
    bonus, n = METHODS[method], 1000
    noise = lambda: rng.normal(0, 0.015)  # noqa: E731  seed-to-seed spread for the bands
    rows = [row("clean", "clean", 0, "accuracy", 0.92 + noise(), n)]
    for i, eps in enumerate(EPS):
        rows.append(row("adversarial", "fgsm", eps, "accuracy", 0.7 - 0.12 * i + bonus + noise(), n))
        rows.append(row("adversarial", "pgd-linf", eps, "accuracy", 0.6 - 0.15 * i + bonus / 3 + noise(), n))
        rows.append(row("adversarial", "worst-case", eps, "accuracy", 0.55 - 0.14 * i + bonus / 3 + noise(), n))
    for test, severities in DEFORMATIONS.items():
        for k, s in enumerate(severities):
            rows.append(row("deformation", test, s, "accuracy", 0.8 - 0.15 * k + bonus + noise(), n))
    for c in CORRUPTIONS:
        for level in range(1, 6):
            rows.append(row("corruption", c, level, "accuracy", 0.9 - 0.1 * level + bonus / 2 + noise(), n))
    logits, labels = _logits(method, seed)
    rows += calibration.calibration_rows(logits, labels, temperature=1.5)
    return rows


def _logits(method: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Over-confident ERM, milder mixup: scaled calibrated logits."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(1000, 10, generator=g) * 2.5
    y = torch.multinomial(z.softmax(1), 1, generator=g).squeeze(1)
    return z * (2.0 - 4 * METHODS[method]), y


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frames, bins = [], []
    for method in METHODS:
        for seed in SEEDS:
            identity = dict(run=f"{method}-s{seed}", dataset="digits", arch="cnn", method=method, seed=seed)
            frames.append(frame(_run_rows(method, seed, rng), identity))
            bins.append(calibration.reliability_bins(*_logits(method, seed)).assign(**identity))
    return pd.concat(frames, ignore_index=True), pd.concat(bins, ignore_index=True)


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
