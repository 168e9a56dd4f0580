"""The numeric precision an attack runs in, and its batch size from free CUDA memory."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from robustbench_mm.core.errors import UserError


def _is_channels_last(model: nn.Module) -> bool:
    for p in model.parameters():
        if p.dim() == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


@contextlib.contextmanager
def precision_mode(model: nn.Module, device: torch.device, precision: str) -> Iterator[tuple[str, Callable]]:
    """Resolve ``auto`` and yield (precision, autocast factory).

    ``auto`` is fp32, everywhere. bf16 (autocast to bfloat16, model in channels_last; CUDA only;
    the model's memory format is given back afterwards) is faster on a GPU (``benchmarks/gpu/``)
    but a weaker attack at small radii: bf16 keeps 8 significant bits, so an input perturbation
    of ~1/255 is at the rounding level of the normalized activations, and PGD in bf16 leaves a
    clearly higher robust accuracy than in fp32 (notes/measurements.md). A benchmark must not report
    a weaker attack as robustness, so bf16 has to be asked for. The verdict (robust or not) is
    always fp32.
    """
    if precision == "auto":
        precision = "fp32"
    if precision == "bf16" and device.type != "cuda":
        raise UserError("attack precision bf16 needs a CUDA device; use fp32 (or auto) on the CPU")
    if precision == "fp32":
        yield "fp32", contextlib.nullcontext
        return
    was_cl = _is_channels_last(model)
    model.to(memory_format=torch.channels_last)
    try:
        yield "bf16", lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    finally:
        if not was_cl:
            model.to(memory_format=torch.contiguous_format)


def auto_batch_size(model: nn.Module, x: torch.Tensor, device: torch.device, autocast: Callable) -> int:
    """Batch size from free CUDA memory: measure one forward+backward of a probe batch.

    On the CPU there is no memory pressure worth modelling: 1024.
    """
    if device.type != "cuda" or len(x) == 0:
        return 1024
    probe = min(32, len(x))
    xb = x[:probe].to(device).requires_grad_(True)
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with autocast():
        out = model(xb)
    torch.autograd.grad(out.float().logsumexp(1).sum(), xb)
    per_example = max((torch.cuda.max_memory_allocated(device) - base) / probe, 1.0)
    del xb, out
    free, _ = torch.cuda.mem_get_info(device)
    # half the free memory: the attack keeps a few image-sized buffers besides the activations
    return int(max(16, min(8192, 0.5 * free / per_example)))
