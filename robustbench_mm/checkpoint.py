"""model.pt: a state dict plus the metadata needed to rebuild and validate the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .errors import UserError
from .models import create_model
from .storage import atomic_torch_save, safe_torch_load

MODEL_FORMAT = "robustbench_mm.model/1"
REQUIRED_META = ("arch", "dataset", "classes", "in_channels", "image_size", "mean", "std")


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies, so a channels_last CUDA model saves like a CPU one."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save_model(path: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    payload = {"format": MODEL_FORMAT, "version": __version__, "torch": torch.__version__.split("+")[0], **meta}
    payload["state_dict"] = cpu_state_dict(model)
    atomic_torch_save(payload, path)


def read_model_file(path: Path) -> dict[str, Any]:
    """Load and validate a model.pt (safely) without building the model."""
    payload = safe_torch_load(path)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise UserError(f"{path} is not a robustbench_mm model file (no {MODEL_FORMAT!r} marker)")
    missing = [key for key in (*REQUIRED_META, "state_dict") if key not in payload]
    if missing:
        raise UserError(f"{path} lacks metadata: {', '.join(missing)}")
    return payload


def load_model(
    path: Path,
    device: torch.device | str = "cpu",
    expect_arch: str | None = None,
    expect_dataset: str | None = None,
    expect_classes: list[str] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from a model.pt, checking its metadata before touching weights."""
    payload = read_model_file(Path(path))
    if expect_arch is not None and payload["arch"] != expect_arch:
        raise UserError(f"{path} holds a {payload['arch']} model, expected {expect_arch}")
    if expect_dataset is not None and payload["dataset"] != expect_dataset:
        raise UserError(f"{path} was trained on {payload['dataset']}, expected {expect_dataset}")
    if expect_classes is not None and list(payload["classes"]) != list(expect_classes):
        raise UserError(
            f"{path} was trained on {len(payload['classes'])} classes {payload['classes'][:5]}..., "
            f"the dataset has {len(expect_classes)} {list(expect_classes)[:5]}..."
        )
    model = create_model(
        payload["arch"],
        num_classes=len(payload["classes"]),
        in_channels=int(payload["in_channels"]),
        image_size=int(payload["image_size"]),
        mean=payload["mean"],
        std=payload["std"],
    )
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{path}: weights do not fit a {payload['arch']} model ({first[:160]})") from None
    model.eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.to(device), meta
