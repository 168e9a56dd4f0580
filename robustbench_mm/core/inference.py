"""Running a model for evaluation: eval mode restored afterwards, parameters frozen, batched."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from robustbench_mm.core.errors import UserError


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and give it back in the mode it was found in.

    BatchNorm statistics never move during evaluation, and a caller in the middle of training
    gets its training-mode model back (torchattacks' habit).
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Parameters' ``requires_grad`` off for the duration (gradients w.r.t. the input only), and
    the caller's flags given back afterwards."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads (None: as they are), then restore the caller's.

    CPU reductions (convolutions, matrix products) split work by thread, and the summation
    order, hence the last bits of every result, follows: a run's numbers are a function of its
    settings only if the thread count is one of them.
    """
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; an explicit device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA GPU is available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise UserError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return device


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1000, to_float=None) -> torch.Tensor:
    """Logits for every image of ``x`` (on any device), computed in batches on the model's device.

    Returns float32 logits on the CPU. A model that outputs NaN or inf is refused: every
    number downstream would be meaningless.
    """
    device = model_device(model)
    outputs = []
    with evaluating(model):
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size].to(device, non_blocking=True)
            if to_float is not None:
                batch = to_float(batch)
            outputs.append(model(batch).float().cpu())
    logits = torch.cat(outputs) if outputs else torch.empty(0)
    if logits.numel() and not torch.isfinite(logits).all():
        raise UserError("the model produced NaN or infinite outputs; refusing to score it")
    return logits
