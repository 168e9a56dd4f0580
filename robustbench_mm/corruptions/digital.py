"""Digital corruptions: brightness, contrast, saturate, pixelate, JPEG, elastic transform.

Departures from the reference:

* brightness / saturate are computed in closed form instead of a full RGB -> HSV -> RGB round
  trip; for fixed hue and saturation RGB is linear in V, and for fixed hue and value each
  channel is V - (V - c) * S'/S, so the results equal skimage's round trip to float precision
  (grey pixels get skimage's hue 0, i.e. turn reddish when saturate adds saturation).
  On 1-channel images brightness adds c to the value and saturate is the identity: a grey
  image has no saturation to change.
* pixelate uses PIL's BOX resampling weights but keeps floats (PIL rounds to uint8 after
  each pass).
* jpeg_compression rounds to uint8 and goes through libjpeg via torchvision's CPU encoder
  and decoder (one C call per image inside torchvision's list API; the only per-image loop
  in this package), so the result is the same on every device.
* elastic_transform samples with grid_sample (bilinear): the random affine with OpenCV's
  BORDER_REFLECT_101, the smooth displacement with scipy's 'reflect' (half-sample
  symmetric) border, as the reference.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import torch
import torch.nn.functional as F

from robustbench_mm.corruptions import _util as U
from robustbench_mm.corruptions.registry import CORRUPTIONS


@CORRUPTIONS.register("brightness")
def brightness(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """HSV value + c (clipped), hue and saturation kept."""
    c = [0.05, 0.1, 0.15, 0.2, 0.3][severity - 1]
    if x.shape[1] == 1:
        return x + c
    v = x.amax(1, keepdim=True)
    v_new = (v + c).clamp(0, 1)
    return torch.where(v > 0, x * (v_new / v.clamp_min(1e-12)), v_new)  # black: S = 0, so grey


@CORRUPTIONS.register("contrast")
def contrast(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Pull every channel towards its spatial mean by a factor c."""
    c = [0.75, 0.5, 0.4, 0.3, 0.15][severity - 1]
    mean = x.mean((2, 3), keepdim=True)
    return (x - mean) * c + mean


@CORRUPTIONS.register("saturate")
def saturate(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """HSV saturation S -> clip(S * a + b): severities 1-2 desaturate, 3-5 oversaturate."""
    a, b = [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)][severity - 1]
    if x.shape[1] == 1:
        return x
    v = x.amax(1, keepdim=True)
    s = (v - x.amin(1, keepdim=True)) / v.clamp_min(1e-12)
    s_new = (s * a + b).clamp(0, 1)
    coloured = v - (v - x) * (s_new / s.clamp_min(1e-12))
    # skimage gives grey pixels hue 0 (red): R = V, G = B = V * (1 - S')
    grey = torch.cat([v, v * (1 - s_new), v * (1 - s_new)], dim=1)
    return torch.where(s > 0, coloured, grey)


@lru_cache(maxsize=64)
def pil_box_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) weights of PIL's ``Image.resize(..., BOX)`` along one axis.

    PIL samples the box filter at input pixel centres (it does not weight partial coverage),
    scaled by max(n_in / n_out, 1), and normalises each row.
    """
    scale = n_in / n_out
    fscale = max(scale, 1.0)
    support = 0.5 * fscale
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for o in range(n_out):  # tiny: one row per output pixel of one axis
        center = (o + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        for i in range(lo, hi):
            t = (i - center + 0.5) / fscale
            m[o, i] = 1.0 if -0.5 < t <= 0.5 else 0.0
        m[o] /= m[o].sum()
    return m


@CORRUPTIONS.register("pixelate")
def pixelate(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """BOX-downsample each side to int(side * c) and BOX-upsample back (PIL, as the reference)."""
    c = [0.95, 0.9, 0.85, 0.75, 0.65][severity - 1]
    h, w = x.shape[-2:]
    return U.separable(x, _down_up(h, c, x.device, x.dtype), _down_up(w, c, x.device, x.dtype))


@lru_cache(maxsize=64)
def _down_up(n: int, c: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    small = max(1, int(n * c))
    return (pil_box_matrix(small, n) @ pil_box_matrix(n, small)).to(device=device, dtype=dtype)


def _jpeg_roundtrip(images: torch.Tensor, quality: int) -> torch.Tensor:
    """uint8 (N, C, H, W) on CPU -> JPEG bytes -> uint8, through libjpeg."""
    try:
        from torchvision.io import decode_jpeg, encode_jpeg
    except ImportError:  # pragma: no cover - torchvision is a dependency
        encode_jpeg = None
    if encode_jpeg is not None:
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its codecs for torchcodec
            warnings.simplefilter("ignore", DeprecationWarning)
            blobs = encode_jpeg(list(images), quality=quality)
            return torch.stack(decode_jpeg(blobs))
    import io  # pragma: no cover - fallback when torchvision lost its image codecs

    import numpy as np
    from PIL import Image

    out = []
    for img in images.permute(0, 2, 3, 1).numpy():
        buf = io.BytesIO()
        Image.fromarray(img.squeeze(-1) if img.shape[-1] == 1 else img).save(buf, "JPEG", quality=quality)
        dec = np.asarray(Image.open(buf))
        out.append(torch.from_numpy(dec.reshape(img.shape).copy()).permute(2, 0, 1))
    return torch.stack(out)


@CORRUPTIONS.register("jpeg_compression")
def jpeg_compression(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Encode/decode with libjpeg at the reference qualities."""
    quality = [80, 65, 58, 50, 40][severity - 1]
    u8 = x.clamp(0, 1).mul_(255).round_().to(torch.uint8).cpu()
    return _jpeg_roundtrip(u8, quality).to(device=x.device, dtype=x.dtype).div_(255)


