"""A picture of what each corruption does: rows = corruptions, columns = clean + severities."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.files import atomic_write, ensure_writable_dir
from robustbench_mm.core.untrusted import clip
from robustbench_mm.corruptions._util import check_images
from robustbench_mm.corruptions.common import CORRUPTIONS, check_severity, corrupt, corruption_names


def grid_names(names: Sequence[str] | None) -> list[str]:
    """The corruptions a grid shows: every one if ``names`` is None, else ``names`` checked
    and de-duplicated (first place kept). An empty list or a blank name is refused, so a
    caller can check its input before creating any folder."""
    if names is None:
        return corruption_names()
    shown: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise UserError(f"corruption names must not be blank, got {clip(name, 40)}")
        CORRUPTIONS.get(name)  # an unknown name fails here, listing the valid ones
        if name not in shown:
            shown.append(name)
    if not shown:
        raise UserError("no corruption to show: --corruptions is empty")
    return shown


def grid_severities(severities: Sequence[int]) -> list[int]:
    """Severities 1..5, de-duplicated in order; at least one."""
    checked = list(dict.fromkeys(check_severity(s) for s in severities))
    if not checked:
        raise UserError("no severity to show: the severities are empty")
    return checked


def _show(ax, t: torch.Tensor) -> None:
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

    Every input is checked before anything is drawn or written; the PNG gets the usual file
    mode (0666 less the umask), like every other file the project writes.
    """
    check_images(x)
    if x.shape[0] == 0:
        raise UserError("no image to show: the batch is empty")
    names = grid_names(names)
    severities = grid_severities(severities)
    # Figure without pyplot: no global backend switch, no window, nothing kept after return.
    from matplotlib.figure import Figure

    img = x[:1].detach().float().cpu()
    cols = 1 + len(severities)
    fig = Figure(figsize=(1.3 * cols, 1.3 * len(names) + 0.6))
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
    ensure_writable_dir(out.parent)
    try:  # readers never see a half-written file
        return atomic_write(out, lambda handle: fig.savefig(handle, format="png", dpi=100))
    finally:
        fig.clear()  # release the artists now
