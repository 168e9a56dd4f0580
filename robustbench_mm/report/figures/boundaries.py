"""The paper's Fig. 1: decision boundaries and a 2-D hidden representation, ERM vs mixup vs Manifold Mixup.

A seeded 2-D problem (two interleaved spirals, or scikit-learn's two moons), a small MLP
:class:`~robustbench_mm.models.base.MixableNet` whose last stage is a 2-D bottleneck (mix
points: 0 = the input, 1 = the hidden layer, 2 = the bottleneck, so Manifold Mixup with its
default layers 0, 1, 2 also mixes the 2-D state), trained with the project's own methods
(``create_method`` / ``Method.loss``). One PNG: for each method, the
decision regions in input space shaded by confidence with the data on top, and beside it
(below, in the same column) the bottleneck: each class's hidden states over the head's own
decision regions.

Adam rather than the benchmark's SGD schedule: the toy nets converge in a few hundred steps
with it, which keeps the picture a matter of seconds. Everything is seeded; the PNG carries
no timestamp or software version, so two calls give the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.files import atomic_write_bytes
from robustbench_mm.core.inference import evaluating
from robustbench_mm.methods import Step, create_method
from robustbench_mm.models.base import MixableNet

PROBLEMS = ("spiral", "moons")
METHODS = ("erm", "mixup", "manifold-mixup")
TITLES = {"erm": "ERM", "mixup": "Input mixup", "manifold-mixup": "Manifold Mixup"}
# class colours (RGB in [0, 1]); far from each other and from white, so shading stays readable
CLASS_COLORS = np.array([[0.12, 0.40, 0.80], [0.85, 0.20, 0.15]])
FIGSIZE, DPI, GRID = (10.5, 7.0), 100, 160
LAYOUT = dict(left=0.05, right=0.99, bottom=0.04, top=0.88, wspace=0.12, hspace=0.22)
MAX_SHADE = 0.55  # full confidence tints the background this far towards the class colour


def make_problem(problem: str, n: int = 800, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points (float32, (n, 2)) and labels (0/1) of a seeded two-class problem."""
    if problem == "moons":
        from sklearn.datasets import make_moons

        points, labels = make_moons(n, noise=0.1, random_state=seed)
    elif problem == "spiral":
        rng = np.random.default_rng(seed)
        labels = np.arange(n) % 2
        t = np.sqrt(rng.uniform(0.05, 1.0, n))  # sqrt: points spread evenly along the arm
        angle = 3.0 * np.pi * t + np.pi * labels  # the second arm is the first turned by 180 degrees
        points = np.c_[t * np.cos(angle), t * np.sin(angle)] + rng.normal(0.0, 0.04, (n, 2))
    else:
        raise UserError(f"unknown problem {problem!r}; valid: {', '.join(PROBLEMS)}")
    return torch.tensor(points, dtype=torch.float32), torch.tensor(labels, dtype=torch.int64)


def bottleneck_mlp(x: torch.Tensor, width: int = 64, classes: int = 2) -> MixableNet:
    """Input (normalized by ``x``'s statistics) -> hidden layer -> 2-D bottleneck -> head.

    Points enter as (n, 2, 1, 1) "images" so that the model owns its normalization as every
    MixableNet does (one mean/std per coordinate).
    """
    stages = [
        nn.Sequential(nn.Flatten(), nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()),
        nn.Linear(width, 2),
    ]
    head = nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, classes))
    return MixableNet(stages, head, x.mean(0).tolist(), x.std(0).tolist())


def as_images(points: torch.Tensor) -> torch.Tensor:
    return points[:, :, None, None]


def train_method(
    method: str, x: torch.Tensor, y: torch.Tensor, seed: int, steps: int = 600, batch: int = 128
) -> MixableNet:
    """One network trained with ``method`` on the points; the caller's global RNG is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = bottleneck_mlp(x)
    spec = create_method(method)
    spec.check_model(model)
    order_gen = torch.Generator().manual_seed(seed)
    randomness = Step(np.random.default_rng(seed), torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images = as_images(x)
    model.train()
    for _ in range(steps):
        index = torch.randperm(len(x), generator=order_gen)[:batch]
        loss, _ = spec.loss(model, images[index], y[index], randomness)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


@dataclass
class Panels:
    """What one method's two panels show: probabilities on grids, the data and its hidden states."""

    method: str
    accuracy: float
    input_extent: tuple[float, float, float, float]
    input_probs: np.ndarray  # (GRID, GRID, classes), rows = y from bottom to top
    hidden_extent: tuple[float, float, float, float]
    hidden_probs: np.ndarray
    hidden: np.ndarray  # (n, 2) bottleneck states of the data


