"""The reliability diagram, read back from its pixels: the gap to the mean confidence is visible
and never covers the accuracy bars it is measured from."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb

from robustbench_mm.methods import method_color
from robustbench_mm.report import figures as plots

UNDER, OVER, CORNER = 7, 9, 1  # bins 0.7-0.8, 0.1-0.2 (accuracy above confidence) and 0.9-1.0 (below)


def _bins(method: str) -> pd.DataFrame:
    """Ten equal bins on the diagonal, except one under- and one over-confident bin."""
    lower = np.arange(10) / 10
    acc = conf = lower + 0.05
    acc, conf = acc.copy(), conf.copy()
    acc[UNDER], conf[UNDER] = 0.98, 0.72
    acc[OVER], conf[OVER] = 0.40, 0.95
    acc[CORNER], conf[CORNER] = 0.97, 0.15  # a full-height bar in the upper left corner
    return pd.DataFrame(
        {
            "method": method,
            "seed": 0,
            "bin": np.arange(10),
            "lower": lower,
            "upper": lower + 0.1,
            "count": 100,
            "accuracy": acc,
            "confidence": conf,
        }
    )


def _render(tmp_path: Path, method: str):
    fig = plots.reliability_figure(_bins(method), "constructed bins")
    pixels = mpimg.imread(plots.save_png(fig, tmp_path / "reliability.png"))[..., :3]
    assert pixels.shape[0] == round(fig.bbox.height)  # the axes' transforms are the PNG's pixels
    ax = fig.axes[0]  # the first method's reliability panel

    def at(x: float, y: float, half: int = 0) -> np.ndarray:
        """The pixels (a square of side 2·half+1) around data point (x, y)."""
        col, row = ax.transData.transform((x, y))
        row = pixels.shape[0] - row
        return pixels[int(row) - half : int(row) + half + 1, int(col) - half : int(col) + half + 1].reshape(-1, 3)

    return at


def _close(rgb: np.ndarray, color) -> np.ndarray:
    return np.abs(rgb - np.array(to_rgb(color))).max(axis=-1) < 2.5 / 255


def test_accuracy_bars_keep_their_colour_where_the_gap_is(tmp_path: Path) -> None:
    for method in ("erm", "pgd-at"):  # pgd-at's colour is red: the gap must not be red
        at = _render(tmp_path, method)
        color = method_color(method)
        # an under-confident bin: the gap (confidence 0.72 to accuracy 0.98) lies inside the bar,
        # which still shows the method's colour there, not a hatch over it
        for y in (0.80, 0.85, 0.90, 0.95):
            assert _close(at(0.75, y, half=2), color).all(), (method, y)
        assert _close(at(0.75, 0.3, half=2), color).all()
        # an over-confident bin: the bar (up to 0.40) keeps its colour ...
        assert _close(at(0.95, 0.2, half=2), color).all()
        # ... and the gap above it (0.40 to 0.95) is drawn: grey hatch on white, no method colour
        gap = at(0.95, 0.67, half=6)
        assert not _close(gap, color).any()
        assert (gap.mean(axis=1) < 0.7).sum() >= 10 and (gap.min(axis=1) > 0.95).sum() >= 10
        # nothing (a legend) covers a bar in the panel's upper left corner
        assert _close(at(0.15, 0.9, half=4), color).all()


def test_an_under_confident_gap_is_outlined_across_the_bar(tmp_path: Path) -> None:
    at = _render(tmp_path, "erm")
    # the outline's lower edge crosses the bar at the bin's mean confidence (0.72) in black
    edge = at(0.75, 0.72, half=3)
    assert (edge.max(axis=1) < 0.2).any()
    # half-way between two bin boundaries, away from the edge, no black: the bar is plain
    assert not (at(0.75, 0.62, half=3).max(axis=1) < 0.2).any()
