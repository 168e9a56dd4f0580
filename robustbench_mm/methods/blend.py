"""What input mixup and Manifold Mixup share: blend a hidden state with its partner's.

λ ~ Beta(α, α) once per batch from the run's seeded generator; the batch is mixed with a
partner copy of itself (``model(x, mix=Mix(layer, lam))``, the one mechanism every architecture
supports) and the targets with the same λ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustbench_mm.core.errors import UserError
from robustbench_mm.methods.base import Method, Step
from robustbench_mm.methods.losses import mixed_loss
from robustbench_mm.models.base import Mix
from robustbench_mm.settings.fields import setting


@dataclass
class BlendMethod(Method):
    """A method that blends at one of ``layers()`` each step (subclasses say which)."""

    alpha: float = setting(1.0, "mixing: λ ~ Beta(α, α)", low=0, low_open=True, high=1000)
    pairing: str = setting(
        "flip",
        "mixing partner: the reversed (already shuffled) batch, or a random permutation",
        choices=("flip", "permute"),
    )

    def layers(self) -> tuple[int, ...]:
        raise NotImplementedError

    def check_model(self, model: nn.Module) -> None:
        available = getattr(model, "mix_layers", [0])
        bad = [layer for layer in self.layers() if layer not in available]
        if bad:
            raise UserError(
                f"mix layer(s) {bad} not available for this architecture; valid: {', '.join(map(str, available))}"
            )

    def draw(self, batch_size: int, step: Step, device: torch.device) -> Mix:
        """λ, the layer and the partners of one batch (drawn in this order from ``step.rng``)."""
        drawn = float(step.rng.beta(self.alpha, self.alpha))
        lam: float | torch.Tensor = drawn
        if step.lam_as_tensor:
            # torch.full passes the value as a kernel argument: no host-to-device copy to wait for
            lam = torch.full((), drawn, device=device)
        layers = self.layers()
        layer = int(layers[step.rng.integers(len(layers))]) if len(layers) > 1 else layers[0]
        perm = None
        if self.pairing == "permute":
            perm = torch.from_numpy(step.rng.permutation(batch_size)).to(device)
        return Mix(layer=layer, lam=lam, perm=perm)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mixed_loss(model, x, y, self.draw(len(y), step, x.device), step.loss_kind)

    @staticmethod
    def mixed_loss(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, mix: Mix, kind: str = "ce"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits) of one batch mixed as ``mix`` says."""
        logits = model(x, mix=mix)
        return mixed_loss(logits, y, mix, kind), logits
