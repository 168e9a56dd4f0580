"""Every plot renders from a synthetic results table into a valid, non-trivial PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from synthetic import synthetic_tables

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.results import COLUMNS
from robustbench_mm.report import figures as plots

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


_KEEP_BACKEND_SCRIPT = r"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("svg")  # a user's own choice, e.g. a notebook's inline backend
import torch

import robustbench_mm.corruptions as corruptions
import robustbench_mm.report.figures as plots
import robustbench_mm.report as report
from synthetic import synthetic_tables

out = Path(sys.argv[1])
results_df, bins_df = synthetic_tables()
plots.accuracy_vs_eps(results_df, out / "plots.png", "digits · cnn")
image = torch.linspace(0, 1, 3 * 16 * 16).reshape(1, 3, 16, 16)
corruptions.corruption_grid_png(image, out / "grid.png", names=["fog", "contrast"])
runs = []  # run directories of the clean and calibration rows only: the report's fast path
for run, metrics in results_df[results_df.suite.isin(["clean", "calibration"])].groupby("run"):
    runs.append(out / "runs" / run)
    runs[-1].mkdir(parents=True)
    metrics.to_csv(runs[-1] / "metrics.csv", index=False)
    bins_df[bins_df.run == run].to_csv(runs[-1] / "reliability.csv", index=False)
report.write_report(runs, out / "report")
print(matplotlib.get_backend())
"""


def test_rendering_leaves_the_users_backend_alone(tmp_path: Path) -> None:
    """In a fresh process that chose the svg backend, importing plots, corruptions and report and
    rendering a figure of each keeps svg, and every PNG is a real picture."""
    import os
    import subprocess
    import sys

    import numpy as np

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")]), "OMP_NUM_THREADS": "1"}
    env.pop("MPLBACKEND", None)
    done = subprocess.run(
        [sys.executable, "-c", _KEEP_BACKEND_SCRIPT, str(tmp_path)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "svg"
    pictures = [tmp_path / "plots.png", tmp_path / "grid.png", tmp_path / "report" / "reliability.png"]
    for path in pictures:
        pixels = mpimg.imread(path)  # decodes the PNG
        assert pixels.ndim == 3 and pixels.shape[2] in (3, 4), path
        assert np.ptp(pixels[..., :3]) > 0.5, path  # not one flat colour
        assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 10, path


def test_axis_units_come_from_the_tests_owners(monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack registry says an attack's norm, the deformations their units, the corruptions
    their levels: names are never parsed (cw-l2 is unbounded, not an L2 radius)."""
    from robustbench_mm.attacks import ATTACKS
    from robustbench_mm.corruptions import DEFORMATIONS, deformations

    label = plots.severity_label
    for name in ATTACKS.names():
        norm = ATTACKS.get(name).norm
        want = {"linf": "L∞ norm", "l2": "L2 norm", "none": "unbounded"}[norm]
        assert want in label("adversarial", name), name
    assert "L∞" in label("adversarial", "worst-case") and "L2" in label("adversarial", "worst-case-l2")
    assert "unbounded" in label("adversarial", "cw-l2")
    assert label("adversarial", "an-attack-from-elsewhere") == "ε (pixel scale [0, 1])"
    assert set(deformations.SEVERITY_UNITS) == set(DEFORMATIONS.names())  # every deformation declares one
    assert label("deformation", "rotate") == "max rotation angle (degrees)"
    assert "field of view" in label("deformation", "zoom-out")
    monkeypatch.setitem(deformations.SEVERITY_UNITS, "swirl", "swirl strength (radians)")
    assert label("deformation", "swirl") == "swirl strength (radians)"
    assert "level 1–5" in label("corruption", "fog")


def test_methods_keep_the_registrys_order_and_colours() -> None:
    from robustbench_mm.methods import METHODS, method_color

    df = pd.DataFrame({"method": ["zz-unregistered", "pgd-at", "manifold-mixup", "erm", "mixup"]})
    order = plots.method_order(df, None)
    assert order[0] == "erm" and order[-1] == "zz-unregistered"
    assert order.index("mixup") < order.index("manifold-mixup")
    colors = plots.method_colors(order)
    assert all(colors[m] == method_color(m) for m in order[:-1])
    assert colors["zz-unregistered"] not in {METHODS.get(m).color for m in METHODS.names()}
