"""TRADES (Zhang et al., ICML 2019): clean cross-entropy plus β x KL(clean || adversarial).

The loss is ``CE(f(x), y) + β · KL(p(x) || p(x'))``, where ``x'`` maximises that KL inside the
L∞ ε-ball by PGD: start at ``x + 0.001 · N(0, 1)``, ``steps`` signed-gradient steps of ε/4 on
the KL (the reference code's 0.007 at ε = 0.031 in 10 steps), projection onto the ε-ball ∩ [0, 1]
after each. As in the reference code (yaodongyu/TRADES ``trades_loss``), the inner maximisation
runs with the model in eval mode, and the KL is summed over classes and averaged over examples
(``KLDivLoss(reduction="sum") / batch``, the clean probabilities not detached), β = 6. ε is the
dataset's headline L∞ radius unless given, as for PGD-AT, whose settings (``--at-eps``,
``--at-steps``) and model unwrapping it shares.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_mm.core.inference import evaluating
from robustbench_mm.methods.base import Method, Step, register_method
from robustbench_mm.methods.losses import hard_target_loss
from robustbench_mm.methods.pgd_at import _plain
from robustbench_mm.settings.fields import setting


def kl_sum(adv_logits: torch.Tensor, clean_probs: torch.Tensor) -> torch.Tensor:
    """KL(clean || adversarial) summed over classes and examples (the reference's ``KLDivLoss(sum)``)."""
    return F.kl_div(F.log_softmax(adv_logits.float(), dim=1), clean_probs, reduction="sum")


@register_method
@dataclass
class TRADES(Method):
    name = "trades"
    label = "TRADES"
    color = "tab:pink"
    order = 55
    description = "TRADES (Zhang et al. 2019): clean loss + β·KL to the worst case in the L∞ ball"

    at_eps: float | None = setting(None, "PGD-AT: L∞ radius (default: the dataset's headline radius)", low=0, high=1)
    at_steps: int = setting(10, "PGD-AT: attack steps per training batch", low=1, high=1000)
    beta: float = setting(
        6.0, "TRADES: weight of the robust (KL) term (0: none, plain training on clean images)", low=0, high=1000
    )

    def resolved(self, data=None) -> TRADES:
        if self.at_eps is None and data is not None:
            from robustbench_mm.data.cards import threat_of

            return TRADES(at_eps=threat_of(data).headline, at_steps=self.at_steps, beta=self.beta)
        return self

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        x_adv = self.attack(model, x, step.generator)
        # two forward passes, as the reference: BatchNorm normalizes each batch by its own statistics
        clean = model(x)
        adv = model(x_adv)
        natural = hard_target_loss(clean, y, step.loss_kind)
        robust = kl_sum(adv, F.softmax(clean.float(), dim=1)) / len(x)
        return natural + self.beta * robust, clean

    def attack(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The KL-maximising batch (detached), inside the ε-ball and [0, 1]."""
        eps = float(self.at_eps or 0.0)
        alpha = eps / 4
        lo, hi = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = (x + noise.mul_(0.001)).clamp_(min=lo, max=hi).detach()
        inner = _plain(model)
        with evaluating(inner), torch.enable_grad():
            with torch.no_grad():
                clean_probs = F.softmax(inner(x).float(), dim=1)
            for _ in range(self.at_steps):
                x_adv.requires_grad_(True)
                (grad,) = torch.autograd.grad(kl_sum(inner(x_adv), clean_probs), x_adv)
                x_adv = x_adv.detach().add_(grad.sign_(), alpha=alpha).clamp_(min=lo, max=hi)
        return x_adv.detach()
