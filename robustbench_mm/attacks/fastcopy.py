"""Faster copies of a model for the attacks: the same function, rewritten for speed.

:func:`attack_copy` is what the attacks take their gradient (or query) steps on: BatchNorm
folded into the convolution before it, ReLUs moved behind max-pools, and on the CPU the layers
kept in channels_last. :func:`layout_copy` is what the driver's verdicts use: the model itself,
only in channels_last on the CPU. Both compute the model's own function up to float rounding;
the speed they buy is measured side by side with torchattacks in ``benchmarks/test_bench_pgd.py``.
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from robustbench_mm.core.inference import model_device


class _NCHWGrad(torch.autograd.Function):
    """Identity whose backward hands the gradient on NCHW-contiguous (ReLU's backward is slow on
    a channels_last gradient against an NCHW activation)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:
        return h.view_as(h)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


class _ChannelsLastMaxPool(nn.Module):
    """``pool`` computed in channels_last: PyTorch's CPU max-pool kernel for NCHW walks one tiny
    plane at a time, far slower than its channels_last kernel on small maps. Same maxima, same
    argmax routing of the gradient; output and input gradient are handed back NCHW-contiguous.
    """

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() != 4 or h.device.type != "cpu" or h.is_contiguous(memory_format=torch.channels_last):
            return self.pool(h)
        if h.requires_grad:
            h = _NCHWGrad.apply(h)
        return self.pool(h.contiguous(memory_format=torch.channels_last)).contiguous()


class _GlobalAvgPoolFn(torch.autograd.Function):
    """Mean over H and W whose backward hands the gradient back in the input's memory layout.

    Autograd's own backward of a global mean is an NCHW expand; the ReLU before the pool then
    compares that gradient against its channels_last output, and PyTorch's CPU
    ``threshold_backward`` is far slower on mixed layouts than on matching ones -- a sizeable
    share of a PGD step on the digits CNN.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:
        ctx.shape = h.shape
        ctx.channels_last = h.is_contiguous(memory_format=torch.channels_last) and not h.is_contiguous()
        return h.mean((2, 3), keepdim=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        n, c, height, width = ctx.shape
        expanded = (grad / (height * width)).expand(n, c, height, width)
        layout = torch.channels_last if ctx.channels_last else torch.contiguous_format
        return expanded.contiguous(memory_format=layout)


class _GlobalAvgPool(nn.Module):
    """``nn.AdaptiveAvgPool2d(1)`` with a layout-preserving backward (see :class:`_GlobalAvgPoolFn`)."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() != 4 or not h.requires_grad:
            return h.mean((2, 3), keepdim=True)
        return _GlobalAvgPoolFn.apply(h)


def _is_global_avg_pool(module: nn.Module) -> bool:
    return type(module) is nn.AdaptiveAvgPool2d and module.output_size in (1, (1, 1))


def _sequential_leaves(seq: nn.Sequential) -> list[tuple[nn.Sequential, int]]:
    """(parent, index) of the modules ``seq`` pipes one into the next, nested Sequentials opened."""
    leaves: list[tuple[nn.Sequential, int]] = []
    for i, child in enumerate(seq):
        if type(child) is nn.Sequential:
            leaves.extend(_sequential_leaves(child))
        elif type(child) is not nn.Identity:  # passes its input on: the neighbours still meet
            leaves.append((seq, i))
    return leaves


def _pool_before_relu(model: nn.Module) -> None:
    """Swap every ReLU that feeds a max-pool with that pool, in place.

    ReLU is monotone, so ``maxpool(relu(a)) == relu(maxpool(a))`` exactly, and the input gradient
    is exactly the same too: where a window's maximum is positive both orders route the gradient
    to the same argmax, and where it is not both give zero. After the swap the ReLU and its
    backward touch a quarter of the elements (a 2x2 pool); the ReLU backward is memory-bound, so
    that is a real share of a PGD step on the digits CNN.
    """
    roots = [m for m in model.modules() if type(m) is nn.Sequential]
    inner = {id(c) for m in roots for c in m.children() if type(c) is nn.Sequential}
    for root in (m for m in roots if id(m) not in inner):
        leaves = _sequential_leaves(root)
        for (relu_seq, i), (pool_seq, j) in zip(leaves, leaves[1:], strict=False):
            relu, pool = relu_seq[i], pool_seq[j]
            if type(relu) is nn.ReLU and type(pool) is nn.MaxPool2d and not pool.return_indices:
                relu_seq[i], pool_seq[j] = pool, relu


def _foldable(conv: nn.Module | None, bn: nn.Module | None) -> bool:
    return (
        type(conv) is nn.Conv2d
        and type(bn) is nn.BatchNorm2d
        and bn.track_running_stats
        and bn.running_mean is not None
        and conv.out_channels == bn.num_features
    )


