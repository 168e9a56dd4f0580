"""Training methods: ``erm``, ``mixup`` (input mixup) and ``manifold-mixup``.

One mechanism (``model(x, mix=Mix(...))``) serves both mixup methods: input mixup mixes at
layer 0, Manifold Mixup draws the layer from the eligible set each step (the paper: input,
after block 1, after block 2). λ ~ Beta(α, α) once per batch from a seeded NumPy generator
whose state is saved in every checkpoint, so a resumed run draws the same λ sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError
from .models.base import Mix
from .registry import Registry

METHODS: Registry = Registry("method")
MIX_LOSSES = ("ce", "bce")


def soft_target_loss(logits: torch.Tensor, targets: torch.Tensor, kind: str = "ce") -> torch.Tensor:
    """Loss against a probability vector per example.

    ``ce``: cross-entropy with soft targets. ``bce``: the official Manifold Mixup code's
    ``BCELoss(softmax(logits), targets)``, averaged over examples and classes.
    """
    logits = logits.float()  # losses in fp32 even under bf16 autocast
    if kind == "ce":
        return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    probs = F.softmax(logits, dim=1)
    return F.binary_cross_entropy(probs, targets)


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


@dataclass
class Method:
    """A training method: how one batch becomes a loss."""

    name: str
    alpha: float = 0.0
    mix_layers: tuple[int, ...] = ()
    mix_loss: str = "ce"
    pairing: str = "flip"  # "flip" (pair with the reversed batch) or "permute" (random permutation)

    @property
    def mixes(self) -> bool:
        return bool(self.mix_layers)

    def draw_mix(self, batch_size: int, rng: np.random.Generator, device: torch.device, as_tensor: bool = False) -> Mix | None:
        """λ and the mixing layer for one batch (None for ERM).

        ``as_tensor`` gives λ as a 0-dim tensor on ``device``, so a compiled model sees one input
        rather than a new constant (and a recompilation) for every λ. ``torch.full`` passes the
        value as a kernel argument: no host-to-device copy that would wait for the GPU.
        """
        if not self.mixes:
            return None
        lam = float(rng.beta(self.alpha, self.alpha))
        if as_tensor:
            lam = torch.full((), lam, device=device)
        layer = int(self.mix_layers[rng.integers(len(self.mix_layers))]) if len(self.mix_layers) > 1 else self.mix_layers[0]
        perm = None
        if self.pairing == "permute":
            perm = torch.from_numpy(rng.permutation(batch_size)).to(device)
        return Mix(layer=layer, lam=lam, perm=perm)

    def loss(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, mix: Mix | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (loss, logits) for one batch."""
        if mix is None:
            logits = model(x)
            return hard_target_loss(logits, y, self.mix_loss), logits
        logits = model(x, mix=mix)
        return mixed_loss(logits, y, mix, self.mix_loss), logits


@dataclass(frozen=True)
class MethodDefaults:
    alpha: float
    mix_layers: tuple[int, ...]


METHODS.register("erm")(MethodDefaults(alpha=0.0, mix_layers=()))
METHODS.register("mixup")(MethodDefaults(alpha=1.0, mix_layers=(0,)))
METHODS.register("manifold-mixup")(MethodDefaults(alpha=2.0, mix_layers=(0, 1, 2)))


def create_method(
    name: str,
    alpha: float | None = None,
    mix_layers: Sequence[int] | None = None,
    available_layers: Sequence[int] | None = None,
    mix_loss: str = "ce",
    pairing: str = "flip",
) -> Method:
    """Resolve a method's settings, validating them against the model's mix points."""
    defaults: MethodDefaults = METHODS.get(name)
    if mix_loss not in MIX_LOSSES:
        raise UserError(f"unknown mix loss {mix_loss!r}; valid: {', '.join(MIX_LOSSES)}")
    if pairing not in ("flip", "permute"):
        raise UserError(f"unknown pairing {pairing!r}; valid: flip, permute")
    if name == "erm":
        return Method(name=name, mix_loss=mix_loss)
    alpha = defaults.alpha if alpha is None else float(alpha)
    if not alpha > 0 or not np.isfinite(alpha):
        raise UserError(f"--alpha must be > 0 for {name}, got {alpha}")
    layers = defaults.mix_layers if mix_layers is None else tuple(int(layer) for layer in mix_layers)
    if name == "mixup" and layers != (0,):
        raise UserError("input mixup mixes at layer 0 only; use manifold-mixup for --mix-layers")
    if not layers:
        raise UserError(f"{name} needs at least one mix layer")
    if available_layers is not None:
        bad = [layer for layer in layers if layer not in available_layers]
        if bad:
            raise UserError(
                f"mix layer(s) {bad} not available for this architecture; valid: {', '.join(map(str, available_layers))}"
            )
    return Method(name=name, alpha=alpha, mix_layers=layers, mix_loss=mix_loss, pairing=pairing)
