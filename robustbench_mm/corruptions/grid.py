"""A picture of what each corruption does: rows = corruptions, columns = clean + severities."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede the pyplot import
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ._util import check_images  # noqa: E402
from .common import CORRUPTIONS, corrupt, corruption_names  # noqa: E402


def corruption_grid_png(
    x: torch.Tensor,
    out_path: str | Path,
    names: Sequence[str] | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    seed: int = 0,
) -> Path:
    """Draw the first image of ``x`` under every corruption and severity; write a PNG atomically."""
    check_images(x)
    names = list(names) if names is not None else corruption_names()
    for name in names:
        CORRUPTIONS.get(name)  # unknown names fail before any drawing
    img = x[:1].detach().float().cpu()
    cols = 1 + len(severities)
    fig, axes = plt.subplots(len(names), cols, figsize=(1.3 * cols, 1.3 * len(names) + 0.6), squeeze=False)
    grey = img.shape[1] == 1

    def show(ax: plt.Axes, t: torch.Tensor) -> None:
        arr = t[0].permute(1, 2, 0).squeeze(-1).numpy() if grey else t[0].permute(1, 2, 0).numpy()
        ax.imshow(arr, cmap="gray" if grey else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])

    for r, name in enumerate(names):
        show(axes[r, 0], img)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        for k, sev in enumerate(severities, start=1):
            g = torch.Generator().manual_seed(seed)
            show(axes[r, k], corrupt(img, name, sev, g))
    for k, title in enumerate(["clean", *[f"s{s}" for s in severities]]):
        axes[0, k].set_title(title, fontsize=8)
    fig.suptitle("Common corruptions by severity (first image)")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))  # leave room for the title

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=100)
        os.replace(tmp, out)  # readers never see a half-written file
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        plt.close(fig)
    return out
