"""Label smoothing (Szegedy et al., CVPR 2016): ERM against soft targets.

The target puts 1 − ε on the label and ε/K on every class (ε = 0.1, as the paper): the cheapest
rival explanation for what mixup does to calibration and to single-step attacks — soft targets
without any mixing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_mm.methods.base import Method, Step, register_method
from robustbench_mm.methods.losses import soft_target_loss
from robustbench_mm.settings.fields import setting


@register_method
@dataclass
class LabelSmoothing(Method):
    name = "label-smoothing"
    label = "label smoothing"
    color = "tab:brown"
    order = 40
    description = "label smoothing (Szegedy et al. 2016): ERM with soft targets"

    smoothing: float = setting(
        0.1,
        "label smoothing: the probability mass ε spread over all classes (0: none, which is ERM)",
        low=0,
        high=1,
        high_open=True,
    )

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        classes = logits.shape[1]
        targets = F.one_hot(y, classes).float().mul_(1.0 - self.smoothing).add_(self.smoothing / classes)
        return soft_target_loss(logits, targets, step.loss_kind), logits
