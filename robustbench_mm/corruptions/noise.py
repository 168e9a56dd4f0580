"""Noise corruptions: gaussian, shot, impulse and speckle (reference CIFAR tables, no departures
beyond drawing the random numbers from torch instead of numpy)."""

from __future__ import annotations

import torch

from ._util import rand, randn
from .common import CORRUPTIONS


@CORRUPTIONS.register("gaussian_noise")
def gaussian_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Additive N(0, c^2) per pixel and channel."""
    c = [0.04, 0.06, 0.08, 0.09, 0.10][severity - 1]
    return x + c * randn(tuple(x.shape), generator, x)


@CORRUPTIONS.register("shot_noise")
def shot_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Photon noise: Poisson(c * x) / c, so lower c (fewer photons) is noisier."""
    c = [500, 250, 100, 75, 50][severity - 1]
    # torch.poisson draws on the rate's device, so the rates go to the generator's device.
    counts = torch.poisson((x * c).to(generator.device), generator=generator)
    return counts.to(x.device) / c


@CORRUPTIONS.register("impulse_noise")
def impulse_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Salt and pepper on a fraction c of the values, half white, half black (skimage 's&p')."""
    c = [0.01, 0.02, 0.03, 0.05, 0.07][severity - 1]
    hit = rand(tuple(x.shape), generator, x) < c
    salt = rand(tuple(x.shape), generator, x) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


@CORRUPTIONS.register("speckle_noise")
def speckle_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Multiplicative noise x + x * N(0, c^2): dark pixels stay clean, bright ones get noisy."""
    c = [0.06, 0.10, 0.12, 0.16, 0.20][severity - 1]
    return x + x * (c * randn(tuple(x.shape), generator, x))
