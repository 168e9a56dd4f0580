"""Multi-GPU training through ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node N -m robustbench_mm train ...`` sets WORLD_SIZE/RANK/LOCAL_RANK;
:func:`setup` then joins the process group (NCCL on CUDA, gloo on the CPU). Every rank
draws the same global batch order and λ (same seeds) and trains on its slice of each global
batch, so N processes with batch B/N each see exactly the global batch B of a single
process; mixing happens inside each rank's slice. Only rank 0 writes the run directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from robustbench_mm.core.errors import UserError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we initialized the process group, so we tear it down

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device: torch.device) -> Dist:
    """Join the process group when launched by torchrun; a no-op for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return Dist(rank, world, local_rank, owns_group=False)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return Dist(rank, world, local_rank, owns_group=True)


def rank_device(device: torch.device, ctx: Dist) -> torch.device:
    """One GPU per local rank under torchrun."""
    if ctx.active and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device


def local_batch(global_batch: int, ctx: Dist) -> int:
    if global_batch % ctx.world:
        raise UserError(f"--batch-size {global_batch} must be divisible by the number of processes ({ctx.world})")
    return global_batch // ctx.world


def _all_reduce(tensor: torch.Tensor, ctx: Dist, op) -> torch.Tensor:
    """``tensor`` reduced over the processes, on its own device and in its own dtype.

    NCCL reduces CUDA tensors only and no backend reduces bools, so the work happens on the
    backend's device, with bools as uint8.
    """
    if not ctx.active:
        return tensor
    where = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    work = tensor.to(where, torch.uint8 if tensor.dtype == torch.bool else tensor.dtype)
    dist.all_reduce(work, op=op)
    return work.to(tensor.device, tensor.dtype)


def all_reduce_sum(tensor: torch.Tensor, ctx: Dist) -> torch.Tensor:
    return _all_reduce(tensor, ctx, dist.ReduceOp.SUM)


def all_reduce_min(tensor: torch.Tensor, ctx: Dist) -> torch.Tensor:
    return _all_reduce(tensor, ctx, dist.ReduceOp.MIN)


def barrier(ctx: Dist) -> None:
    if ctx.active:
        dist.barrier()


def teardown(ctx: Dist) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()