@lru_cache(maxsize=32)
def _pixel_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(1, 2, h, w): pixel centres (x then y) in grid_sample's align_corners=False units.
    Cached: treat as read-only."""
    xs = (2 * torch.arange(w, dtype=torch.float64) + 1) / w - 1
    ys = (2 * torch.arange(h, dtype=torch.float64) + 1) / h - 1
    grid = torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)]).unsqueeze(0)
    return grid.to(device=device, dtype=dtype)


@CORRUPTIONS.register("elastic_transform")
def elastic_transform(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """A random affine (three anchor points jittered) followed by a smooth random displacement.

    The table is (alpha, sigma, affine jitter) in units of the image side, as in the reference.
    Both steps sample with grid_sample (bilinear), whose grids are built in normalised units
    directly: the affine as one (N, 2, 3) matrix applied to [x, y, 1] (composed with the
    pixel -> normalised scaling), the displacement as the pixel grid plus the scaled fields.
    """
    side = min(x.shape[-2:])
    alpha, sigma, jitter = [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)][
        severity - 1
    ]
    alpha, sigma, jitter = alpha * side, sigma * side, jitter * side
    n, _, h, w = x.shape
    f64 = torch.empty(0, dtype=torch.float64)

    # random affine: cv2.getAffineTransform(pts1, pts1 + U(-jitter, jitter)), then warpAffine
    # with OpenCV's BORDER_REFLECT_101 (reflection about border pixel centres: align_corners=True)
    cx, cy, sq = w // 2, h // 2, max(min(h, w) // 3, 1)  # anchors apart even on images under 3 px
    pts1 = torch.tensor([[cx + sq, cy + sq], [cx + sq, cy - sq], [cx - sq, cy - sq]], dtype=torch.float64)
    pts2 = pts1 + U.uniform((n, 3, 2), -jitter, jitter, generator, f64)
    src = torch.cat([pts1, torch.ones(3, 1, dtype=torch.float64)], dim=1)  # (3, 3)
    m = torch.linalg.solve(src, pts2).transpose(1, 2)  # (n, 2, 3): m @ [p; 1] = q
    a_inv = torch.linalg.inv(m[:, :, :2])  # warpAffine samples the source at m^-1 (q - t)
    to_norm = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], dtype=torch.float64).view(1, 2, 1)
    lin = a_inv * to_norm  # source pixel -> align_corners=True units: 2 p / (side - 1) - 1
    theta = torch.cat([lin, -(lin @ m[:, :, 2:]) - 1], dim=2).to(x).view(n, 2, 3, 1, 1)  # theta @ [x; y; 1]
    cols = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, 1, w)
    rows = torch.arange(h, dtype=x.dtype, device=x.device).view(1, 1, h, 1)
    # the grid is built as (n, 2, h, w), whose inner loops vectorise, and handed over permuted
    grid = torch.addcmul(torch.addcmul(theta[:, :, 2], cols, theta[:, :, 0]), rows, theta[:, :, 1])
    x = F.grid_sample(x, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="reflection", align_corners=True)

    if alpha == 0:
        return x
    # smooth displacement: scipy's map_coordinates, order 1, mode 'reflect' (half-sample
    # symmetric: reflection about the image edges, align_corners=False)
    fields = U.uniform((n, 2, h, w), -1.0, 1.0, generator, x)
    fields = U.gaussian_blur(fields, sigma, mode="symmetric", truncate=3.0)
    scale = torch.tensor([2 * alpha / w, 2 * alpha / h], dtype=x.dtype, device=x.device).view(1, 2, 1, 1)
    grid = torch.addcmul(_pixel_grid(h, w, x.device, x.dtype), fields, scale)  # field 0 moves columns, 1 rows
    return F.grid_sample(x, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="reflection", align_corners=False)
