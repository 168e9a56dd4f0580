"""Losses against hard, soft and mixed targets, shared by every training method.

``ce`` is cross-entropy; ``bce`` is the official Manifold Mixup code's
``BCELoss(softmax(logits), targets)``, averaged over examples and classes. Losses are computed
in fp32 even under bf16 autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustbench_mm.models.base import Mix

LOSS_KINDS = ("ce", "bce")


def soft_target_loss(logits: torch.Tensor, targets: torch.Tensor, kind: str = "ce") -> torch.Tensor:
    """Loss against a probability vector per example."""
    logits = logits.float()
    if kind == "ce":
        return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    return F.binary_cross_entropy(F.softmax(logits, dim=1), targets)


def hard_target_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str = "ce") -> torch.Tensor:
    """The ERM loss: cross-entropy (as ``nll_loss(log_softmax)``), or the official BCE variant."""
    logits = logits.float()
    if kind == "ce":
        return F.nll_loss(F.log_softmax(logits, dim=1), labels)
    return soft_target_loss(logits, F.one_hot(labels, logits.shape[1]).float(), kind)


def mixed_loss(logits: torch.Tensor, labels: torch.Tensor, mix: Mix, kind: str = "ce") -> torch.Tensor:
    """Loss against ``lam * onehot(y) + (1 - lam) * onehot(y[partner])``.

    Cross-entropy is linear in the target, so this is ``lam * CE(y) + (1 - lam) * CE(y')``
    with one shared log-softmax; with λ = 1 the second term is multiplied by exactly 0 and
    the result equals the ERM loss bit for bit.
    """
    partner_labels = mix.partner(labels)
    logits = logits.float()
    if kind == "ce":
        log_probs = F.log_softmax(logits, dim=1)
        return mix.lam * F.nll_loss(log_probs, labels) + (1.0 - mix.lam) * F.nll_loss(log_probs, partner_labels)
    onehot = F.one_hot(labels, logits.shape[1]).float()
    targets = mix.lam * onehot + (1.0 - mix.lam) * mix.partner(onehot)
    return soft_target_loss(logits, targets, kind)
