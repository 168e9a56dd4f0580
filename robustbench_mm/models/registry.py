"""Architecture registry: ``ARCHS.register("cnn")`` and :func:`create_model`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from robustbench_mm.core.registry import Registry
from robustbench_mm.models.base import MixableNet

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
) -> MixableNet:
    """Build a registered architecture that takes [0, 1] images and normalizes inside."""
    factory = ARCHS.get(name)
    spec = ModelSpec(
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        mean=tuple(mean) if mean is not None else (0.5,) * in_channels,
        std=tuple(std) if std is not None else (0.5,) * in_channels,
    )
    return factory(spec)
