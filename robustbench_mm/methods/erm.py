"""ERM: plain training on the labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustbench_mm.methods.base import Method, Step, register_method
from robustbench_mm.methods.losses import hard_target_loss


@register_method
@dataclass
class ERM(Method):
    name = "erm"
    label = "ERM"
    color = "tab:blue"
    order = 0
    description = "empirical risk minimisation: plain training on the labels"

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return hard_target_loss(logits, y, step.loss_kind), logits
