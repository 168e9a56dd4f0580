"""Hendrycks & Dietterich's common corruptions (CIFAR-10-C), batched in torch.

Parameters are the CIFAR tables of the reference ``make_cifar_c.py`` (hendrycks/robustness,
``ImageNet-C/create_c/make_cifar_c.py``), written for 32x32 images. For other sizes every
*spatial* parameter measured in pixels (blur sigmas and radii, glass-blur displacement,
motion-blur length, spatter smoothing) is multiplied by ``min(H, W) / 32``, which is also
roughly how the authors' own ImageNet-C tables grow from the CIFAR ones. Parameters that are
fractions of the image (zoom factors, pixelate ratio, elastic alpha/sigma, which the reference
already writes as multiples of the image size) and pixel-value parameters are unchanged.

The corruptions live in four files by family (noise, blur, weather, digital); each says
where and why it departs from the reference. Every one takes and returns (N, C, H, W) floats
with C in {1, 3}; :func:`corrupt` checks inputs, computes in float32 (float64 stays float64),
clamps to [0, 1] and restores the caller's dtype.
"""

from __future__ import annotations

import torch

from robustbench_mm.core.errors import UserError
from robustbench_mm.corruptions import blur, digital, noise, weather  # noqa: F401  (importing a family registers its corruptions)
from robustbench_mm.corruptions._util import check_images, run_chunked
from robustbench_mm.corruptions.registry import CORRUPTIONS, Corruption  # noqa: F401

# The corruptions of the published CIFAR-10-C files, in its order: the 15 benchmark ones, then the
# 4 held-out extras. A corruption added to a family module needs no entry here.
CIFAR10_C = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
    "speckle_noise",
    "gaussian_blur",
    "spatter",
    "saturate",
)


def corruption_names() -> list[str]:
    """Every registered corruption: CIFAR-10-C's in its order, then any other, by name."""
    return [n for n in CIFAR10_C if n in CORRUPTIONS] + sorted(set(CORRUPTIONS.names()) - set(CIFAR10_C))


LEVELS = (1, 2, 3, 4, 5)  # the published tables' severities
SEVERITY_LABEL = "corruption severity (level 1–5)"  # what a corruption's severity means, for axis labels


def check_severity(severity: object) -> int:
    """Severities are the integers 1..5 of the published tables; anything else is refused."""
    ok = isinstance(severity, (int, float)) and not isinstance(severity, bool)
    if not ok or severity not in LEVELS:
        raise UserError(f"severity must be 1..5, got {severity!r}")
    return int(severity)


def corrupt(x: torch.Tensor, name: str, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (1..5) to a batch of images in [0, 1].

    Random numbers come from ``generator`` only, so a seed and a batch shape fix the output.
    On CPU the batch is processed in cache-sized chunks (see ``_util.chunk_size``).
    """
    fn = CORRUPTIONS.get(name)
    level = check_severity(severity)
    check_images(x)
    if x.shape[0] == 0:
        return x.clone()
    with torch.no_grad():
        return run_chunked(lambda part: fn(part, level, generator), x)
