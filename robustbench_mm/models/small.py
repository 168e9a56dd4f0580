"""Small models for small images: ``cnn`` (the digits default) and ``mlp``."""

from __future__ import annotations

from torch import nn

from robustbench_mm.models.base import MixableNet
from robustbench_mm.models.registry import ARCHS, ModelSpec


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@ARCHS.register("cnn")
def cnn(spec: ModelSpec, width: int = 32) -> MixableNet:
    """Three conv stages (mix points after each) and a linear head.

    Stage 1 keeps the resolution, stage 2 halves it, stage 3 pools globally: enough capacity
    for 8x8 digits and 28x28 MNIST while a digits epoch stays well under a second on a CPU.
    """
    stages = [
        _conv_bn_relu(spec.in_channels, width),
        nn.Sequential(_conv_bn_relu(width, 2 * width), nn.MaxPool2d(2)),
        nn.Sequential(_conv_bn_relu(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
    ]
    return MixableNet(stages, nn.Linear(4 * width, spec.num_classes), spec.mean, spec.std)


@ARCHS.register("mlp")
def mlp(spec: ModelSpec, hidden: int = 512) -> MixableNet:
    """Two hidden layers; mix points at the input and after each hidden layer."""
    inputs = spec.in_channels * spec.image_size * spec.image_size
    stages = [
        nn.Sequential(nn.Flatten(), nn.Linear(inputs, hidden), nn.ReLU(inplace=True)),
        nn.Sequential(nn.Linear(hidden, hidden // 2), nn.ReLU(inplace=True)),
    ]
    return MixableNet(stages, nn.Linear(hidden // 2, spec.num_classes), spec.mean, spec.std)
