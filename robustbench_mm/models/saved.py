"""Saved models from elsewhere: ``mmbench evaluate --model FILE`` and ``--model robustbench:NAME``.

A FILE is one of

* a TorchScript file (``torch.jit.save``),
* a ``torch.export`` program (``torch.export.save``; export it with a dynamic batch dimension,
  ``dynamic_shapes={"x": {0: torch.export.Dim("batch")}}``, as evaluations use several batch sizes),
* a state dict (or a dict holding one under ``state_dict`` / ``model``) with ``--arch``: a
  registered architecture, ``torchvision:NAME`` or ``timm:NAME``, built for the dataset.

Like every model here, a saved model takes [0, 1] images and normalizes inside itself.
TorchScript and exported programs are frozen in eval mode: :class:`SavedModel` keeps
``train()``/``eval()`` from reaching them (an exported program cannot switch modes), so the
evaluation's "restore the mode it found" contract holds. RobustBench's zoo: :mod:`.robustbench_zoo`.
"""

from __future__ import annotations

import typing
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import clip, clip_path, plain
from robustbench_mm.models.registry import create_model, is_arch


class SavedModel(nn.Module):
    """A TorchScript module or an exported program, called as-is and kept in eval mode."""

    def __init__(self, inner: Any, kind: str) -> None:
        super().__init__()
        self.inner = inner
        self.kind = kind

    def train(self, mode: bool = True) -> SavedModel:
        self.training = mode  # the wrapped program stays as it was saved (eval)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


@dataclass
class LoadedModel:
    """A model ready to evaluate, how the report names it, and the file its weights came from."""

    model: nn.Module
    label: str
    arch: str
    source: Path


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()[:10_000]
    except (zipfile.BadZipFile, OSError):
        return []


def file_kind(path: Path) -> str:
    """``export``, ``torchscript`` or ``weights`` (anything else: a state dict, checked on loading)."""
    names = _zip_names(path)
    if any(name.split("/")[-1] == "archive_format" for name in names):
        return "export"
    if any("/code/" in name or name.endswith("constants.pkl") for name in names):
        return "torchscript"
    return "weights"


def _program(path: Path, kind: str) -> nn.Module:
    try:
        if kind == "export":
            inner = torch.export.load(str(path)).module()
        else:
            inner = torch.jit.load(str(path), map_location="cpu")
            inner.eval()
    except Exception as exc:  # noqa: BLE001 - any failure of a foreign file is one line
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot load {clip_path(path)} as {kind} ({plain(detail, 160)})") from None
    return SavedModel(inner, kind)


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)  # no code runs
    except Exception as exc:  # noqa: BLE001
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot read {clip_path(path)} as a state dict ({plain(detail, 160)})") from None
    for key in ("state_dict", "model"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise UserError(f"{clip_path(path)} holds no state dict (a dict of named tensors), got {clip(payload, 60)}")
    return payload


def _restore(model: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str) -> None:
    """Load into the model, or into the library network a HookedNet wraps (torchvision's own keys)."""
    targets: list[torch.nn.Module] = [model] + (
        [typing.cast(torch.nn.Module, model.net)] if hasattr(model, "net") else []
    )
    problem = ""
    for target in targets:
        try:
            target.load_state_dict(state)
            return
        except (RuntimeError, ValueError, KeyError) as exc:
            problem = problem or " ".join(str(exc).split())
    raise UserError(f"{clip_path(path)}: the weights do not fit a {plain(arch, 64)} model ({plain(problem, 200)})")


def load_file(path: str | Path, arch: str | None, data: Any) -> LoadedModel:
    """A saved model file for ``data`` (a ``DatasetSplits``: classes, channels, size, mean/std)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file not found: {clip_path(path)}")
    kind = file_kind(path)
    label = plain(path.stem, 60) or "model"
    if kind != "weights":
        if arch:
            raise UserError(f"{clip_path(path)} is a {kind} file: it carries its architecture, drop --arch")
        return LoadedModel(_program(path, kind), label, kind, path)
    if not arch:
        raise UserError(f"{clip_path(path)} is not a TorchScript or torch.export file; a state dict needs --arch")
    if not is_arch(arch):
        raise UserError(
            f"unknown architecture {clip(arch, 64)} for --arch (mmbench list; or torchvision:NAME, timm:NAME)"
        )
    model = create_model(arch, data.num_classes, data.in_channels, data.image_size, data.mean, data.std)
    _restore(model, _state_dict(path), path, arch)
    return LoadedModel(model.eval(), label, arch, path)
