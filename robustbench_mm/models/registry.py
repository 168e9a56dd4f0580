"""Architecture registry: ``ARCHS.register("cnn")`` and :func:`create_model`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.registry import Registry
from robustbench_mm.models.thirdparty import create_thirdparty, is_thirdparty

ARCHS: Registry = Registry("architecture")


@dataclass(frozen=True)
class ModelSpec:
    """What an architecture needs to know about the data."""

    num_classes: int
    in_channels: int
    image_size: int
    mean: Sequence[float]
    std: Sequence[float]


def create_model(
    name: str,
    num_classes: int,
    in_channels: int,
    image_size: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    mix_modules: Sequence[str] | None = None,
) -> nn.Module:
    """Build a registered architecture, or ``torchvision:NAME`` / ``timm:NAME`` (mix points on the
    modules ``mix_modules`` names, else its stages), that takes [0, 1] images and normalizes inside."""
    mean = tuple(mean) if mean is not None else (0.5,) * in_channels
    std = tuple(std) if std is not None else (0.5,) * in_channels
    if is_thirdparty(name):
        return create_thirdparty(name, num_classes, in_channels, mean, std, mix_modules)
    factory = ARCHS.get(name)
    if mix_modules:
        raise UserError(f"--mix-modules applies to torchvision:NAME and timm:NAME models, not {name}")
    spec = ModelSpec(
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        mean=mean,
        std=std,
    )
    return factory(spec)


def is_arch(name: str) -> bool:
    """A registered architecture or a ``torchvision:`` / ``timm:`` model name."""
    return name in ARCHS or is_thirdparty(name)
