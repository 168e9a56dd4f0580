"""The decision-boundary picture: seeded to the byte, three methods drawn, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustbench_mm.core.errors import UserError
from robustbench_mm.report.figures.boundaries import (
    CLASS_COLORS,
    METHODS,
    make_problem,
    panel_boxes,
    render_boundaries,
    train_method,
)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("boundaries")
    return render_boundaries(out / "a.png"), render_boundaries(out / "b.png", "spiral", 0)


def test_two_calls_give_the_same_bytes(pictures) -> None:
    first, second = pictures
    assert first.read_bytes() == second.read_bytes()
    assert b"Software" not in first.read_bytes()  # no matplotlib version stamped into the file


def _panel(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    left, top, right, bottom = box
    return image[top + 3 : bottom - 3, left + 3 : right - 3]  # inside the frame


def _class_share(panel: np.ndarray, colour: np.ndarray) -> float:
    """Share of the panel's pixels tinted towards ``colour`` (the shade or the data points)."""
    pixels = panel.reshape(-1, 3)
    # a tint of colour c is white + t (c - white): project on that direction, ignore the rest
    direction = colour - 1.0
    t = (pixels - 1.0) @ direction / (direction @ direction)
    residual = np.linalg.norm(pixels - 1.0 - t[:, None] * direction, axis=1)
    return float(np.mean((t > 0.2) & (residual < 0.08)))


def test_picture_shows_three_methods(pictures) -> None:
    image = np.asarray(Image.open(pictures[0]).convert("RGB"), dtype=np.float64) / 255
    boxes = panel_boxes()
    assert image.shape[:2] == (700, 1050) and len(boxes) == 2 * len(METHODS)
    for left, top, _right, bottom in boxes.values():  # the boxes sit on the panels' black frames
        assert image[top + 5 : bottom - 5, left - 1 : left + 2].min(axis=(1, 2)).max() < 0.3
    panels = {key: _panel(image, box) for key, box in boxes.items()}
    h, w = min(p.shape[0] for p in panels.values()), min(p.shape[1] for p in panels.values())
    panels = {key: p[:h, :w] for key, p in panels.items()}  # boxes differ by a rounding pixel
    for key, panel in panels.items():
        for colour in CLASS_COLORS:  # both classes' regions (and points) in every panel
            assert _class_share(panel, colour) > 0.1, key
    # each method's input-space regions differ from every other method's
    for a in range(len(METHODS)):
        for b in range(a + 1, len(METHODS)):
            assert np.abs(panels[(0, a)] - panels[(0, b)]).mean() > 0.02, (a, b)
    # ERM is confident almost everywhere, Manifold Mixup leaves a near-white band between the classes
    near_white = lambda p: float(np.mean(p.min(axis=2) > 0.85))  # noqa: E731
    assert near_white(panels[(0, 2)]) > near_white(panels[(0, 0)]) + 0.03


def test_problems_are_seeded_two_class_sets() -> None:
    for problem in ("spiral", "moons"):
        x, y = make_problem(problem, n=200, seed=1)
        assert x.shape == (200, 2) and set(y.tolist()) == {0, 1}
        assert torch.equal(x, make_problem(problem, n=200, seed=1)[0])
        assert not torch.equal(x, make_problem(problem, n=200, seed=2)[0])


def test_training_leaves_the_global_rng_alone() -> None:
    x, y = make_problem("moons", n=64)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_method("manifold-mixup", x, y, seed=0, steps=2, batch=16)
    assert torch.equal(torch.rand(3), expected)


def test_unknown_problem(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown problem 'circles'; valid: spiral, moons"):
        render_boundaries(tmp_path / "x.png", "circles")
    assert not (tmp_path / "x.png").exists()
