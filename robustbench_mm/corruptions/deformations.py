"""The Manifold Mixup paper's "novel deformations" (Verma et al. 2019, Table 4 and Table 9).

All four are one affine resampling of the batch: ``F.affine_grid`` + ``F.grid_sample``,
bilinear, ``align_corners=False`` (pixel *edges* span [-1, 1]), ``padding_mode="zeros"``.
Pixels whose source falls outside the image are black (0) rather than edge-replicated as in
Keras' default ``fill_mode="nearest"``: black cannot smuggle content back into the frame
and it is what ``torchvision``'s ``affine``/``rotate`` do by default. Partially outside
source positions blend bilinearly with black.

Geometry (image centre = origin, x right, y down, one unit = one pixel). Each matrix maps an
*output* position to the *input* position it samples, as Keras' ``apply_affine_transform``:

* ``rotate``, severity d degrees: angle a ~ U(-d, d) per example; positive a turns the
  content counter-clockwise on screen. Source = [[cos a, -sin a], [sin a, cos a]] @ out.
* ``shear``, severity d degrees: angle t ~ U(-d, d) per example. Source = [[1, -sin t],
  [0, cos t]] @ out, i.e. Keras' ``shear_range`` matrix turned to act horizontally. A content
  point (x, y) lands at (x + tan(t) * y, y / cos(t)): the textbook horizontal shear
  x' = x + tan(t) * y plus a vertical stretch of 1/cos(t). Unlike a pure tan shear this
  stays finite for every angle, which gives Table 9's shears a meaning: the paper's 28.6 and
  57.3 degrees are Keras' shear_range of 0.5 and 1.0 rad, and 114.6 / 143.2 degrees (2.0 and
  2.5 rad; we could not confirm Table 9's exact values from the paper text and use these)
  pass 90 degrees, where cos(t) < 0 flips the content upside down, as Keras did.
* ``zoom-in`` p (0 < p <= 100) and ``zoom-out`` p (p >= 100): deterministic, no random draw
  (the paper names one "rescale" per column, not a range). The field of view is p% of the
  original side: Source = (p/100) * out. "zoom-out 140" shrinks the picture so it spans
  1/1.4 of the side, centred, with black around it; "zoom-in 60" shows the centred crop of
  60% side length blown up to full size. In pixels:

  ==========  ============================================  ====================================
  test        32x32 image                                   8x8 image
  ==========  ============================================  ====================================
  zoom-out    140: picture spans 22.86 px, edges at 4.57    140: spans 5.71 px, edges at 1.14
              and 27.43; 200: exactly pixels 8..23, each     and 6.86; 200: pixels 2..5, each
              the mean of a 2x2 input block                  the mean of a 2x2 input block
  zoom-in     60: input region 6.4..25.6 (19.2 px) fills    60: input region 1.6..6.4 (4.8 px)
              the frame; 80: region 3.2..28.8 (25.6 px)      fills the frame; 80: 0.8..7.2
  ==========  ============================================  ====================================

  (Positions are continuous coordinates from the image's left/top edge; pixel i covers
  [i, i+1).)

``rotate_by``, ``shear_by`` and ``zoom_by`` take explicit per-example parameters so the
geometry can be tested without randomness; ``deform`` draws them from a generator.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.registry import Registry
from robustbench_mm.corruptions._util import check_images, chunk_size, deg2rad, finish, uniform, work_dtype

Deformation = Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]

DEFORMATIONS: Registry[Deformation] = Registry("deformation")


def _per_example(value: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """A scalar or (N,) parameter as an (N,) tensor on x's device, in the working dtype."""
    v = torch.as_tensor(value, dtype=work_dtype(x), device=x.device)
    return v.expand(x.shape[0]) if v.ndim == 0 else v.reshape(x.shape[0])