def _sequential_pairs(model: nn.Module) -> Iterator[tuple[nn.Sequential, int]]:
    """(sequential, i): ``seq[i]`` is a Conv2d whose output feeds only the BatchNorm ``seq[i + 1]``."""
    for seq in model.modules():
        if isinstance(seq, nn.Sequential):
            for i in range(len(seq) - 1):
                if _foldable(seq[i], seq[i + 1]):
                    yield seq, i


def _attribute_pairs(model: nn.Module) -> Iterator[tuple[nn.Module, str, str]]:
    """(block, conv name, bn name) for blocks that name a foldable pair (e.g. PreActBlock)."""
    for block in model.modules():
        for conv_name, bn_name in getattr(block, "foldable_conv_bn", ()):
            conv, bn = getattr(block, conv_name, None), getattr(block, bn_name, None)
            if _foldable(conv, bn):
                yield block, conv_name, bn_name


def _cpu_pools(model: nn.Module) -> Iterator[tuple[nn.Module, str]]:
    """(parent, name) of every max-pool and global average pool, on the CPU only."""
    if model_device(model).type != "cpu":
        return
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is nn.MaxPool2d or _is_global_avg_pool(child):
                yield parent, name


def _fold_batchnorms(model: nn.Module) -> None:
    """Fold every foldable Conv2d -> BatchNorm2d pair into one convolution, in place."""
    for seq, i in list(_sequential_pairs(model)):
        seq[i] = fuse_conv_bn_eval(typing.cast(nn.Conv2d, seq[i]), typing.cast(nn.BatchNorm2d, seq[i + 1]))
        seq[i + 1] = nn.Identity()
    for block, conv_name, bn_name in list(_attribute_pairs(model)):
        setattr(block, conv_name, fuse_conv_bn_eval(getattr(block, conv_name), getattr(block, bn_name)))
        setattr(block, bn_name, nn.Identity())


def attack_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` that computes the same function faster, for attack steps;
    ``model`` itself when there is nothing to speed up.

    * Every Conv2d -> BatchNorm2d pair inside an ``nn.Sequential``, or named by a block's
      ``foldable_conv_bn`` attribute (``PreActBlock``: conv1 -> bn2), is folded into one
      convolution. In eval mode BatchNorm is a fixed per-channel affine map, so this is the
      standard inference fusion: the same function up to float rounding (~1e-6 in the logits of
      the digits CNN), two fewer passes over each activation, forward and backward.
    * A ReLU that feeds a max-pool runs after it instead (:func:`_pool_before_relu`): the same
      function and the same input gradient, on a quarter of the elements.
    * On the CPU, the copy's weights are channels_last, so convolutions and ``nn.MaxPool2d`` run
      in that layout (see :class:`_ChannelsLastMaxPool` for pools fed NCHW activations), and a
      global average pool hands its gradient back in that layout (:class:`_GlobalAvgPool`).

    Attacks take their gradient (or query) steps on the copy; the clean and final verdicts of
    the driver use ``model`` itself (or its :func:`layout_copy`), so every reported number is
    the model's own.
    """
    finders = (_sequential_pairs, _attribute_pairs, _cpu_pools)
    if model.training or all(next(find(model), None) is None for find in finders):
        return model
    try:
        fast = copy.deepcopy(model).eval()
    except Exception:  # a module that cannot be copied is attacked as it is
        return model
    _fold_batchnorms(fast)
    _pool_before_relu(fast)
    for parent, name in list(_cpu_pools(fast)):
        child = getattr(parent, name)
        setattr(parent, name, _GlobalAvgPool() if _is_global_avg_pool(child) else _ChannelsLastMaxPool(child))
    if model_device(fast).type == "cpu" and any(p.dim() == 4 for p in fast.parameters()):
        # oneDNN's CPU convolutions and pools run faster in channels_last; inputs and input
        # gradients stay NCHW.
        fast = fast.to(memory_format=torch.channels_last)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast


def layout_copy(model: nn.Module) -> nn.Module:
    """The model itself, or on the CPU a channels_last copy of it for the verdict passes.

    Same modules, same weights, no fusion: only the memory layout differs (oneDNN's CPU
    pooling is much faster in channels_last on small maps), so it computes the model's own
    function up to float summation order, as a different cuDNN algorithm would.
    """
    if model.training or model_device(model).type != "cpu" or not any(p.dim() == 4 for p in model.parameters()):
        return model
    try:
        return copy.deepcopy(model).to(memory_format=torch.channels_last)
    except Exception:  # a module that cannot be copied is used as it is
        return model
