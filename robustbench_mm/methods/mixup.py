"""Input mixup (Zhang et al., ICLR 2018): blend whole images and their labels; α = 1 as in the paper."""

from __future__ import annotations

from dataclasses import dataclass

from robustbench_mm.methods.base import register_method
from robustbench_mm.methods.blend import BlendMethod
from robustbench_mm.settings.fields import setting


@register_method
@dataclass
class Mixup(BlendMethod):
    name = "mixup"
    label = "input mixup"
    color = "tab:orange"
    order = 10
    description = "input mixup (Zhang et al. 2018): convex combinations of images and labels"

    alpha: float = setting(1.0, "mixing: λ ~ Beta(α, α)", low=0, low_open=True, high=1000)

    def layers(self) -> tuple[int, ...]:
        return (0,)