def warp(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Resample ``x`` with per-example 2x2 matrices (centred pixel units, output -> input).

    ``affine_grid`` works in normalised coordinates where x and y each span [-1, 1]; for a
    non-square image one normalised unit is W/2 px horizontally and H/2 px vertically, so
    the pixel-space matrix is conjugated by diag(W/2, H/2) to keep angles true.
    """
    check_images(x)
    n, _, h, w = x.shape
    if n == 0:
        return x.clone()
    dt = work_dtype(x)
    s = torch.tensor([w / 2.0, h / 2.0], dtype=dt, device=x.device)
    a = matrix.to(device=x.device, dtype=dt) * s.view(1, 1, 2) / s.view(1, 2, 1)  # S^-1 @ A @ S
    theta = torch.cat([a, torch.zeros(n, 2, 1, dtype=dt, device=x.device)], dim=2)
    parts = []
    for xs, ts in zip(x.split(chunk_size(x)), theta.split(chunk_size(x)), strict=True):  # cache-sized on CPU
        grid = F.affine_grid(ts, list(xs.shape), align_corners=False)
        parts.append(F.grid_sample(xs.to(dt), grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    return finish(torch.cat(parts) if len(parts) > 1 else parts[0], x)


def rotate_by(x: torch.Tensor, degrees: torch.Tensor | float) -> torch.Tensor:
    """Rotate each image counter-clockwise (on screen) by its own angle in degrees."""
    a = deg2rad(_per_example(degrees, x))
    c, s = torch.cos(a), torch.sin(a)
    return warp(x, torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], 1))


def shear_by(x: torch.Tensor, degrees: torch.Tensor | float) -> torch.Tensor:
    """Keras-style horizontal shear: a content point (x, y) goes to (x + tan t * y, y / cos t)."""
    t = deg2rad(_per_example(degrees, x))
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    rows = [torch.stack([one, -torch.sin(t)], -1), torch.stack([zero, torch.cos(t)], -1)]
    return warp(x, torch.stack(rows, 1))


def zoom_by(x: torch.Tensor, field_of_view: torch.Tensor | float) -> torch.Tensor:
    """Centred zoom; ``field_of_view`` = visible side / original side (0.6 zooms in, 1.4 out)."""
    f = _per_example(field_of_view, x)
    zero = torch.zeros_like(f)
    return warp(x, torch.stack([torch.stack([f, zero], -1), torch.stack([zero, f], -1)], 1))


def _angles(x: torch.Tensor, max_degrees: float, generator: torch.Generator) -> torch.Tensor:
    """One angle ~ U(-max, max) per example, drawn from ``generator``."""
    like = torch.empty(0, dtype=work_dtype(x), device=x.device)
    return uniform((x.shape[0],), -max_degrees, max_degrees, generator, like)


@DEFORMATIONS.register("rotate")
def rotate(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Angle ~ U(-severity, severity) degrees, one per example."""
    return rotate_by(x, _angles(x, severity, generator))


@DEFORMATIONS.register("shear")
def shear(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Shear angle ~ U(-severity, severity) degrees, one per example (see :func:`shear_by`)."""
    return shear_by(x, _angles(x, severity, generator))


@DEFORMATIONS.register("zoom-in")
def zoom_in(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Field of view = severity% of the side (0 < severity <= 100); deterministic."""
    if not 0 < severity <= 100:
        raise UserError(f"zoom-in severity is the visible percentage, 0 < p <= 100; got {severity}")
    return zoom_by(x, severity / 100.0)


@DEFORMATIONS.register("zoom-out")
def zoom_out(x: torch.Tensor, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Field of view = severity% of the side (severity >= 100); deterministic."""
    if severity < 100:
        raise UserError(f"zoom-out severity is the field of view in percent, p >= 100; got {severity}")
    return zoom_by(x, severity / 100.0)


def deform(x: torch.Tensor, name: str, severity: float, generator: torch.Generator) -> torch.Tensor:
    """Apply the registered deformation ``name`` at ``severity`` (degrees or percent)."""
    fn = DEFORMATIONS.get(name)
    if not isinstance(severity, (int, float)) or isinstance(severity, bool) or severity < 0:
        raise UserError(f"deformation severity must be a number >= 0, got {severity!r}")
    check_images(x)
    return fn(x, float(severity), generator)


# What a deformation's severity means, for axis labels (the plots ask here, never guess).
SEVERITY_UNITS: dict[str, str] = {
    "rotate": "max rotation angle (degrees)",
    "shear": "max shear angle (degrees)",
    "zoom-in": "field of view (% of the image side)",
    "zoom-out": "field of view (% of the image side)",
}

# Table 4 (PreActResNet34, CIFAR-100) and the larger settings of Table 9.
_PAPER = [
    ("rotate", 20.0),
    ("rotate", 40.0),
    ("shear", 28.6),
    ("shear", 57.3),
    ("zoom-in", 60.0),
    ("zoom-in", 80.0),
    ("zoom-out", 120.0),
    ("zoom-out", 140.0),
]
_TABLE9 = [
    ("rotate", 60.0),
    ("rotate", 80.0),
    ("shear", 114.6),
    ("shear", 143.2),
    ("zoom-in", 20.0),
    ("zoom-in", 40.0),
    ("zoom-out", 160.0),
    ("zoom-out", 180.0),
]
_ORDER = {"rotate": 0, "shear": 1, "zoom-in": 2, "zoom-out": 3}
_GRIDS: dict[str, list[tuple[str, float]]] = {
    "paper": _PAPER,
    "paper-full": sorted(_PAPER + _TABLE9, key=lambda t: (_ORDER[t[0]], t[1])),
}


def deformation_grid(grid_name: str) -> list[tuple[str, float]]:
    """The (test, severity) pairs of a named grid: ``paper`` (Table 4) or ``paper-full`` (+ Table 9)."""
    try:
        return list(_GRIDS[grid_name])
    except KeyError:
        raise UserError(f"unknown deformation grid {grid_name!r}; valid: {', '.join(sorted(_GRIDS))}") from None
