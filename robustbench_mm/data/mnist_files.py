"""Checks of MNIST-format (IDX) files before torchvision reads them.

torchvision's reader asserts on a bad header, fails a tensor ``view`` on a short body (a
RuntimeError that reads like "dataset not found") and never compares the image and label
counts, so a folder with 100 images and 60 labels would train on 60 of them. Reading the
headers and the file sizes first turns each of these into one line naming the file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from robustbench_mm.core.errors import UserError

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
SPLITS = ("train", "t10k")


def _header(path: Path, magic: int, dims: int) -> tuple[int, ...]:
    """The sizes in an IDX header, after checking the magic number and that the body is complete."""
    header_bytes = 4 * (dims + 1)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(header_bytes)
    if len(head) < header_bytes:
        raise UserError(f"{path} is truncated: {size} bytes, shorter than its {header_bytes}-byte IDX header")
    found, *shape = struct.unpack(f">{dims + 1}I", head)
    if found != magic:
        raise UserError(f"{path} is not an MNIST-format file (IDX magic number {found}, expected {magic})")
    expected = header_bytes + int(np.prod(shape, dtype=np.int64))
    if size < expected:
        raise UserError(
            f"{path} is truncated: its header announces {shape[0]} entries ({expected} bytes), "
            f"the file has {size} bytes"
        )
    if size > expected:
        raise UserError(f"{path} is damaged: {size - expected} bytes after the {shape[0]} entries its header announces")
    return tuple(shape)


def check_idx_folder(raw: Path, classes: int = 10) -> None:
    """Check the four MNIST-format files under ``raw`` (those present; torchvision reports missing ones)."""
    for split in SPLITS:
        images, labels = raw / f"{split}-images-idx3-ubyte", raw / f"{split}-labels-idx1-ubyte"
        if not (images.is_file() and labels.is_file()):
            continue
        n_images = _header(images, IMAGES_MAGIC, 3)[0]
        n_labels = _header(labels, LABELS_MAGIC, 1)[0]
        if n_images == 0:
            raise UserError(f"{images} holds no images")
        if n_images != n_labels:
            raise UserError(f"{images} holds {n_images} images but {labels} holds {n_labels} labels")
        values = np.fromfile(labels, dtype=np.uint8, offset=8)
        if values.size and int(values.max()) >= classes:
            raise UserError(f"{labels} holds label {int(values.max())}; labels must be 0..{classes - 1}")
