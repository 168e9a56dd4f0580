"""Weather-like corruptions: snow, frost, fog and spatter (reference CIFAR tables).

Departures from the reference:

* frost: the reference blends crops of frost photographs (five of six are ever drawn) that
  are not part of this package. We keep its blend weights and synthesise each crop from the
  photographs' measured statistics (``FROST_PHOTOS``): one of five colours, plus grey
  crop-level, smooth and pixel-scale variation of the measured sizes. Downscaled by 5 as the
  reference does, the photographs are nearly flat colour with fine grain at 32 px; an earlier
  high-contrast procedural ice texture hid far more of the image than they do. No crystal
  structure is reproduced, so per-image numbers still differ from CIFAR-10-C's.
* snow: the snow layer is motion-blurred with ImageMagick's kernel (see ``_util.motion_blur``)
  instead of calling ImageMagick; the two uint8 round trips (PNG in and out) are kept. Its
  zoom is the reference's clipped zoom, as zoom blur's.
* fog: the diamond-square plasma fractal is the reference algorithm, batched (one fractal per
  example, map size = the next power of two >= the image side).
* spatter (water, severities 1-3): OpenCV's Canny edges + L2 distance transform are replaced
  by the liquid mask's inner boundary and a chessboard distance to it (iterated 3x3 dilation,
  capped at 20 as the reference; on bit masks for images up to 62 px wide); the histogram
  equalisation, emboss kernel and 3x3 box blurs are the reference's. Mud (severities 4-5)
  follows the reference exactly.
"""

from __future__ import annotations

import math
import sys
from functools import lru_cache

import torch
import torch.nn.functional as F

from robustbench_mm.corruptions import _util as U
from robustbench_mm.corruptions.registry import CORRUPTIONS


def _zoom(layer: torch.Tensor, z: float) -> torch.Tensor:
    """make_cifar_c's clipped_zoom (see ``_util.clipped_zoom_matrix``), each axis on its own."""
    if z == 1:  # clipped_zoom_matrix(n, 1) is the identity
        return layer
    h, w = layer.shape[-2:]
    dev, dt = layer.device, layer.dtype
    return U.separable(layer, U.clipped_zoom_matrix(h, z, dev, dt), U.clipped_zoom_matrix(w, z, dev, dt))