def _grid(extent: tuple[float, float, float, float]) -> torch.Tensor:
    x0, x1, y0, y1 = extent
    xs, ys = torch.linspace(x0, x1, GRID), torch.linspace(y0, y1, GRID)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], dim=1)


def _extent(points: np.ndarray, pad: float = 0.15) -> tuple[float, float, float, float]:
    low, high = points.min(0), points.max(0)
    margin = pad * (high - low).max()
    return (float(low[0] - margin), float(high[0] + margin), float(low[1] - margin), float(high[1] + margin))


@torch.no_grad()
def panels(model: MixableNet, method: str, x: torch.Tensor, y: torch.Tensor) -> Panels:
    with evaluating(model):
        hidden = model.hidden_states(as_images(x))[-1]
        accuracy = float((model.head(hidden).argmax(1) == y).float().mean())
        input_extent = _extent(x.numpy())
        input_probs = model(as_images(_grid(input_extent))).softmax(1)
        hidden_extent = _extent(hidden.numpy())
        hidden_probs = model.head(_grid(hidden_extent)).softmax(1)
    shape = (GRID, GRID, -1)
    return Panels(
        method,
        accuracy,
        input_extent,
        input_probs.reshape(shape).numpy(),
        hidden_extent,
        hidden_probs.reshape(shape).numpy(),
        hidden.numpy(),
    )


def shade(probs: np.ndarray) -> np.ndarray:
    """RGB image: white where the model is at chance, the predicted class's colour as it grows confident."""
    classes = probs.shape[-1]
    confident = (probs.max(-1) - 1.0 / classes) / (1.0 - 1.0 / classes)
    colour = CLASS_COLORS[probs.argmax(-1) % len(CLASS_COLORS)]
    weight = MAX_SHADE * confident[..., None]
    return (1.0 - weight) + weight * colour


def _draw(
    ax: Axes, probs: np.ndarray, extent: tuple[float, float, float, float], points: np.ndarray, y: np.ndarray
) -> None:
    ax.imshow(shade(probs), origin="lower", extent=extent, aspect="auto", interpolation="nearest")
    ax.contour(
        np.linspace(extent[0], extent[1], GRID),
        np.linspace(extent[2], extent[3], GRID),
        probs[..., 1],
        levels=[0.5],
        colors="k",
        linewidths=0.8,
    )
    ax.scatter(points[:, 0], points[:, 1], c=CLASS_COLORS[y], s=5, linewidths=0)
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    ax.set_xticks([])
    ax.set_yticks([])


def _layout(fig: Figure) -> np.ndarray:
    axes = fig.subplots(2, len(METHODS), squeeze=False)
    fig.subplots_adjust(**LAYOUT)
    return axes


def panel_boxes() -> dict[tuple[int, int], tuple[int, int, int, int]]:
    """Pixel box (left, top, right, bottom) of each panel (row 0: input space, row 1: hidden) in the PNG."""
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    width, height = FIGSIZE[0] * DPI, FIGSIZE[1] * DPI
    boxes = {}
    for (r, c), ax in np.ndenumerate(_layout(fig)):
        box = ax.get_position()
        boxes[(r, c)] = (
            round(box.x0 * width),
            round((1 - box.y1) * height),
            round(box.x1 * width),
            round((1 - box.y0) * height),
        )
    return boxes


def boundary_figure(all_panels: list[Panels], y: torch.Tensor, x: torch.Tensor, problem: str, seed: int) -> Figure:
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    axes = _layout(fig)
    labels = y.numpy()
    for column, p in enumerate(all_panels):
        _draw(axes[0, column], p.input_probs, p.input_extent, x.numpy(), labels)
        axes[0, column].set_title(f"{TITLES[p.method]}  (train accuracy {100 * p.accuracy:.1f}%)", fontsize=10)
        _draw(axes[1, column], p.hidden_probs, p.hidden_extent, p.hidden, labels)
    axes[0, 0].set_ylabel("input space")
    axes[1, 0].set_ylabel("2-D hidden space (bottleneck)")
    fig.suptitle(
        f"{problem} (seed {seed}): decision regions, shaded by confidence (white = chance), "
        "and each class's hidden states",
        fontsize=11,
    )
    return fig


def render_boundaries(out_path: str | Path, problem: str = "spiral", seed: int = 0, steps: int = 600) -> Path:
    """Train the three methods on ``problem`` and write the picture to ``out_path`` (PNG, atomically)."""
    if problem not in PROBLEMS:
        raise UserError(f"unknown problem {problem!r}; valid: {', '.join(PROBLEMS)}")
    x, y = make_problem(problem, seed=seed)
    all_panels = [panels(train_method(m, x, y, seed, steps), m, x, y) for m in METHODS]
    fig = boundary_figure(all_panels, y, x, problem, seed)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})  # no version stamp: same bytes every time
    return atomic_write_bytes(out_path, buffer.getvalue())
