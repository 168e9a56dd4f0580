"""``load_model``: a trained model, ready to evaluate, from a run directory or a model.pt."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.inference import resolve_device
from robustbench_mm.core.untrusted import clip_path
from robustbench_mm.store.checkpoint import load_model as load_checkpoint
from robustbench_mm.store.rundir import RunDir


def load_model(path: str | Path, device: str = "cpu") -> nn.Module:
    """The model of run directory ``path`` (checked against its config.toml, as ``mmbench
    evaluate`` loads it) or of the model file ``path`` (a ``model.pt``), in eval mode on
    ``device`` (``auto``: CUDA when present). It takes images in [0, 1] and normalizes them itself,
    so it goes straight to ``evaluate(model, dataset)`` or an attack. One-line :class:`UserError`
    when ``path`` is neither or does not hold a model this package can rebuild."""
    where = Path(path)
    target = resolve_device(device)
    if where.is_dir():
        model, _ = RunDir(where).load_model(device=target)
    elif where.is_file():
        model, _ = load_checkpoint(where, target)
    else:
        raise UserError(f"no run directory or model file at {clip_path(where)}")
    return model.to(target).eval()
