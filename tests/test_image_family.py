"""The image family: every PIL mode x bit depth, and every size up to each architecture's minimum.

Each image is written to a file (PNG, or TIFF for the modes PNG cannot hold; 16-bit colour PNGs
are written byte for byte, Pillow cannot write them) and read back through the one decoder
(``data.decode``) and the folder reader. The expected pixels are computed here from what the
values mean (16-bit scaled by 255/65535, alpha composited over black, ...), not by the decoder's
code. Sizes: every registered architecture, grey and colour, from 1x1 to one past its minimum:
refused in one line naming the minimum, or a training step gives finite gradients.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from robustbench_mm.core.errors import UserError
from robustbench_mm.data.decode import decode_file
from robustbench_mm.data.imagefolder import read_image_folder
from robustbench_mm.models import ARCHS, Mix, create_model
from robustbench_mm.models.inputsize import check_input_size, min_size

RNG = np.random.default_rng(25)
GREY16 = np.array([[0, 1, 128, 257], [32767, 32896, 65279, 65535]], dtype=np.uint16)


def _scale16(values: np.ndarray) -> np.ndarray:
    return np.floor(values.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)


def _over_black(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.floor(colour.astype(np.float64) * alpha[..., None] / 255 + 0.5).astype(np.uint8)


def _png16(path: Path, array: np.ndarray, colour_type: int) -> None:
    """A 16-bit PNG (colour type 2 RGB, 6 RGBA) written by hand: (H, W, C) uint16."""
    h, w = array.shape[:2]
    raw = b"".join(b"\0" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def _cases():
    """(name, writer(path) -> None, file suffix, decode mode, expected (C, H, W) uint8)."""
    from PIL import Image

    grey = RNG.integers(0, 256, (4, 4), dtype=np.uint8)
    rgb = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (4, 4), dtype=np.uint8)
    bits = grey > 127
    floats = RNG.random((4, 4)).astype(np.float32)
    rgb16 = RNG.integers(0, 65536, (4, 4, 3), dtype=np.uint16)
    alpha16 = RNG.integers(0, 65536, (4, 4, 1), dtype=np.uint16)
    palette = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
    index = RNG.integers(0, 256, (4, 4), dtype=np.uint8)

    def pil(array):
        return lambda path: Image.fromarray(array).save(path)

    def save(image, **options):
        return lambda path: image.save(path, **options)

    p_image = Image.frombytes("P", (4, 4), index.tobytes())
    p_image.putpalette(palette.ravel().tolist())
    p_transparent = p_image.copy()
    p_transparent.info["transparency"] = int(index[0, 0])
    p_expected = palette[index]
    p_alpha = np.where(index == index[0, 0], 0, 255).astype(np.uint8)
    cmyk = np.zeros((2, 2, 4), dtype=np.uint8)
    cmyk[0, 1, 0] = 255  # cyan
    cmyk[1, 0, 3] = 255  # black
    cmyk[1, 1, 1:3] = 255  # magenta + yellow: red

    return [
        ("1", save(Image.fromarray(bits)), ".png", "L", np.where(bits, 255, 0).astype(np.uint8)[None]),
        ("L", pil(grey), ".png", "L", grey[None]),
        ("L in colour", pil(grey), ".png", "RGB", np.repeat(grey[None], 3, 0)),
        ("I;16 png", pil(GREY16), ".png", "L", _scale16(GREY16)[None]),
        ("I;16 tiff", pil(GREY16), ".tiff", "L", _scale16(GREY16)[None]),
        ("I;16B tiff", save(_i16b()), ".tiff", "L", _scale16(GREY16)[None]),
        ("I tiff", save(Image.fromarray(GREY16.astype(np.int32), "I")), ".tiff", "L", _scale16(GREY16)[None]),
        ("I;16 in colour", pil(GREY16), ".png", "RGB", np.repeat(_scale16(GREY16)[None], 3, 0)),
        ("F tiff", save(Image.fromarray(floats, "F")), ".tiff", "L", np.rint(floats * 255.0).astype(np.uint8)[None]),
        (
            "LA",
            save(Image.fromarray(np.dstack([grey, alpha]), "LA")),
            ".png",
            "L",
            _over_black(grey[..., None], alpha)[..., 0][None],
        ),
        ("RGB", pil(rgb), ".png", "RGB", rgb.transpose(2, 0, 1)),
        ("RGB bmp", pil(rgb), ".bmp", "RGB", rgb.transpose(2, 0, 1)),
        (
            "RGBA",
            save(Image.fromarray(np.dstack([rgb, alpha]), "RGBA")),
            ".png",
            "RGB",
            _over_black(rgb, alpha).transpose(2, 0, 1),
        ),
        ("P", save(p_image), ".png", "RGB", p_expected.transpose(2, 0, 1)),
        (
            "P transparent",
            save(p_transparent, transparency=int(index[0, 0])),
            ".png",
            "RGB",
            _over_black(p_expected, p_alpha).transpose(2, 0, 1),
        ),
        (
            "CMYK",
            save(Image.fromarray(cmyk, "CMYK")),
            ".tiff",
            "RGB",
            np.array([[[255, 255, 255], [0, 255, 255]], [[0, 0, 0], [255, 0, 0]]], dtype=np.uint8).transpose(2, 0, 1),
        ),
        (
            "RGB 16-bit",
            lambda path: _png16(path, rgb16, 2),
            ".png",
            "RGB",
            (rgb16 >> 8).astype(np.uint8).transpose(2, 0, 1),
        ),
        (
            "RGBA 16-bit",
            lambda path: _png16(path, np.concatenate([rgb16, alpha16], 2), 6),
            ".png",
            "RGB",
            _over_black((rgb16 >> 8).astype(np.uint8), (alpha16[..., 0] >> 8).astype(np.uint8)).transpose(2, 0, 1),
        ),
    ]


def _i16b():
    from PIL import Image

    return Image.frombytes("I;16B", (4, 2), GREY16.astype(">u2").tobytes())


@pytest.mark.parametrize("case", _cases(), ids=lambda case: case[0])
def test_every_mode_decodes_to_what_it_means(tmp_path, case):
    name, write, suffix, mode, expected = case
    path = tmp_path / f"image{suffix}"
    write(path)
    decoded = decode_file(str(path), mode)
    assert decoded.dtype == np.uint8 and decoded.shape == expected.shape, (name, decoded.shape)
    assert np.array_equal(decoded, expected), (name, decoded.tolist(), expected.tolist())


def test_sixteen_bit_colour_is_scaled_within_one_level_of_exact(tmp_path):
    values = np.array([[[0, 257, 65535], [32768, 1000, 40000]]], dtype=np.uint16)
    _png16(tmp_path / "c.png", values, 2)
    decoded = decode_file(str(tmp_path / "c.png"), "RGB").transpose(1, 2, 0).astype(int)
    assert np.abs(decoded - _scale16(values).astype(int)).max() <= 1 and decoded.max() == 255


@pytest.mark.parametrize(
    "mode,array,phrase",
    [
        ("I", np.array([[-5, 70000]], dtype=np.int32), "32-bit integer pixels outside 0..65535"),
        ("F", np.array([[0.5, 3.0]], dtype=np.float32), "floating-point pixels outside [0, 1]"),
        ("F", np.array([[0.5, np.nan]], dtype=np.float32), "floating-point pixels outside [0, 1]"),
    ],
)
def test_pixels_without_a_known_scale_are_refused_in_one_line(tmp_path, mode, array, phrase):
    from PIL import Image

    for split in ("train", "test"):
        for label in ("a", "b"):
            (tmp_path / split / label).mkdir(parents=True)
            Image.fromarray(array, mode).save(tmp_path / split / label / "x.tiff")
    with pytest.raises(UserError) as error:
        read_image_folder(tmp_path, cache=False, progress=False)
    assert phrase in str(error.value) and "\n" not in str(error.value) and "cannot decode image" in str(error.value)


def test_a_colour_image_after_grey_ones_turns_the_folder_colour(tmp_path):
    from PIL import Image

    grey = np.full((2, 2), 7, dtype=np.uint16) * 257  # 16-bit grey 7
    for split in ("train", "test"):
        for label in ("a", "b"):
            (tmp_path / split / label).mkdir(parents=True)
            Image.fromarray(grey).save(tmp_path / split / label / "0.png")
    Image.new("RGBA", (2, 2), (200, 100, 50, 51)).save(tmp_path / "test" / "b" / "1.png")
    splits = read_image_folder(tmp_path, cache=False, progress=False)
    assert splits["train"].images.shape == (2, 3, 2, 2) and set(splits["train"].images.ravel().tolist()) == {7}
    assert splits["test"].images[-1, :, 0, 0].tolist() == [40, 20, 10]  # 20% opaque over black


# ------------------------------------------------------------------------------ sizes


def _sizes():
    out = []
    for arch in ARCHS.names():
        for channels in (1, 3):
            smallest = min_size(arch, channels)
            assert smallest is not None, (arch, channels)
            out += [(arch, channels, size, smallest) for size in range(1, smallest + 2)]
    return out


@pytest.mark.parametrize("arch,channels,size,smallest", _sizes())
def test_every_size_up_to_the_minimum_is_refused_or_trains(arch, channels, size, smallest):
    if size < smallest:
        with pytest.raises(UserError) as error:
            check_input_size(arch, channels, size, 3)
        message = str(error.value)
        assert f"architecture {arch} needs images of at least {smallest}x{smallest}, got {size}x{size}" in message
        assert "\n" not in message
        return
    check_input_size(arch, channels, size, 3)
    torch.manual_seed(0)
    model = create_model(arch, 3, channels, size).train()
    x, y = torch.rand(4, channels, size, size), torch.tensor([0, 1, 2, 0])
    # one step mixing after the last stage: the forward runs every stage at this size, the
    # backward every gradient (the earlier mixing layers only change where the blend happens)
    layer = model.mix_layers[-1]
    loss = torch.nn.functional.cross_entropy(model(x, mix=Mix(layer, 0.7)), y)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads), (arch, size, layer)