@CORRUPTIONS.register("snow")
def snow(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Thresholded, zoomed Gaussian noise streaked by a motion blur, added twice (also rotated
    180 degrees), over an image brightened towards 1.5 * grey + 0.5."""
    loc, scale, zoom, thr, mb_r, mb_s, keep = [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ][severity - 1]
    n, _, h, w = x.shape
    s = U.spatial_scale(x)
    layer = loc + scale * U.randn((n, 1, h, w), generator, x)
    layer = _zoom(layer, zoom)
    layer = U.zero_below(layer, thr)
    layer = torch.floor(layer.clamp(0, 1) * 255) / 255  # PIL 'L' image, as the reference
    angles = U.uniform((n,), -135.0, -45.0, generator, torch.empty(0, dtype=torch.float64))
    layer = torch.round(U.motion_blur(layer, mb_r * s, mb_s * s, angles) * 255) / 255
    bright = torch.maximum(x, (U.to_gray(x) * 1.5).add_(0.5)).mul_(1 - keep)  # to_gray may return x
    return (keep * x).add_(bright).add_(layer).add_(layer.flip(-2, -1))


@lru_cache(maxsize=64)
def _octave_matrix(n_out: int, top: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(n_out, sum(cells + 1)) side by side, for cells = 2, 4, .., ``top``: bilinear upsampling
    (align_corners=True, i.e. ``F.interpolate``'s) of each octave's grid to ``n_out`` pixels.
    Cached: treat as read-only."""
    blocks = []
    cells = 2
    while cells <= top:
        m = torch.zeros(n_out, cells + 1, dtype=torch.float64)
        src = torch.arange(n_out, dtype=torch.float64) * (cells / (n_out - 1) if n_out > 1 else 0.0)
        lo = src.floor().clamp(max=cells - 1)
        frac = src - lo
        rows = torch.arange(n_out)
        m.index_put_((rows, lo.long()), 1 - frac, accumulate=True)
        m.index_put_((rows, lo.long() + 1), frac, accumulate=True)
        blocks.append(m)
        cells *= 2
    return torch.cat(blocks, 1).to(device=device, dtype=dtype)


def _fractal_noise(n: int, k: int, h: int, w: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """``k`` fields per example, (n, k, h, w), each min-max scaled to [0, 1]: the sum of random
    grids with 2, 4, 8, .. up to ~side/2 cells (amplitude x0.6 per octave), upsampled bilinearly.

    All octaves go through one pair of matmuls: the grids sit on the diagonal of a block
    matrix G, and L G R^T with L, R the octaves' upsampling matrices side by side is their sum.
    """
    top, sizes, amps = max(2, min(h, w) // 2), [], []
    cells, amp = 2, 1.0
    while cells <= top:
        sizes.append(cells + 1)
        amps.append(amp)
        cells, amp = cells * 2, amp * 0.6
    total = sum(sizes)
    draws = U.rand((n, k, sum(s * s for s in sizes)), generator, like)
    g = torch.zeros(n, k, total, total, dtype=like.dtype, device=like.device)
    at = used = 0
    for size, amp in zip(sizes, amps, strict=True):
        g[..., at : at + size, at : at + size] = draws[..., used : used + size * size].view(n, k, size, size) * amp
        at, used = at + size, used + size * size
    rows = _octave_matrix(h, top, like.device, like.dtype)
    cols = _octave_matrix(w, top, like.device, like.dtype)
    out = rows @ g @ cols.T
    lo, hi = out.amin((2, 3), keepdim=True), out.amax((2, 3), keepdim=True)
    return (out - lo) / (hi - lo).clamp_min(1e-12)


# make_cifar_c's frost photographs frost1-5 (its randint(5) never draws frost6), resized by 0.2
# as it does, measured over 2,000 random 32x32 crops each: the mean colour; the grey level's
# crop-to-crop sd, its pixel-scale ("fine") sd from the mean |neighbour difference| (white-noise
# law: 4 sd / sqrt(pi) over both axes; the crops' Laplacian/gradient ratio is white noise's) and
# the remaining smooth in-crop sd; the channels' gains on the grey deviations (frost1 is blue).
# Only these statistics are shipped, not the photographs (their licence is not stated).
FROST_PHOTOS = (
    # (r, g, b), crop sd, fine sd, smooth sd, (gain r, g, b)
    ((0.300, 0.580, 0.645), 0.042, 0.037, 0.042, (1.36, 0.90, 0.74)),
    ((0.779, 0.797, 0.833), 0.035, 0.053, 0.047, (0.97, 1.00, 1.03)),
    ((0.777, 0.794, 0.831), 0.035, 0.053, 0.048, (0.97, 1.00, 1.03)),
    ((0.563, 0.621, 0.671), 0.039, 0.084, 0.058, (0.99, 0.99, 1.03)),
    ((0.406, 0.450, 0.496), 0.064, 0.103, 0.087, (1.02, 1.00, 0.98)),
)


def frost_texture(
    n: int, c: int, h: int, w: int, generator: torch.Generator, like: torch.Tensor, scale: float = 1.0
) -> torch.Tensor:
    """Stand-in for a random crop of a random frost photograph, values in [0, 1] (times ``scale``,
    which saves the caller a pass): per example one of the five photographs' colour, plus a grey
    deviation with its crop-to-crop, smooth (fractal) and pixel-scale parts, scaled per channel."""
    rows = [[*rgb, crop, fine, smooth, *gain] for rgb, crop, fine, smooth, gain in FROST_PHOTOS]
    table = torch.tensor(rows, dtype=like.dtype, device=like.device)
    pick = U.rand((n,), generator, table).mul_(len(rows)).floor_().long().clamp_(max=len(rows) - 1)
    p = table.index_select(0, pick).view(n, 9, 1, 1)
    smooth = _fractal_noise(n, 1, h, w, generator, like)
    sd = smooth.std((2, 3), keepdim=True, correction=0).clamp_min(1e-6)
    smooth = (smooth - smooth.mean((2, 3), keepdim=True)) / sd
    grey = U.randn((n, 1, h, w), generator, like).mul_(p[:, 4:5]).addcmul_(smooth, p[:, 5:6])
    grey.addcmul_(U.randn((n, 1, 1, 1), generator, like), p[:, 3:4])
    colour, gain = p[:, 0:3], p[:, 6:9]
    if c == 1:
        colour, gain = U.to_gray(colour), torch.ones_like(colour[:, :1])
    return (colour + gain * grey).clamp_(0, 1).mul_(scale)


@CORRUPTIONS.register("frost")
def frost(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """a * image + b * frost texture (reference weights; texture synthesised, see module doc)."""
    a, b = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][severity - 1]
    n, c, h, w = x.shape
    return frost_texture(n, c, h, w, generator, x, scale=b).add_(x, alpha=a)


def plasma_fractal(
    n: int, mapsize: int, wibbledecay: float, generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """Diamond-square height maps in [0, 1], (n, mapsize, mapsize), toroidal like the reference.

    As in the reference the random term is ``wibble * U(-wibble, wibble)``, so each level's
    amplitude shrinks by wibbledecay**2; only that ratio matters after the final min-max.
    """
    f64 = torch.empty(0, dtype=torch.float64, device=like.device)
    m = torch.zeros(n, mapsize, mapsize, dtype=torch.float64, device=like.device)
    step, wibble = mapsize, 100.0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        return total / 4 + wibble * U.uniform(tuple(total.shape), -wibble, wibble, generator, f64)

    while step >= 2:
        half = step // 2
        corners = m[:, 0::step, 0::step]
        sq = corners + corners.roll(-1, 1)
        m[:, half::step, half::step] = wibbled_mean(sq + sq.roll(-1, 2))
        dr, ul = m[:, half::step, half::step], m[:, 0::step, 0::step]
        m[:, 0::step, half::step] = wibbled_mean(dr + dr.roll(1, 1) + ul + ul.roll(-1, 2))
        m[:, half::step, 0::step] = wibbled_mean(dr + dr.roll(1, 2) + ul + ul.roll(-1, 1))
        step, wibble = half, wibble / wibbledecay
    m -= m.amin((1, 2), keepdim=True)
    return (m / m.amax((1, 2), keepdim=True).clamp_min(1e-12)).to(like.dtype)


@CORRUPTIONS.register("fog")
def fog(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Add a plasma-fractal haze, then rescale so the brightest pixel keeps its value."""
    strength, decay = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][severity - 1]
    n, _, h, w = x.shape
    size = 2 ** max(1, math.ceil(math.log2(max(h, w))))
    haze = plasma_fractal(n, size, decay, generator, x)[:, None, :h, :w]
    peak = x.amax((1, 2, 3), keepdim=True)
    return (x + strength * haze) * peak / (peak + strength)


def _equalize(v: torch.Tensor, levels: int) -> torch.Tensor:
    """cv2.equalizeHist per image for integer values in [0, levels), returned on 0..255."""
    n = v.shape[0]
    offset = torch.arange(n, dtype=v.dtype, device=v.device).view(n, 1) * levels
    idx = (v.reshape(n, -1) + offset).long().view(-1)  # pixel -> its image's histogram bin
    hist = torch.bincount(idx, minlength=n * levels).view(n, levels).to(torch.float64)
    cdf = hist.cumsum(1)
    first = (hist > 0).to(torch.uint8).argmax(1, keepdim=True)  # the smallest value present
    base = hist.gather(1, first)
    total = float(v[0].numel())
    lut = torch.round(255 * (cdf - base) / (total - base).clamp_min(1)).clamp(0, 255)
    lut = torch.where(base == total, torch.arange(levels, device=v.device, dtype=lut.dtype).expand_as(lut), lut)
    return lut.view(-1).index_select(0, idx).view(v.shape).to(v.dtype)


def _distance_to_edges(mask: torch.Tensor, cap: int = 20) -> torch.Tensor:
    """Chessboard distance of every pixel to the mask's inner boundary, capped at ``cap``.

    (N, 1, H, W) 0/1 floats in, distances as floats out. The boundary is the mask minus its
    3x3 erosion (outside the frame counts as liquid, so the frame is no edge); iteration k of
    a 3x3 dilation of the boundary reaches exactly the pixels at distance k. Images up to 62
    pixels wide run on bit masks (see :func:`_distance_to_edges_bits`), wider ones on max-pools;
    both give the same integers.
    """
    if mask.shape[-1] <= 62:
        return _distance_to_edges_bits(mask, cap)
    return _distance_to_edges_maxpool(mask, cap)


def _distance_to_edges_maxpool(mask: torch.Tensor, cap: int = 20) -> torch.Tensor:
    """:func:`_distance_to_edges` with up to ``cap`` iterated 3x3 max-pools (any width)."""
    inner = -F.max_pool2d(-mask, 3, 1, 1)  # erosion (outside counts as liquid: no frame edge)
    reached = mask - inner  # boundary pixels
    dist = torch.zeros_like(mask)
    for _ in range(cap):
        todo = 1 - reached
        if not bool(todo.any()):
            break
        dist += todo
        reached = F.max_pool2d(reached, 3, 1, 1)
    return dist


@lru_cache(maxsize=8)
def _byte_bits(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(256, 8): row b holds the bits of the byte b, lowest first. Cached: read-only."""
    b = torch.arange(256)
    return ((b.view(-1, 1) >> torch.arange(8)) & 1).to(device=device, dtype=dtype)


def _distance_to_edges_bits(mask: torch.Tensor, cap: int = 20) -> torch.Tensor:
    """:func:`_distance_to_edges` on bit masks: each image row is one int64 (W <= 62).

    A 3x3 dilation is then a few integer ops on N * H words (shift left and right, or, and the
    same with the rows above and below) instead of a max-pool over N * H * W floats, much
    faster for CIFAR. The capped distance is a count of the iterations k = 0 .. cap-1 at which
    a pixel is not yet reached; those "not reached" sets only shrink, so the count's binary
    digit i is the XOR of the sets of iterations k = 2**i - 1, 2 * 2**i - 1, ... (no adder;
    "not reached" = reached XOR all-ones, the all-ones XORed in once per odd count at the
    end). Rows are packed with float64 matmuls (exact below 2**53) and the digits unpacked
    one byte at a time through a 256-entry table.
    """
    n, _, h, w = mask.shape
    dev, f64 = mask.device, torch.float64
    full = (1 << w) - 1
    m = (mask[:, 0] > 0.5).to(f64)
    low = min(w, 31)  # two float64 matmuls of at most 31 bits each: exact integers
    words = (m[..., :low] @ torch.exp2(torch.arange(low, dtype=f64, device=dev))).long()
    if w > low:
        words |= (m[..., low:] @ torch.exp2(torch.arange(w - low, dtype=f64, device=dev))).long() << low

    def rows_or(a: torch.Tensor) -> torch.Tensor:  # a | the rows above and below
        out = a.clone()
        out[:, 1:] |= a[:, :-1]
        out[:, :-1] |= a[:, 1:]
        return out

    # erosion, outside = liquid: a pixel stays if its row neighbours (or the frame) do too
    e = words & (((words << 1) | 1) & full) & ((words >> 1) | (1 << (w - 1)))
    inner = e.clone()
    inner[:, 1:] &= e[:, :-1]
    inner[:, :-1] &= e[:, 1:]
    reached = words & ~inner
    everything = torch.full_like(words, full)
    digits = [torch.zeros_like(words) for _ in range(max(1, cap.bit_length()))]
    flips, touched = [0] * len(digits), [False] * len(digits)
    for k in range(cap):
        if torch.equal(reached, everything):
            break
        for i, d in enumerate(digits):
            if (k + 1) % (1 << i) == 0:  # digit i counts the iterations k = 2**i - 1 (mod 2**(i+1))
                d ^= reached
                flips[i] ^= 1
                touched[i] = True
        r = reached << 1
        r |= reached
        r |= reached >> 1
        r &= full
        reached = rows_or(r)
    nbytes = (w + 7) // 8
    table = _byte_bits(dev, mask.dtype)
    dist = torch.zeros(n * h, nbytes * 8, dtype=mask.dtype, device=dev)
    for i, d in enumerate(digits):
        if not touched[i]:
            continue
        if flips[i]:
            d ^= full
        raw = d.view(-1, 1).view(torch.uint8)  # the word's 8 bytes in memory order
        raw = raw.flip(-1) if sys.byteorder == "big" else raw
        idx = raw[:, :nbytes].long().reshape(-1)  # lowest byte first
        dist.add_(table.index_select(0, idx).view(n * h, nbytes * 8), alpha=1 << i)
    return dist[:, :w].reshape(n, 1, h, w)


def _emboss(v: torch.Tensor) -> torch.Tensor:
    """The reference's 3x3 emboss [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]] (cv2.filter2D, border
    REFLECT_101), written as v + (d x 1) + (1 x d) with d = (-1, 0, 1): two separable passes
    with integer taps instead of the three that the kernel's SVD needs, and exact on integers."""
    h, w = v.shape[-2:]
    dev, dt = v.device, v.dtype
    diff, ones = (-1.0, 0.0, 1.0), (1.0, 1.0, 1.0)
    rows_d, rows_1 = U.band_matrix(h, diff, "reflect101", dev, dt), U.band_matrix(h, ones, "reflect101", dev, dt)
    cols_d, cols_1 = U.band_matrix(w, diff, "reflect101", dev, dt), U.band_matrix(w, ones, "reflect101", dev, dt)
    return v + U.separable(v, rows_d, cols_1) + U.separable(v, rows_1, cols_d)


@CORRUPTIONS.register("spatter")
def spatter(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Water drops (severities 1-3, pale turquoise, embossed) or mud (4-5, brown, opaque)."""
    loc, scale, sigma, thr, intensity, mud = [
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    ][severity - 1]
    n, c, h, w = x.shape
    s = U.spatial_scale(x)
    liquid = U.gaussian_blur(loc + scale * U.randn((n, 1, h, w), generator, x), sigma * s)
    liquid = U.zero_below(liquid, thr)

    def colour(rgb: tuple[int, int, int]) -> torch.Tensor:
        col = torch.tensor(rgb, dtype=x.dtype, device=x.device).view(1, 3, 1, 1) / 255
        return col if c == 3 else U.to_gray(col)

    if mud:
        m = U.gaussian_blur((liquid > thr).to(x.dtype), intensity * s)
        m = U.zero_below(m, 0.8)
        return x * (1 - m) + colour((63, 42, 20)) * m

    box = torch.full((3, 3), 1 / 9, dtype=torch.float64)
    liquid_u8 = torch.floor(liquid.clamp(0, 1) * 255)
    dist = _distance_to_edges((liquid_u8 > 0).to(x.dtype))
    dist = torch.floor(U.filter2d(dist, box, "reflect101") + 1e-6)  # cv2.blur then astype(uint8)
    dist = _equalize(dist, 21)
    dist = torch.round(_emboss(dist)).clamp(0, 255)  # CV_8U saturates
    dist = U.filter2d(dist, box, "reflect101")
    m = liquid_u8 * dist
    peak = m.amax((2, 3), keepdim=True)
    m = m / peak.clamp_min(1e-12) * intensity  # m >= 0: m = 0 wherever peak = 0
    return x + m * colour((175, 238, 238))
