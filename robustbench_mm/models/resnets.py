"""PreActResNet18/34 and WRN-28-10, with the mix points of the Manifold Mixup paper.

The official code mixes at the input (layer 0), after block 1 (``layer1``) and after block 2
(``layer2``); here stage 1 is the stem convolution plus ``layer1``, so "after stage k" is
"after block k" exactly as in the paper.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from robustbench_mm.models.base import MixableNet
from robustbench_mm.models.registry import ARCHS, ModelSpec


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016), as in the paper's code."""

    # conv1's output feeds bn2 and nothing else, so an eval-mode copy may fold bn2 into conv1
    # (what attacks.fastcopy.attack_copy does for the attack's gradient steps)
    foldable_conv_bn = (("conv1", "bn2"),)

    def __init__(self, cin: int, cout: int, stride: int = 1, drop: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop = drop
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = F.relu(self.bn2(out))
        if self.drop > 0:
            out = F.dropout(out, p=self.drop, training=self.training)
        return self.conv2(out) + shortcut


def _layer(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [PreActBlock(cin, cout, stride)] + [PreActBlock(cout, cout, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class _FinalPool(nn.Sequential):
    def __init__(self, channels: int) -> None:
        super().__init__(nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _preact_resnet(spec: ModelSpec, blocks: tuple[int, int, int, int], width: int = 64) -> MixableNet:
    widths = (width, 2 * width, 4 * width, 8 * width)
    stem = nn.Conv2d(spec.in_channels, widths[0], 3, 1, 1, bias=False)
    stages = [
        nn.Sequential(stem, _layer(widths[0], widths[0], blocks[0], 1)),
        _layer(widths[0], widths[1], blocks[1], 2),
        _layer(widths[1], widths[2], blocks[2], 2),
        nn.Sequential(_layer(widths[2], widths[3], blocks[3], 2), _FinalPool(widths[3])),
    ]
    return MixableNet(stages, nn.Linear(widths[3], spec.num_classes), spec.mean, spec.std)


@ARCHS.register("preactresnet18")
def preactresnet18(spec: ModelSpec) -> MixableNet:
    return _preact_resnet(spec, (2, 2, 2, 2))


@ARCHS.register("preactresnet34")
def preactresnet34(spec: ModelSpec) -> MixableNet:
    return _preact_resnet(spec, (3, 4, 6, 3))


@ARCHS.register("wrn28_10")
def wrn28_10(spec: ModelSpec, depth: int = 28, widen: int = 10) -> MixableNet:
    """Wide ResNet (Zagoruyko & Komodakis 2016) with pre-activation blocks; 3 stages."""
    blocks = (depth - 4) // 6
    widths = (16, 16 * widen, 32 * widen, 64 * widen)
    stem = nn.Conv2d(spec.in_channels, widths[0], 3, 1, 1, bias=False)
    stages = [
        nn.Sequential(stem, _layer(widths[0], widths[1], blocks, 1)),
        _layer(widths[1], widths[2], blocks, 2),
        nn.Sequential(_layer(widths[2], widths[3], blocks, 2), _FinalPool(widths[3])),
    ]
    return MixableNet(stages, nn.Linear(widths[3], spec.num_classes), spec.mean, spec.std)
