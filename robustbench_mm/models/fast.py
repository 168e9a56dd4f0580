"""CPU-fast networks for 28x28 grey and 32x32 colour images: ``fast28`` and ``fast32``.

The cost of a convolution is (pixels x input channels x output channels), so these nets
spend their width where the maps are small: one narrow convolution at full resolution, then
max-pooling at once, and the wider convolutions at 1/2, 1/4 and 1/8 of the side (the shape
of Page's ResNet-9 and Jordan's airbench, narrowed for one CPU core). The default ``cnn``
instead runs its two widest convolutions at full resolution.

Stages (Manifold Mixup's eligible layers are the input, after stage 1 and after stage 2,
as after block 1 and block 2 of the paper's PreActResNets):

    stage 1: stem conv at full size, max-pool /2, conv block, max-pool /2
    stage 2: conv block, max-pool /2
    stage 3: conv block, global max-pool
    head:    linear, its logits scaled down (airbench's 1/8: a flatter start for SGD)

A conv block is conv-BN-ReLU, then (``residual``) a residual pair of conv-BN-ReLU layers.
Every layer is BatchNorm'd, so the nets train at high learning rates; convolutions have no
bias (BatchNorm's shift replaces it) and run in channels_last on the CPU like every
convolutional model here (see ``training.step.to_training_layout``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robustbench_mm.models.base import MixableNet
from robustbench_mm.models.registry import ARCHS, ModelSpec


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """x + two conv-BN-ReLU layers of x (ResNet-9's residual pair)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ScaledLinear(nn.Linear):
    """A linear head whose logits are multiplied by a fixed ``scale``."""

    def __init__(self, cin: int, cout: int, scale: float) -> None:
        super().__init__(cin, cout, bias=False)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.scale


def block(cin: int, cout: int, double: bool, residual: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [conv_bn(cin, cout)]
    if double:
        layers.append(conv_bn(cout, cout))
    if residual:
        layers.append(Residual(cout))
    return layers


def fast_net(
    spec: ModelSpec,
    stem: int,
    widths: Sequence[int],
    double: Sequence[bool] = (False, False, False),
    residual: Sequence[bool] = (False, False, False),
    head_scale: float = 0.125,
) -> MixableNet:
    """The fast family: ``stem`` channels at full size, then ``widths`` at 1/2-1/4, 1/4-1/8, 1/8-1."""
    (w1, w2, w3), d, r = widths, double, residual
    stages = [
        nn.Sequential(conv_bn(spec.in_channels, stem), nn.MaxPool2d(2), *block(stem, w1, d[0], r[0]), nn.MaxPool2d(2)),
        nn.Sequential(*block(w1, w2, d[1], r[1]), nn.MaxPool2d(2)),
        nn.Sequential(*block(w2, w3, d[2], r[2]), nn.AdaptiveMaxPool2d(1), nn.Flatten()),
    ]
    return MixableNet(stages, ScaledLinear(w3, spec.num_classes, head_scale), spec.mean, spec.std)


@ARCHS.register("fast32")
def fast32(spec: ModelSpec) -> MixableNet:
    """For 32x32 colour images (CIFAR-10): the default on a CPU. Two convolutions per stage: the
    best CIFAR-10 accuracy per CPU second of the variants measured in notes/recipe.md."""
    return fast_net(spec, stem=16, widths=(32, 64, 128), double=(True, True, True))


@ARCHS.register("fast28")
def fast28(spec: ModelSpec) -> MixableNet:
    """For 28x28 grey images (MNIST, Fashion-MNIST)."""
    return fast_net(spec, stem=16, widths=(32, 64, 128))
