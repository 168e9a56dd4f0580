"""Helpers shared by the deformations and the common corruptions.

Randomness: every draw goes through the caller's ``torch.Generator`` and happens on the
generator's own device, then moves to the images' device. That keeps one rule for every
case (a CPU generator driving CUDA images included) and makes "same seed => same output"
hold no matter which device the images live on.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from robustbench_mm.core.errors import UserError


def check_images(x: torch.Tensor) -> None:
    """Refuse anything that is not a float NCHW batch with 1 or 3 channels."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UserError(f"images must be a float tensor shaped (N, C, H, W) in [0, 1], got {shape}")
    if x.shape[1] not in (1, 3):
        raise UserError(f"images must have 1 or 3 channels, got {x.shape[1]}")


# On CPU, big batches run in chunks of about 2 MB (float32): every op makes several passes over
# its input, and passes that stay in cache are much faster than passes over one 120 MB batch
# (notes/measurements.md). A GPU gets the batch whole.
_CPU_CHUNK_VALUES = 1 << 19


def chunk_size(x: torch.Tensor) -> int:
    """How many images of ``x`` to process at once (all of them on an accelerator)."""
    if x.device.type != "cpu":
        return max(1, x.shape[0])
    return max(1, _CPU_CHUNK_VALUES // max(1, x[0].numel()))


def work_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; half/bfloat16 are computed in float32 (CPU convs need it)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def finish(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and give back the caller's dtype (the contract of every op here)."""
    return out.clamp_(0.0, 1.0).to(like.dtype)


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}


def empty_cpu(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor; big ones are allocated by NumPy.

    Why: a fresh 120 MB output (10,000 CIFAR images) costs about 30k page faults when
    PyTorch allocates it (glibc ``mmap``, 4 KiB pages), as much time as a whole cheap
    corruption. NumPy asks the kernel for transparent huge pages on big allocations
    (``madvise``), which makes the first touch much cheaper (notes/measurements.md). The
    tensor shares NumPy's memory, so it cannot be ``resize_``-d in place; nothing here needs that.
    """
    numel = math.prod(shape)
    if dtype in _NUMPY_DTYPES and numel * torch.empty(0, dtype=dtype).element_size() >= 1 << 22:
        return torch.from_numpy(np.empty(shape, dtype=_NUMPY_DTYPES[dtype]))
    return torch.empty(shape, dtype=dtype)


def run_chunked(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn`` on ``x`` (in its work dtype) chunk by chunk, clamped to [0, 1], in ``x``'s dtype.

    On CPU each chunk's result is clamped while still in cache and written straight into one
    preallocated output, so no chunk outlives its loop step (the allocator then recycles the
    same few megabytes instead of faulting in fresh pages) and there is no final ``cat``.
    ``fn`` may return its input unchanged: the clamp never writes into the caller's tensor.
    """
    wd = work_dtype(x)
    step = chunk_size(x)
    if x.shape[0] <= step:
        return fn(x.to(wd)).clamp(0.0, 1.0).to(x.dtype)
    out = empty_cpu(tuple(x.shape), x.dtype)
    for start in range(0, x.shape[0], step):
        y = fn(x[start : start + step].to(wd))
        dst = out[start : start + step]
        if y.dtype == out.dtype:
            torch.clamp(y, 0.0, 1.0, out=dst)
        else:
            dst.copy_(y.clamp(0.0, 1.0))
    return out


def zero_below(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """``torch.where(x < threshold, 0, x)`` without ``torch.where``.

    On CPU ``where`` branches per element and is several times slower than a vectorised op when the
    condition looks random (a thresholded noise field); ``F.threshold`` keeps x > t, so t is
    the largest value of x's dtype below ``threshold``: the same result, bit for bit.
    """
    t = torch.tensor(threshold, dtype=x.dtype)
    below = torch.nextafter(t, torch.tensor(-math.inf, dtype=x.dtype))
    return F.threshold(x, float(below), 0.0)


def rand(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """U[0, 1) drawn from ``generator`` on its own device, returned on ``like``'s device/dtype."""
    u = torch.rand(shape, generator=generator, device=generator.device)
    return u.to(device=like.device, dtype=like.dtype)


def randn(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """N(0, 1) drawn like :func:`rand`."""
    z = torch.randn(shape, generator=generator, device=generator.device)
    return z.to(device=like.device, dtype=like.dtype)


def uniform(
    shape: tuple[int, ...], low: float, high: float, generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    return low + (high - low) * rand(shape, generator, like)


def fold_index(i: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Map possibly out-of-range indices of a length-``n`` axis back inside it.

    ``replicate`` = skimage/scipy 'nearest'; ``reflect101`` = OpenCV's default border
    (d c b | a b c d); ``symmetric`` = scipy 'reflect' (b a | a b c d). Working on index maps
    lets a filter reach further than the axis is long (a big blur on an 8x8 digit).
    """
    if mode == "replicate" or n == 1:
        return i.clamp(0, n - 1)
    if mode == "reflect101":
        i = i.remainder(2 * n - 2)
        return torch.where(i >= n, 2 * n - 2 - i, i)
    if mode == "symmetric":
        i = i.remainder(2 * n)
        return torch.where(i >= n, 2 * n - 1 - i, i)
    raise ValueError(f"unknown border mode {mode!r}")


@lru_cache(maxsize=512)
def band_matrix(n: int, taps: tuple[float, ...], mode: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The (n, n) matrix of a 1-D 'same' correlation with odd-length ``taps``, border folded in.

    Why matrices: on CPU, PyTorch's depthwise/one-channel ``conv2d`` is much slower than a
    BLAS matmul for these tiny images (notes/measurements.md), and a matrix also carries the border rule for free.
    ``(M @ x)`` filters along H, ``(x @ M.T)`` along W. Cached: treat the result as read-only.
    """
    r = len(taps) // 2
    src = torch.arange(n, device=device).view(n, 1) + torch.arange(-r, r + 1, device=device).view(1, -1)
    m = torch.zeros(n, n, dtype=dtype, device=device)
    rows = torch.arange(n, device=device).view(n, 1).expand_as(src)
    m.index_put_(
        (rows.reshape(-1), fold_index(src, n, mode).reshape(-1)),
        torch.tensor(taps, dtype=dtype, device=device).expand_as(src).reshape(-1),
        accumulate=True,
    )
    return m


def separable(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """rows @ x @ cols.T for every image and channel: a separable linear filter/resampling."""
    return rows.to(x) @ x @ cols.to(x).T


def filter2d(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """'Same' 2-D correlation with one odd square kernel, as a short sum of separable passes.

    The kernel's SVD splits it into rank-1 (separable) terms; the small blur and emboss
    kernels used here have rank 1-3, so this is a handful of matmuls (see band_matrix).
    """
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    for a, b in _rank1_terms(tuple(map(tuple, kernel.tolist()))):
        out += separable(x, band_matrix(h, a, mode, x.device, x.dtype), band_matrix(w, b, mode, x.device, x.dtype))
    return out


@lru_cache(maxsize=64)
def _rank1_terms(kernel: tuple[tuple[float, ...], ...]) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    """(column taps, row taps) pairs whose outer products sum to ``kernel`` (via its SVD)."""
    u, s, vh = torch.linalg.svd(torch.tensor(kernel, dtype=torch.float64))
    keep = [k for k in range(s.numel()) if s[k] > 1e-9 * s[0]]
    return [(tuple((u[:, k] * s[k]).tolist()), tuple(vh[k].tolist())) for k in keep]


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """scipy.ndimage's Gaussian: radius int(truncate*sigma + 0.5), normalised weights."""
    r = int(truncate * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float, mode: str = "replicate", truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur (skimage.filters.gaussian defaults: 'nearest' border, 4 sigma)."""
    if sigma <= 0:
        return x
    k = tuple(gaussian_kernel1d(sigma, truncate).tolist())
    if len(k) == 1:  # radius 0 (sigma < 1/8 at truncate 4): the identity
        return x
    h, w = x.shape[-2:]
    return separable(x, band_matrix(h, k, mode, x.device, x.dtype), band_matrix(w, k, mode, x.device, x.dtype))


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma (OpenCV's RGB2GRAY), keeps a channel axis; 1-channel input is returned."""
    if x.shape[1] == 1:
        return x
    wts = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * wts).sum(1, keepdim=True)


def spatial_scale(x: torch.Tensor) -> float:
    """How much bigger than CIFAR's 32 px the shorter side is (the reference tables are for 32x32)."""
    return min(x.shape[-2:]) / 32.0


def deg2rad(d: torch.Tensor) -> torch.Tensor:
    return d * (math.pi / 180.0)


@lru_cache(maxsize=512)
def clipped_zoom_matrix(n: int, zoom: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(n, n) matrix of make_cifar_c's ``clipped_zoom`` along one axis (``M @ x @ M.T`` zooms).

    The reference crops ``ch = ceil(n / zoom)`` central pixels (from ``(n - ch) // 2``), resizes
    them with ``scipy.ndimage.zoom(order=1)`` to ``round(ch * zoom)`` pixels, which maps the
    corners onto each other (output o samples crop position o * (ch - 1) / (out - 1)), and keeps
    the ``n`` pixels from ``(out - n) // 2``. So the magnification is quantised and the content
    shifted by up to about a pixel towards the bottom-right; that shift is much of the blur.
    Cached: treat the result as read-only.
    """
    ch = math.ceil(n / zoom)
    top = (n - ch) // 2
    out = round(ch * zoom)  # scipy's output length
    trim = (out - n) // 2
    step = (ch - 1) / (out - 1) if out > 1 else 0.0  # scipy's per-axis factor, computed as it does
    p = (torch.arange(n, dtype=torch.float64) + trim) * step
    lo = torch.floor(p).clamp(0, max(ch - 2, 0))
    frac = p - lo
    rows = torch.arange(n).repeat(2)
    cols = (torch.cat([lo, lo + 1]).long().clamp(max=ch - 1) + top).clamp(0, n - 1)
    m = torch.zeros(n, n, dtype=torch.float64)
    m.index_put_((rows, cols), torch.cat([1 - frac, frac]), accumulate=True)
    return m.to(device=device, dtype=dtype)


def motion_blur(x: torch.Tensor, radius: float, sigma: float, degrees: torch.Tensor) -> torch.Tensor:
    """ImageMagick's ``-motion-blur radius x sigma + angle``, one angle per example.

    ImageMagick averages ``width = 2 * ceil(radius) + 1`` samples taken at integer offsets
    round(i * (cos a, sin a)), i = 0..width-1, weighted exp(-i^2 / 2 sigma^2): a one-sided
    streak, edge pixels repeated. Taps carrying under 0.1% of the weight are dropped.

    All taps' clamped row and column offsets are computed at once; per tap, one broadcast add
    builds the (int32) flat index and one ``index_select`` reads, faster than int64 ``gather``
    (a padded copy of the image made the reads slower).
    """
    width = 2 * math.ceil(radius) + 1
    i = torch.arange(width, dtype=torch.float64)
    w = torch.exp(-(i**2) / (2 * sigma**2))
    w /= w.sum()
    keep = int((torch.cumsum(w, 0) < 0.999).sum()) + 1
    w = w[:keep] / w[:keep].sum()
    a = deg2rad(degrees.to(torch.float64)).view(-1, 1)
    ks = torch.arange(keep, dtype=torch.float64).view(1, -1)
    dx = torch.ceil(ks * torch.cos(a) - 0.5).long()  # (N, taps)
    dy = torch.ceil(ks * torch.sin(a) - 0.5).long()
    out = x * float(w[0])  # tap 0 is the image itself
    n, c, h, wd = x.shape
    itype = torch.int32 if x.numel() < 2**31 else torch.int64  # index_select takes either
    rows = (torch.arange(h).view(1, 1, h) + dy.view(n, keep, 1)).clamp_(0, h - 1).mul_(wd)
    cols = (torch.arange(wd).view(1, 1, wd) + dx.view(n, keep, 1)).clamp_(0, wd - 1)
    rows = rows.to(device=x.device, dtype=itype)
    cols = cols.to(device=x.device, dtype=itype)
    base = (torch.arange(n * c, device=x.device, dtype=itype) * (h * wd)).view(n, c, 1, 1)
    flat = x.reshape(-1)
    for k in range(1, keep):
        idx = (base + rows[:, k].view(n, 1, h, 1)) + cols[:, k].view(n, 1, 1, wd)  # (n, c, h, w)
        out.add_(flat.index_select(0, idx.view(-1)).view(n, c, h, wd), alpha=float(w[k]))
    return out


def sparse_sum_of_separables(
    pairs: list[tuple[torch.Tensor, torch.Tensor]], scale: float, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """scale * sum_k kron(rows_k, cols_k) as a sparse CSR (H*W, H*W) operator on flattened images.

    A sum of many separable resamplings (zoom blur: up to 26 zooms) is not separable, but it is
    very sparse: about six taps per pixel for CIFAR. One sparse product then replaces 2 * 26
    dense matmuls (much faster on CPU) and never builds an (H*W)^2 dense matrix.
    """
    h, w = pairs[0][0].shape[0], pairs[0][1].shape[0]
    rows, cols, vals = [], [], []
    for mh, mw in pairs:
        r1, c1 = mh.nonzero(as_tuple=True)
        r2, c2 = mw.nonzero(as_tuple=True)
        rows.append((r1.view(-1, 1) * w + r2.view(1, -1)).reshape(-1))
        cols.append((c1.view(-1, 1) * w + c2.view(1, -1)).reshape(-1))
        vals.append((mh[r1, c1].view(-1, 1) * mw[r2, c2].view(1, -1)).reshape(-1) * scale)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": CSR @ dense beats COO's
        warnings.simplefilter("ignore", UserWarning)
        coo = torch.sparse_coo_tensor(
            torch.stack([torch.cat(rows), torch.cat(cols)]), torch.cat(vals), (h * w, h * w), check_invariants=True
        )  # built once, cached
        return coo.coalesce().to_sparse_csr().to(device=device, dtype=dtype)


def apply_pixel_operator(x: torch.Tensor, op: torch.Tensor) -> torch.Tensor:
    """Apply an (H*W, H*W) operator to every image and channel of x."""
    n, c, h, w = x.shape
    return (op @ x.reshape(n * c, h * w).T).T.reshape(n, c, h, w)
