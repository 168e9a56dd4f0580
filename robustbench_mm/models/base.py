"""The one mixing mechanism every architecture shares.

A model is a sequence of stages followed by a head. ``model(x, mix=Mix(layer, lam, perm))``
mixes the hidden state *after* stage ``layer`` (0 = the input, after normalization) with a
paired copy of itself: ``h = lam * h + (1 - lam) * h[partner]``. Input mixup is ``layer=0``;
Manifold Mixup draws ``layer`` from the eligible set every step. Method code never needs to
know an architecture's internals.

Models take images in [0, 1] and own their normalization (mean/std buffers), as RobustBench
models do, so attacks and corruptions work in pixel space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Mix:
    """Mix the hidden state after stage ``layer`` with coefficient ``lam``.

    ``perm`` is the partner index of each row. ``None`` pairs the batch with its reverse
    (``h.flip(0)``), as timm's Mixup does: because the batch order is already a uniformly
    random permutation, every example's partner is uniformly random, and a flip has a cheap
    backward (another flip) where a gather by a random index needs a scatter-add.
    """

    layer: int
    lam: float | torch.Tensor  # a 0-dim tensor under torch.compile
    perm: torch.Tensor | None = None

    def partner(self, h: torch.Tensor) -> torch.Tensor:
        return h.flip(0) if self.perm is None else h[self.perm]

    def apply(self, h: torch.Tensor) -> torch.Tensor:
        """``lam * h + (1 - lam) * partner``, as one fused ``lerp``.

        torch's lerp computes ``end - (end - start) * (1 - w)`` for w >= 0.5, so λ = 1 returns
        ``h`` bit for bit (the ERM forward pass), and it costs one kernel instead of three.
        """
        lam = self.lam
        if isinstance(lam, torch.Tensor):
            lam = lam.to(device=h.device, dtype=h.dtype)
        if self.perm is None:
            return _FlipMix.apply(h, lam)
        return torch.lerp(h[self.perm], h, lam)


class _FlipMix(torch.autograd.Function):
    """``lerp(h.flip(0), h, lam)`` whose backward is the same operation on the gradient.

    d/dh [lam * h + (1 - lam) * flip(h)] applied to g is lam * g + (1 - lam) * flip(g): the
    flip is its own inverse, so the backward is one flip and one lerp instead of autograd's
    two multiplies, a flip and an accumulation.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, lam):
        ctx.lam = lam
        return torch.lerp(h.flip(0), h, lam)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return torch.lerp(grad.flip(0), grad, ctx.lam), None


class MixableNet(nn.Module):
    """Normalization, then ``stages``, then ``head``; mixing possible after any stage."""

    mean: torch.Tensor  # (1, C, 1, 1) buffers: the model owns its normalization
    std: torch.Tensor

    def __init__(
        self,
        stages: Sequence[nn.Module],
        head: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.head = head
        channels = len(mean)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, channels, 1, 1))

    @property
    def mix_layers(self) -> list[int]:
        """Every layer this model can mix at: 0 (input) .. number of stages."""
        return list(range(len(self.stages) + 1))

    def hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The hidden state at every mix point: [normalized input, after stage 1, ..., after the last stage].

        The last entry is the head's input (the penultimate layer). The same computation as
        ``forward`` without mixing, so ``self.head(self.hidden_states(x)[-1]) == self(x)``.
        """
        h = (x - self.mean) / self.std
        states = [h]
        for stage in self.stages:
            h = stage(h)
            states.append(h)
        return states

    def forward(self, x: torch.Tensor, mix: Mix | None = None) -> torch.Tensor:
        h = (x - self.mean) / self.std
        if mix is not None and mix.layer == 0:
            h = mix.apply(h)
        for index, stage in enumerate(self.stages, start=1):
            h = stage(h)
            if mix is not None and mix.layer == index:
                h = mix.apply(h)
        return self.head(h)
