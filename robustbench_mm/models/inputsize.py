"""Which image sizes an architecture can take: one check for every registered architecture.

No architecture declares its smallest input: its pooling and strides decide it (the cnn halves
the image twice, the fast nets pool four times), and an architecture added later (a torchvision
or timm model) declares nothing either. So the check probes: it builds the architecture for the
data's channels and size and runs two zero images through it in eval mode. A probe that fails
is followed by a search for the smallest size that works, so the refusal can name it. The
probes run before any run folder exists or any training starts.
"""

from __future__ import annotations

import functools

import torch

from robustbench_mm.core.errors import UserError
from robustbench_mm.models.registry import ARCHS, create_model, is_arch

PROBE_MAX = 1024  # sizes searched for an architecture's minimum (beyond: "none up to 1024")


@functools.lru_cache(maxsize=256)
def takes(arch: str, channels: int, size: int, classes: int = 2) -> bool:
    """Whether ``arch`` maps (2, channels, size, size) images to (2, classes) logits."""
    try:
        # fork_rng: building the probe draws initial weights; the caller's random stream stays as it was
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model = create_model(arch, classes, channels, size).eval()
            out = model(torch.zeros(2, channels, size, size))
    except (RuntimeError, ValueError, IndexError, ZeroDivisionError):  # layers say "too small" in these
        return False
    return tuple(out.shape) == (2, classes)


@functools.lru_cache(maxsize=64)
def min_size(arch: str, channels: int) -> int | None:
    """The smallest square size ``arch`` takes (sizes are taken to work from it upward), or None."""
    if takes(arch, channels, 1):
        return 1
    high = 2
    while not takes(arch, channels, high):
        if high >= PROBE_MAX:
            return None
        high = min(2 * high, PROBE_MAX)
    low = high // 2  # fails; high works
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if takes(arch, channels, mid) else (mid, high)
    return high


def check_input_size(arch: str, channels: int, size: int, classes: int) -> None:
    """Refuse, in one line, images ``arch`` cannot take (naming its minimum and the architectures that can)."""
    if not is_arch(arch):  # torchvision:/timm: names are probed like registered ones
        ARCHS.get(arch)  # an unknown name: the registry's own one-line error
    if takes(arch, channels, size, classes):
        return
    smallest = min_size(arch, channels)
    others = [name for name in ARCHS.names() if name != arch and takes(name, channels, size, classes)]
    fits = f"; architectures that take them: {', '.join(others)} (--arch)" if others else ""
    shape = f"{size}x{size} images with {channels} channel{'s' if channels > 1 else ''}"
    if smallest is None or smallest <= size:
        raise UserError(f"architecture {arch} cannot take {shape}{fits}")
    raise UserError(f"architecture {arch} needs images of at least {smallest}x{smallest}, got {size}x{size}{fits}")
