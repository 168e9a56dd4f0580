"""A picture of what each corruption does: rows = corruptions, columns = clean + severities."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..storage import atomic_write
from ._util import check_images
from .common import CORRUPTIONS, corrupt, corruption_names


def _show(ax: Axes, t: torch.Tensor) -> None:
    grey = t.shape[1] == 1
    arr = t[0].permute(1, 2, 0).squeeze(-1).numpy() if grey else t[0].permute(1, 2, 0).numpy()
    ax.imshow(arr, cmap="gray" if grey else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def corruption_grid_png(
    x: torch.Tensor,
    out_path: str | Path,
    names: Sequence[str] | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    seed: int = 0,
) -> Path:
    """Draw the first image of ``x`` under every corruption and severity; write a PNG atomically.

    The figure is a plain ``Figure`` on its own Agg canvas: no pyplot, so nothing stays open and
    the user's matplotlib backend is left as it was.
    """
    check_images(x)
    names = list(names) if names is not None else corruption_names()
    for name in names:
        CORRUPTIONS.get(name)  # unknown names fail before any drawing
    img = x[:1].detach().float().cpu()
    cols = 1 + len(severities)
    fig = Figure(figsize=(1.3 * cols, 1.3 * len(names) + 0.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(names), cols, squeeze=False)
    for r, name in enumerate(names):
        _show(axes[r, 0], img)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        for k, sev in enumerate(severities, start=1):
            g = torch.Generator().manual_seed(seed)
            _show(axes[r, k], corrupt(img, name, sev, g))
    for k, title in enumerate(["clean", *[f"s{s}" for s in severities]]):
        axes[0, k].set_title(title, fontsize=8)
    fig.suptitle("Common corruptions by severity (first image)")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))  # leave room for the title

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:  # readers never see a half-written file
        return atomic_write(out, lambda fh: fig.savefig(fh, format="png", dpi=100))
    finally:
        fig.clear()  # release the artists now
