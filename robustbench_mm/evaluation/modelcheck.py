"""What ``evaluate(model, dataset)`` checks about its arguments before any work: one line each.

The Python API is an edge like the command line: a lambda, None, a path to model.pt, a model that
returns a tuple or holds float64 weights, a dataset given as a number all failed deep inside
torch (AttributeError, "expected scalar type Double"). Each is named here instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_mm.core.errors import UserError

_TAKES = "evaluate(model, dataset) takes a torch.nn.Module that maps [0, 1] NCHW float32 images to logits"


def check_arguments(model: Any, dataset: Any, splits_type: type) -> None:
    """The model is an ``nn.Module`` of float32 weights; the dataset a name or ``splits_type``."""
    if isinstance(model, (str, Path)):
        raise UserError(f"{_TAKES}, got a path; for a run directory use evaluate_run(RUN_DIR)")
    if not isinstance(model, nn.Module):
        what = "a function" if callable(model) else type(model).__name__
        hint = "; wrap it in an nn.Module" if callable(model) else ""
        raise UserError(f"{_TAKES}, got {what}{hint}")
    kinds = {t.dtype for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()}
    if kinds - {torch.float32}:
        shown = ", ".join(sorted(str(k).replace("torch.", "") for k in kinds - {torch.float32}))
        raise UserError(f"the model holds {shown} weights; evaluate feeds float32 images: call model.float() first")
    if not isinstance(dataset, (str, splits_type)):
        raise UserError(
            f"dataset must be a name ('digits', 'cifar10', 'imagefolder:<path>') or a loaded DatasetSplits, "
            f"got {type(dataset).__name__}"
        )


def check_output(output: Any) -> torch.Tensor:
    """The model's output on a batch: a logits tensor, or one line saying what came instead."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        raise UserError(
            f"the model returns a {type(output).__name__} of {len(output)}; evaluate needs the logits "
            "tensor alone: wrap the model so that it returns them"
        )
    raise UserError(f"the model returns {type(output).__name__}; evaluate needs a logits tensor (N, classes)")
