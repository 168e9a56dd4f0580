"""CutMix (Yun et al., ICCV 2019): paste a box of the partner image; a method that does not blend.

λ ~ Beta(α, α) (α = 1, as the paper) sets the box: side ratio √(1 − λ), centre uniform over the
image, clipped at the border; λ is then re-set to the share of the image that kept its own
pixels, and the targets are mixed with that area-adjusted λ (the official code's
``lam = 1 - box_area / image_area``). The partner of each example is the reversed (already
shuffled) batch, as for the blending methods.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robustbench_mm.methods.base import Method, Step, register_method
from robustbench_mm.methods.losses import hard_target_loss, mixed_loss
from robustbench_mm.models.base import Mix
from robustbench_mm.settings.fields import setting


def draw_box(lam: float, height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a box of area ≈ (1 − λ)·H·W, centred uniformly, clipped."""
    ratio = float(np.sqrt(1.0 - lam))
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = int(np.clip(cy - cut_h // 2, 0, height)), int(np.clip(cy + cut_h // 2, 0, height))
    left, right = int(np.clip(cx - cut_w // 2, 0, width)), int(np.clip(cx + cut_w // 2, 0, width))
    return top, bottom, left, right


def paste(x: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """``x`` with the box replaced by the same box of the partner (the reversed batch)."""
    top, bottom, left, right = box
    out = x.clone()
    out[:, :, top:bottom, left:right] = x.flip(0)[:, :, top:bottom, left:right]
    return out


@register_method
@dataclass
class CutMix(Method):
    name = "cutmix"
    label = "CutMix"
    color = "tab:purple"
    order = 30
    description = "CutMix (Yun et al. 2019): paste a box of another image, labels mixed by area"

    alpha: float = setting(1.0, "mixing: λ ~ Beta(α, α)", low=0, low_open=True, high=1000)
    prob: float = setting(
        1.0,
        "CutMix: share of the batches that get a box (the paper's CIFAR runs: 0.5; 0: never, which is ERM)",
        low=0,
        high=1,
    )

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        if self.prob < 1.0 and step.rng.random() >= self.prob:
            logits = model(x)
            return hard_target_loss(logits, y, step.loss_kind), logits
        lam = float(step.rng.beta(self.alpha, self.alpha))
        height, width = x.shape[-2:]
        box = draw_box(lam, height, width, step.rng)
        area = (box[1] - box[0]) * (box[3] - box[2])
        lam = 1.0 - area / (height * width)  # the share of each image that is still its own
        logits = model(paste(x, box))
        return mixed_loss(logits, y, Mix(layer=0, lam=lam), step.loss_kind), logits
