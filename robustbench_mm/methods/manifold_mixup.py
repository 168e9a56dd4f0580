"""Manifold Mixup (Verma et al., ICML 2019): blend hidden states, the layer drawn each step.

The paper's eligible layers for PreActResNets are the input, the output of block 1 and the
output of block 2 (layers 0, 1, 2 here for every architecture), with α = 2.
"""

from __future__ import annotations

from dataclasses import dataclass

from robustbench_mm.methods.base import register_method
from robustbench_mm.methods.blend import BlendMethod
from robustbench_mm.settings.fields import setting


@register_method
@dataclass
class ManifoldMixup(BlendMethod):
    name = "manifold-mixup"
    label = "Manifold Mixup"
    color = "tab:green"
    order = 20
    description = "Manifold Mixup (Verma et al. 2019): convex combinations of hidden states and labels"

    alpha: float = setting(2.0, "mixing: λ ~ Beta(α, α)", low=0, low_open=True, high=1000)
    mix_layers: list[int] = setting(
        [0, 1, 2], "eligible mixing layers (0 = input, k = after stage k)", low=0, high=64, unique=True
    )

    def layers(self) -> tuple[int, ...]:
        return tuple(self.mix_layers)
