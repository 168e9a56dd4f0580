"""PGD adversarial training (Madry et al., ICLR 2018): train on the worst case found by PGD.

Each batch is replaced by its PGD-L∞ adversarial version: a uniform random start in the ε-ball,
``steps`` signed-gradient steps of 2.5·ε/steps on the cross-entropy, projection onto the ε-ball
∩ [0, 1] after each; the last iterate is trained on, as Madry et al. do. The attack runs with the
model in eval mode (BatchNorm uses its running statistics and they do not move), as the Madry
lab's ``robustness`` library does; gradients are taken with respect to the input only. ε is the
dataset's headline L∞ radius unless given: the reference every robustness claim is judged against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_mm.core.inference import evaluating
from robustbench_mm.methods.base import Method, Step, register_method
from robustbench_mm.methods.losses import hard_target_loss
from robustbench_mm.settings.fields import setting


def _plain(model: nn.Module) -> nn.Module:
    """The module under DistributedDataParallel / torch.compile wrappers (attacked in eval mode)."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


@register_method
@dataclass
class PGDAT(Method):
    name = "pgd-at"
    label = "PGD-AT"
    color = "tab:red"
    order = 50
    description = "PGD adversarial training (Madry et al. 2018), L∞ at the dataset's headline ε"

    # ε = 0 would train on clean images at the attack's cost: that is ERM, refused rather than renamed
    at_eps: float | None = setting(
        None, "PGD-AT: L∞ radius (default: the dataset's headline radius)", low=0, low_open=True, high=1
    )
    at_steps: int = setting(10, "PGD-AT: attack steps per training batch", low=1, high=1000)

    def resolved(self, data=None) -> PGDAT:
        if self.at_eps is None and data is not None:
            from robustbench_mm.data.cards import threat_of

            return PGDAT(at_eps=threat_of(data).headline, at_steps=self.at_steps)
        return self

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        x_adv = self.attack(model, x, y, step.generator)
        logits = model(x_adv)
        return hard_target_loss(logits, y, step.loss_kind), logits

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The PGD-L∞ adversarial batch (detached), inside the ε-ball and [0, 1]."""
        eps = float(self.at_eps or 0.0)
        alpha = 2.5 * eps / self.at_steps  # Madry et al.: lets a step sequence cross the ball and back
        lo, hi = (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = (x + noise.mul_(2 * eps).sub_(eps)).clamp_(min=lo, max=hi)
        inner = _plain(model)
        with evaluating(inner), torch.enable_grad():
            for _ in range(self.at_steps):
                x_adv.requires_grad_(True)
                loss = F.cross_entropy(inner(x_adv).float(), y)
                (grad,) = torch.autograd.grad(loss, x_adv)
                x_adv = x_adv.detach().add_(grad.sign_(), alpha=alpha).clamp_(min=lo, max=hi)
        return (
            x_adv.contiguous(memory_format=torch.channels_last)
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            else x_adv
        )
