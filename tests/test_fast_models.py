"""The CPU-fast architectures: early downsampling, BatchNorm everywhere, channels_last-safe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_mm.models import create_model


@pytest.mark.parametrize("arch,channels,size,after_stage1", [("fast28", 1, 28, 7), ("fast32", 3, 32, 8)])
def test_stages_downsample_early_and_every_conv_is_batchnormed(arch, channels, size, after_stage1):
    torch.manual_seed(0)
    model = create_model(arch, 10, channels, size)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == len(norms) and all(c.bias is None for c in convs)
    full_size = []
    model.eval()
    hooks = [c.register_forward_hook(lambda m, i, o: full_size.append(i[0].shape[-1] == size)) for c in convs]
    h = (torch.rand(2, channels, size, size) - model.mean) / model.std
    sizes = []
    for stage in model.stages:
        h = stage(h)
        sizes.append(tuple(h.shape[1:]))
    for hook in hooks:
        hook.remove()
    assert sum(full_size) == 1  # only the stem sees the full resolution
    assert sizes[0][1:] == (after_stage1, after_stage1) and sizes[1][1] == after_stage1 // 2 and len(sizes[2]) == 1
    assert model.mix_layers[:3] == [0, 1, 2]


@pytest.mark.parametrize("arch,channels,size", [("fast28", 1, 28), ("fast32", 3, 32)])
def test_channels_last_gives_the_same_logits_and_gradients_flow(arch, channels, size):
    torch.manual_seed(0)
    model = create_model(arch, 10, channels, size).eval()
    x = torch.rand(4, channels, size, size)
    plain = model(x)
    fast = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(plain, fast, atol=1e-5)
    model.train()
    model(x).logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
