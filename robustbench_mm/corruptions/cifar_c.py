"""Load the published CIFAR-10-C / CIFAR-100-C arrays (Hendrycks & Dietterich, 2019).

Layout: ``<root>/CIFAR-10-C/<corruption>.npy`` of shape (50000, 32, 32, 3) uint8 holding the
10,000 test images at severity 1, then severity 2, ..., 5; ``labels.npy`` (50000,) alongside.
Arrays are memory-mapped, so only the requested severity's slice is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robustbench_mm.core.errors import UserError
from robustbench_mm.corruptions.common import CIFAR10_C, check_severity

_FOLDERS = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"missing CIFAR-C file: {path}")
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path}: {err}") from None


def load_cifar_c(root: str | Path, dataset: str, corruption: str, severity: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, H, W) float in [0, 1] and labels (N,) long for one corruption and severity."""
    if dataset not in _FOLDERS:
        raise UserError(f"unknown CIFAR-C dataset {dataset!r}; valid: {', '.join(_FOLDERS)}")
    if corruption not in CIFAR10_C:
        raise UserError(f"unknown corruption {corruption!r}; valid: {', '.join(CIFAR10_C)}")
    level = check_severity(severity)
    folder = Path(root) / _FOLDERS[dataset]
    if not folder.is_dir():
        raise UserError(f"missing CIFAR-C folder: {folder}")
    data_path, labels_path = folder / f"{corruption}.npy", folder / "labels.npy"
    data, labels = _load(data_path), _load(labels_path)
    if data.ndim != 4 or data.shape[-1] not in (1, 3) or data.shape[0] % 5 or data.dtype != np.uint8:
        raise UserError(
            f"{data_path} must be uint8 shaped (5 * N, H, W, 3) (severities stacked), "
            f"got {data.dtype} {tuple(data.shape)}"
        )
    if labels.shape != (data.shape[0],):
        raise UserError(
            f"{labels_path} must have shape ({data.shape[0]},) to match {data_path.name}, got {tuple(labels.shape)}"
        )
    per = data.shape[0] // 5
    part = slice((level - 1) * per, level * per)
    x = torch.from_numpy(np.array(data[part])).permute(0, 3, 1, 2).float().div_(255)  # copies the slice
    y = torch.from_numpy(np.asarray(labels[part]).astype(np.int64))
    return x.contiguous(), y
