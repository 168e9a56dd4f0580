"""One image decoder: any PIL mode and bit depth -> the 8-bit pixels the image means.

``Image.convert("L")`` clips 16-bit grey (``I;16``, ``I``) at 255, so a 16-bit folder became a
white square; alpha was dropped, so whatever colour a transparent pixel happened to store reached
the model. Here every mode is decoded by what its values mean:

* 16-bit grey (``I;16*``, and ``I`` holding 0..65535): scaled by 255/65535, rounded;
* 32-bit float grey (``F``): taken as [0, 1] intensities (values outside are refused: no scale is
  known for them);
* 16-bit colour: Pillow already hands it over as 8-bit RGB(A) (the high byte), scaled too;
* alpha (``LA``, ``La``, ``PA``, ``RGBA``, ``RGBa``, a palette with a transparent index): composited
  over black, i.e. each colour times its opacity, so an invisible pixel contributes nothing;
* palette, CMYK, YCbCr, LAB, HSV, bilevel: Pillow's conversion to L or RGB.

A grey image in a colour folder is repeated into three channels; a colour image in a folder
decoded as grey so far raises :class:`NeedsColour` (the caller decodes the folder again in RGB).
"""

from __future__ import annotations

import numpy as np

GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")  # the rest decode as RGB
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")


class NeedsColour(Exception):
    """A colour image turned up in a folder decoded as grey so far."""


class Undecodable(ValueError):
    """An image whose values have no known meaning as pixels (the message says why)."""


def kind_of(image) -> str:
    """ "L" for a grey image (any depth, alpha or not), "RGB" for everything else."""
    return "L" if image.mode in GREY_MODES else "RGB"


def pixels(image, mode: str) -> np.ndarray:
    """(C, H, W) uint8 pixels of a PIL image, in ``mode`` ("L": C = 1, or "RGB": C = 3)."""
    kind = kind_of(image)
    if mode == "L" and kind != "L":
        raise NeedsColour
    array = _grey(image) if kind == "L" else _colour(image)
    if mode == "RGB" and array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _grey(image) -> np.ndarray:
    mode = image.mode
    if mode == "I" or mode.startswith("I;16"):
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise Undecodable("32-bit integer pixels outside 0..65535 (no known scale)")
        return ((values * 255 + 32767) // 65535).astype(np.uint8)
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if values.size and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
            raise Undecodable("floating-point pixels outside [0, 1] (no known scale)")
        return np.rint(values * 255).astype(np.uint8)
    if mode in _ALPHA_MODES:
        return _over_black(np.asarray(image.convert("LA")))
    return np.asarray(image if mode == "L" else image.convert("L"))


def _colour(image) -> np.ndarray:
    mode = image.mode
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        return _over_black(np.asarray(image.convert("RGBA")))
    return np.asarray(image if mode == "RGB" else image.convert("RGB"))


def _over_black(array: np.ndarray) -> np.ndarray:
    """Colour channels times opacity (the last channel), rounded: the image composited over black."""
    colour, alpha = array[..., :-1].astype(np.uint32), array[..., -1:].astype(np.uint32)
    out = ((colour * alpha + 127) // 255).astype(np.uint8)
    return out[..., 0] if out.shape[-1] == 1 else out


def decode_file(path: str, mode: str) -> np.ndarray:
    """(C, H, W) uint8 pixels of the image file ``path`` in ``mode`` (see :func:`pixels`)."""
    from PIL import Image

    with Image.open(path) as image:
        return pixels(image, mode)


def file_kind(path: str) -> tuple[str, tuple[int, int]]:
    """("L" or "RGB", (height, width)) of an image file, from its header."""
    from PIL import Image

    with Image.open(path) as image:
        return kind_of(image), (image.height, image.width)
