"""Blur corruptions: defocus, glass, motion, zoom and gaussian blur (reference CIFAR tables).

Departures from the reference, all for batching:

* glass_blur: none in effect. The reference "swaps" ``x[h, w], x[h', w'] = x[h', w'], x[h, w]``
  on numpy row views, which copies instead of swapping: x[h, w] = x[h + dy, w + dx], with
  dy, dx ~ randint(-d, d) (so in [-d, d-1]) for h, w in d+1 .. side-d, swept from the
  bottom-right. For d = 1 (every CIFAR severity) the sweep only reads pixels it has not
  written yet, so it equals one simultaneous gather, which is what we do (per iteration, one
  offset per pixel for all channels). On images large enough to scale d to 2+, the gather
  is the simultaneous version of the sweep.
* zoom_blur: none in effect. Each zoom is the reference's ``clipped_zoom`` (see
  ``_util.clipped_zoom_matrix``): a crop of ceil(h/z) central rows resized, corners aligned,
  to round(ceil(h/z) * z) and trimmed to h, which on 32 px quantises the magnification and
  shifts the content by up to about a pixel towards the bottom-right. The zoom factors are
  the reference's ``np.arange(1, 1.06 .. 1.26, 0.01)`` values, taken from NumPy so float
  rounding matches (the endpoint is included at severities 1-2: 7 and 12 zooms, then 16, 21
  and 26). On non-square images each axis is clipped-zoomed on its own (the reference uses
  the height for both axes, i.e. only supports squares).
* motion_blur: ImageMagick's kernel (see ``_util.motion_blur``) applied with edge clamping;
  the angle ~ U(-45, 45) degrees is drawn per example.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from robustbench_mm.corruptions import _util as U
from robustbench_mm.corruptions.registry import CORRUPTIONS


@lru_cache(maxsize=64)
def disk_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """The reference's anti-aliased disk: a normalised binary disk, then a small Gaussian blur
    (cv2.GaussianBlur, 3x3 up to radius 8, else 5x5, sigma = alias_blur)."""
    ksize = 3 if radius <= 8 else 5
    half = math.ceil(radius) + ksize // 2  # the disk plus room for the anti-alias blur
    t = torch.arange(-half, half + 1, dtype=torch.float64)
    disk = ((t.view(-1, 1) ** 2 + t.view(1, -1) ** 2) <= radius**2).to(torch.float64)
    disk /= disk.sum()
    g = torch.exp(-((torch.arange(ksize, dtype=torch.float64) - ksize // 2) ** 2) / (2 * alias_blur**2))
    g = (g / g.sum()).view(1, 1, 1, ksize)
    k = F.conv2d(disk.view(1, 1, *disk.shape), g, padding=(0, ksize // 2))
    k = F.conv2d(k, g.transpose(2, 3), padding=(ksize // 2, 0))
    return k[0, 0]


@CORRUPTIONS.register("defocus_blur")
def defocus_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Out-of-focus lens: convolve with a disk. The radius scales with the image, the
    anti-alias sigma is a per-pixel smoothing and does not."""
    radius, alias = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][severity - 1]
    return U.filter2d(x, disk_kernel(radius * U.spatial_scale(x), alias), "reflect101")


@CORRUPTIONS.register("gaussian_blur")
def gaussian_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """skimage.filters.gaussian with the reference sigmas (scaled with the image)."""
    sigma = [0.4, 0.6, 0.7, 0.8, 1.0][severity - 1]
    return U.gaussian_blur(x, sigma * U.spatial_scale(x))


@CORRUPTIONS.register("glass_blur")
def glass_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Frosted glass: blur, copy each pixel from a random up/left neighbour, blur again."""
    sigma, delta, iterations = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][severity - 1]
    s = U.spatial_scale(x)
    sigma, d = sigma * s, max(1, round(delta * s))
    x = U.gaussian_blur(x, sigma).clamp(0, 1).mul_(255).floor_().div_(255)  # the reference's np.uint8
    n, c, h, w = x.shape
    fdt = x.dtype if h * w < 2**24 else torch.float64  # flat pixel indices are exact in it
    ii = torch.arange(h, device=x.device, dtype=fdt).view(h, 1)
    jj = torch.arange(w, device=x.device, dtype=fdt).view(1, w)
    moved = ((ii > d) & (ii <= h - d) & (jj > d) & (jj <= w - d)).to(fdt)  # the reference's loop range
    here = ii * w + jj
    for _ in range(iterations):
        # offsets in [-d, d-1] (numpy randint's exclusive high), one per pixel, for all channels;
        # a moved pixel's source stays inside the image, so no clamping is needed
        dy = U.rand((n, h, w), generator, here).mul_(2 * d).floor_().sub_(d)
        dx = U.rand((n, h, w), generator, here).mul_(2 * d).floor_().sub_(d)
        idx = torch.addcmul(here, dy.mul_(w).add_(dx), moved).long()
        x = x.reshape(n, c, h * w).gather(2, idx.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)
    return U.gaussian_blur(x, sigma)


@CORRUPTIONS.register("motion_blur")
def motion_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Camera shake: a one-sided Gaussian streak at a random angle in [-45, 45] degrees."""
    radius, sigma = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][severity - 1]
    s = U.spatial_scale(x)
    angles = U.uniform((x.shape[0],), -45.0, 45.0, generator, torch.empty(0, dtype=torch.float64))
    return U.motion_blur(x, radius * s, sigma * s, angles)


ZOOM_BLUR_ENDS = (1.06, 1.11, 1.16, 1.21, 1.26)  # np.arange(1, end, 0.01) per severity


@CORRUPTIONS.register("zoom_blur")
def zoom_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Average of the image and its clipped zooms 1.00, 1.01, ... up to 1.06, 1.11, 1.15, 1.20, 1.25."""
    h, w = x.shape[-2:]
    return U.apply_pixel_operator(x, _zoom_blur_operator(h, w, severity, x.device, x.dtype))


@lru_cache(maxsize=32)
def _zoom_blur_operator(h: int, w: int, severity: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(x + sum_z clipped_zoom(x, z)) / (len(zs) + 1) as one sparse operator (the image is
    counted twice, as in the reference: once as x and once as the zoom by 1.00)."""
    f64, cpu = torch.float64, torch.device("cpu")
    zooms = [float(z) for z in np.arange(1, ZOOM_BLUR_ENDS[severity - 1], 0.01)]  # the reference's exact floats
    pairs = [(torch.eye(h, dtype=f64), torch.eye(w, dtype=f64))]
    pairs += [(U.clipped_zoom_matrix(h, z, cpu, f64), U.clipped_zoom_matrix(w, z, cpu, f64)) for z in zooms]
    return U.sparse_sum_of_separables(pairs, 1.0 / (len(zooms) + 1), device, dtype)
