"""Noise corruptions: gaussian, shot, impulse and speckle (reference CIFAR tables).

No departures beyond drawing the random numbers from torch instead of numpy. Shot noise's
Poisson counts come from our own batched inverse-CDF sampler (:func:`poisson_counts`), exact
to float32 resolution, because ``torch.poisson`` made it the slowest corruption of the suite.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from robustbench_mm.corruptions import _util as U
from robustbench_mm.corruptions._util import rand, randn
from robustbench_mm.corruptions.registry import CORRUPTIONS


@CORRUPTIONS.register("gaussian_noise")
def gaussian_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Additive N(0, c^2) per pixel and channel."""
    c = [0.04, 0.06, 0.08, 0.09, 0.10][severity - 1]
    return randn(tuple(x.shape), generator, x).mul_(c).add_(x)  # x + c * z, in place


@CORRUPTIONS.register("shot_noise")
def shot_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Photon noise: Poisson(c * x) / c, so lower c (fewer photons) is noisier.

    Sampled by :func:`poisson_counts` (table-driven inverse CDF; ``torch.poisson`` costs about
    as much per pixel as the reference's per-image NumPy loop), not by ``torch.poisson``.
    """
    c = [500, 250, 100, 75, 50][severity - 1]
    return poisson_counts(x, c, generator) / c


_GRID = 255  # pixel values on the 8-bit grid v / 255 get their Poisson law from a table
_BINS = 1024  # guide-table bins per row (a power of two: U * _BINS is exact in float32)
_SNAP = 2.0**-15  # in units of 1/255: two float32 ulps of x near 1, see poisson_counts


@lru_cache(maxsize=16)
def _poisson_tables(c: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Inverse-CDF tables of Poisson(c * v / 255) for v = 0..255 (cached; treat as read-only).

    Row v holds the float32 CDF at k = 0 .. W-1 (entry v * W + k), W = 1 + the largest hi_v.
    The mass at and above hi_v = lambda + 8 sqrt(lambda) + 10 is below 1e-15 for every rate
    up to 500, so the CDF at hi_v and after is raised to 2: every search stops there. Returns ``cdf``
    (256 * W,) float32; ``guide`` (256 * (_BINS + 1),) int32, for j = 0.._BINS the flat
    position of the first k whose CDF exceeds j / _BINS (the answer for a U in bin j lies
    between entries j and j + 1; entry _BINS is hi_v); and W.
    """
    f64 = torch.float64
    lam = c * torch.arange(_GRID + 1, dtype=f64) / _GRID
    hi = (lam + 8 * lam.sqrt() + 10).ceil()
    width = int(hi.max()) + 1
    k = torch.arange(width, dtype=f64).expand(_GRID + 1, -1)
    pmf = torch.exp(torch.xlogy(k, lam.view(-1, 1)) - lam.view(-1, 1) - torch.lgamma(k + 1))
    cdf = pmf.cumsum(1).to(torch.float32)
    cdf[k >= hi.view(-1, 1)] = 2.0  # the last k of each row and the padding after it
    bins = (torch.arange(_BINS + 1, dtype=torch.float32) / _BINS).expand(_GRID + 1, -1).contiguous()
    start = torch.searchsorted(cdf, bins, right=True)  # first i with cdf[v, i] > j / _BINS
    start[:, -1] = hi.long()  # bin _BINS: the row's last k (cdf 2), an upper bound for the last bin
    rows = torch.arange(_GRID + 1).view(-1, 1)
    guide = (rows * width + start).to(torch.int32).reshape(-1)
    return cdf.reshape(-1).to(device), guide.to(device), width


def poisson_counts(x: torch.Tensor, c: float, generator: torch.Generator) -> torch.Tensor:
    """Poisson(c * x) counts for x in [0, 1] (clamped), as floats of x's dtype and shape.

    Exact inverse-CDF sampling, batched. Let r be the multiple of 1/255 at (see below) or
    just below x. Independent Poisson variables add up, so Poisson(c x) = Poisson(c r) +
    Poisson(c (x - r)):

    * Poisson(c r), one of 256 rates: a float32 uniform U is looked up in the tabulated CDF of
      its row (:func:`_poisson_tables`). A guide table of ``_BINS`` bins per row gives the
      first candidate k, which is the answer unless U >= CDF(k); the few draws (1-2%) in
      bins that hold several counts are bisected between the bin's bounds. Exact to the 2**-24
      resolution of U (each probability within about 6e-8, as for any float32 inverse-CDF
      sampler); the mass from 8 sqrt(rate) + 10 above the mean on (< 1e-15) goes to that count.
    * Poisson(c (x - r)): nothing to draw for pixels on the 8-bit grid, i.e. every image that
      came from uint8 data. "On the grid" means 255 x is within ``_SNAP`` = 2**-15 of an integer
      v (two float32 ulps of x near 1: ``v / 255`` and ``v * (1 / 255)`` both qualify); such a
      pixel gets the rate c v / 255 that its 8-bit value encodes, which differs from c x by at
      most c * 2**-23 (6e-5 photons at c = 500), float32's own rounding of the rate. Off-grid
      pixels (a residual rate below c / 255) draw the residual count by a sequential inverse
      CDF (:func:`_small_poisson`): one more uniform per pixel, and per-probability errors up
      to about 1e-7. Only batches that hold an off-grid pixel pay for it.

    The random stream differs from ``torch.poisson``'s; the law is Poisson's (tested). On CPU
    faster than ``torch.poisson``, most of all for 8-bit images (notes/measurements.md).
    """
    cdf, guide, width = _poisson_tables(float(c), x.device)
    flat = x.reshape(-1).clamp(0.0, 1.0)
    t = flat * _GRID
    row = (t + _SNAP).floor_().clamp_(max=_GRID)  # the 8-bit level at or just below x
    resid = t - row  # in [-_SNAP, 1 - _SNAP); above _SNAP: off the 8-bit grid
    u = U.rand(tuple(flat.shape), generator, torch.empty(0, dtype=torch.float32, device=flat.device))
    gi = (u * _BINS).floor_().add_(row, alpha=_BINS + 1).to(torch.int32)  # integers < 2**20: exact
    pos = guide.index_select(0, gi)
    step = u >= cdf.index_select(0, pos)
    pos += step
    todo = step.nonzero().view(-1)
    if todo.numel():  # bins holding several counts: bisect between this bin's bounds
        u_t, a = u.index_select(0, todo), pos.index_select(0, todo)
        b = guide.index_select(0, gi.index_select(0, todo) + 1)  # cdf[b] > u: b is a candidate
        while bool((a < b).any()):
            mid = torch.div(a + b, 2, rounding_mode="floor")
            above = cdf.index_select(0, mid) > u_t
            b = torch.where(above, mid, b)
            a = torch.where(above, a, mid + 1)
        pos.index_copy_(0, todo, a)
    counts = pos.to(x.dtype).sub_(row, alpha=width)
    if float(resid.max()) > _SNAP:
        resid = F.threshold(resid, _SNAP, 0.0).mul_(c / _GRID)  # on-grid pixels: rate 0
        counts += _small_poisson(resid, generator).to(counts.dtype)
    return counts.view(x.shape)


def _small_poisson(lam: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Poisson(lam) for small rates (here < 2, zeros allowed) by sequential inverse CDF.

    The first comparison (count 0 or more: U >= exp(-lam)) runs on every rate in float32,
    the rest in float64 on the draws still above the CDF, a fraction that shrinks
    geometrically. Each probability is within about 1e-7 of Poisson's.
    """
    u = U.rand(tuple(lam.shape), generator, torch.empty(0, dtype=torch.float32, device=lam.device))
    lam = lam.float()
    p = lam.neg().exp_()
    more = u >= p  # never for lam = 0
    k = more.to(torch.float32)
    todo = more.nonzero().view(-1)
    if not todo.numel():
        return k
    u, lam = u.index_select(0, todo).double(), lam.index_select(0, todo).double()
    p = p.index_select(0, todo).double()
    cdf = p.clone()
    for j in range(1, 200):  # the CDF passes 1 - 1e-16 long before; U <= 1 - 2**-24
        p = p * lam / j
        cdf += p
        keep = (u >= cdf).nonzero().view(-1)
        if not keep.numel():
            break
        todo, u, lam, p, cdf = (t.index_select(0, keep) for t in (todo, u, lam, p, cdf))
        k.index_add_(0, todo, torch.ones_like(todo, dtype=k.dtype))
    return k


@CORRUPTIONS.register("impulse_noise")
def impulse_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Salt and pepper on a fraction c of the values, half white, half black (skimage 's&p')."""
    c = [0.01, 0.02, 0.03, 0.05, 0.07][severity - 1]
    hit = rand(tuple(x.shape), generator, x) < c
    salt = rand(tuple(x.shape), generator, x) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


@CORRUPTIONS.register("speckle_noise")
def speckle_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Multiplicative noise x + x * N(0, c^2): dark pixels stay clean, bright ones get noisy."""
    c = [0.06, 0.10, 0.12, 0.16, 0.20][severity - 1]
    return randn(tuple(x.shape), generator, x).mul_(c).mul_(x).add_(x)  # x + x * (c * z), in place
