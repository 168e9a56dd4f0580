"""Noisy Feature Mixup (Lim et al., ICLR 2022): Manifold Mixup plus noise at the mixed layer.

The hidden state after the drawn layer is blended with its partner's, as Manifold Mixup does,
and then perturbed: ``h = m * mix(h) + a``, with multiplicative noise ``m = 1 + s_mult * b *
U(-1, 1)`` and additive noise ``a = s_add * b' * N(0, 1)`` per element, where the scales ``b,
b' ~ Beta(2, 5)`` are drawn once per batch. This is the official code's ``_noise`` (erichson/NFM)
with its CIFAR defaults: α = 1, additive level 0.4, multiplicative level 0.2, the mixing layer
drawn from the input and the outputs of blocks 1 and 2. The noise is drawn on the device from
the run's method generator, the scales and λ from its host generator, so a run repeats exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustbench_mm.methods.base import Step, register_method
from robustbench_mm.methods.blend import BlendMethod
from robustbench_mm.models.base import Mix
from robustbench_mm.settings.fields import setting


@dataclass(frozen=True)
class NoisyMix(Mix):
    """A :class:`Mix` whose blended state is then perturbed by multiplicative and additive noise."""

    mult: float = 0.0  # half-width of the multiplicative noise around 1 (level x Beta(2, 5) draw)
    add: float = 0.0  # standard deviation of the additive noise (level x Beta(2, 5) draw)
    generator: torch.Generator | None = None

    def apply(self, h: torch.Tensor) -> torch.Tensor:
        h = super().apply(h)
        if self.mult > 0:
            u = torch.rand(h.shape, generator=self.generator, device=h.device, dtype=h.dtype)
            h = h * u.mul_(2 * self.mult).add_(1 - self.mult)  # 1 + mult * U(-1, 1)
        if self.add > 0:
            h = h + torch.randn(h.shape, generator=self.generator, device=h.device, dtype=h.dtype).mul_(self.add)
        return h


@register_method
@dataclass
class NoisyFeatureMixup(BlendMethod):
    name = "noisy-feature-mixup"
    label = "Noisy Feature Mixup"
    color = "tab:olive"
    order = 25
    description = "Noisy Feature Mixup (Lim et al. 2022): Manifold Mixup plus additive and multiplicative noise"

    alpha: float = setting(1.0, "mixing: λ ~ Beta(α, α)", low=0, low_open=True, high=1000)
    mix_layers: list[int] = setting(
        [0, 1, 2], "eligible mixing layers (0 = input, k = after stage k)", low=0, high=64, unique=True
    )
    add_noise: float = setting(0.4, "NFM: additive noise level (std = level x Beta(2, 5); 0: none)", low=0, high=100)
    mult_noise: float = setting(0.2, "NFM: multiplicative noise level (1 ± level x Beta(2, 5); 0: none)", low=0, high=1)

    def layers(self) -> tuple[int, ...]:
        return tuple(self.mix_layers)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        mix = self.draw(len(y), step, x.device)
        # the official code draws both scales from Beta(2, 5) for every batch, additive first
        add = self.add_noise * float(step.rng.beta(2, 5)) if self.add_noise > 0 else 0.0
        mult = self.mult_noise * float(step.rng.beta(2, 5)) if self.mult_noise > 0 else 0.0
        noisy = NoisyMix(mix.layer, mix.lam, mix.perm, mult=mult, add=add, generator=step.generator)
        return self.mixed_loss(model, x, y, noisy, step.loss_kind)
