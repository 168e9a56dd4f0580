"""AugMix (Hendrycks et al., ICLR 2020): augmentation chains mixed together, and a Jensen-Shannon
consistency loss between an image and two AugMix views of it.

Each view is ``m · x + (1 - m) · Σ_i w_i · chain_i(x)`` with ``width`` chains, each a sequence of
1-3 operations (``depth``; -1: drawn per image, as the paper), ``w ~ Dirichlet(α)``, ``m ~ Beta(α,
α)``, α = 1, severity 3. The loss is ``CE(f(x), y) + λ · JS(p(x), p(x'), p(x''))`` with λ = 12 and
the three batches in one forward pass, as the reference code (google-research/augmix) does.

The operations are the paper's (autocontrast, equalize, posterize, rotate, solarize, shear and
translate in x and y), with its magnitudes at a severity; none is one of the common corruptions
the corruption lens applies (the paper's rule: no contrast, brightness, colour, sharpness, noise
or blur). Rotation, shear and translation are close relatives of the deformation lens' rotate
and shear, so AugMix's deformation scores are not out-of-distribution scores (``--augmix-ops``
drops them). Operations are torchvision's v2 functional ops on whole groups of images on the
device: every draw (operations, depths, magnitudes, weights) comes from the run's seeded host
generator, and each (chain, step, operation) group shares one magnitude where the reference
draws one per image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2 import functional as TF

from robustbench_mm.methods.base import Method, Step, register_method
from robustbench_mm.methods.losses import hard_target_loss
from robustbench_mm.settings.fields import setting


def _level(rng: np.random.Generator, severity: float, maxval: float) -> float:
    """The reference's ``float_parameter(sample_level(severity), maxval)``: U(0.1, severity) / 10 · maxval."""
    return float(rng.uniform(0.1, severity)) * maxval / 10


def _sign(rng: np.random.Generator) -> float:
    return -1.0 if rng.uniform() < 0.5 else 1.0


BILINEAR = TF.InterpolationMode.BILINEAR  # the reference's PIL resampling


def _affine(h, angle=0.0, translate=(0.0, 0.0), shear=(0.0, 0.0)) -> torch.Tensor:
    return TF.affine(h, angle=angle, translate=list(translate), scale=1.0, shear=list(shear), interpolation=BILINEAR)


def _shear_degrees(rng: np.random.Generator, severity: float) -> float:
    # the reference shears by a factor up to 0.3 (PIL's affine matrix); v2 takes the angle
    return _sign(rng) * float(np.degrees(np.arctan(_level(rng, severity, 0.3))))


# name -> (images, rng, severity) -> images; magnitudes as in the reference's augmentations.py
OPS: dict[str, Callable[[torch.Tensor, np.random.Generator, float], torch.Tensor]] = {
    "autocontrast": lambda h, rng, s: TF.autocontrast(h),
    "equalize": lambda h, rng, s: TF.equalize(h),
    "posterize": lambda h, rng, s: TF.posterize(h, 4 - int(_level(rng, s, 4))),
    "rotate": lambda h, rng, s: TF.rotate(h, _sign(rng) * int(_level(rng, s, 30)), BILINEAR),
    "solarize": lambda h, rng, s: TF.solarize(h, (256 - int(_level(rng, s, 256))) / 255),
    "shear_x": lambda h, rng, s: _affine(h, shear=(_shear_degrees(rng, s), 0.0)),
    "shear_y": lambda h, rng, s: _affine(h, shear=(0.0, _shear_degrees(rng, s))),
    "translate_x": lambda h, rng, s: _affine(h, translate=(_sign(rng) * int(_level(rng, s, h.shape[-1] / 3)), 0.0)),
    "translate_y": lambda h, rng, s: _affine(h, translate=(0.0, _sign(rng) * int(_level(rng, s, h.shape[-2] / 3)))),
}


def jensen_shannon(logits: list[torch.Tensor]) -> torch.Tensor:
    """The reference's consistency term: mean over the views of KL(p_view || mixture), batch-averaged."""
    probs = [F.softmax(z.float(), dim=1) for z in logits]
    log_mixture = torch.clamp(torch.stack(probs).mean(0), 1e-7, 1).log()
    return torch.stack([F.kl_div(log_mixture, p, reduction="batchmean") for p in probs]).mean()


@register_method
@dataclass
class AugMix(Method):
    name = "augmix"
    label = "AugMix"
    color = "tab:cyan"
    order = 45
    description = "AugMix (Hendrycks et al. 2020): mixed augmentation chains + Jensen-Shannon consistency"

    augmix_width: int = setting(3, "AugMix: augmentation chains mixed per view", low=1, high=16)
    augmix_depth: int = setting(
        -1, "AugMix: operations per chain (-1: 1-3, drawn per image; 0: none, each chain is the image)", low=-1, high=16
    )
    augmix_severity: float = setting(3.0, "AugMix: operation severity (1-10)", low=1, high=10)
    augmix_alpha: float = setting(
        1.0, "AugMix: Dirichlet/Beta parameter of the mixing weights", low=0, low_open=True, high=1000
    )
    jsd_weight: float = setting(
        12.0,
        "AugMix: weight λ of the Jensen-Shannon consistency loss (0: none, cross-entropy on the clean view)",
        low=0,
        high=1000,
    )
    augmix_ops: list[str] = setting(
        list(OPS), "AugMix: the operations chains draw from", choices=tuple(OPS), unique=True
    )

    def augment(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """One AugMix view of the batch ``x`` (values in [0, 1]), every draw from ``rng``."""
        n, width, ops = len(x), self.augmix_width, self.augmix_ops
        max_depth = self.augmix_depth if self.augmix_depth > 0 else 3
        weights = torch.from_numpy(rng.dirichlet([self.augmix_alpha] * width, size=n)).to(x)
        m = torch.from_numpy(rng.beta(self.augmix_alpha, self.augmix_alpha, size=n)).to(x).view(n, 1, 1, 1)
        mixed = torch.zeros_like(x)
        for i in range(width):
            depth = np.full(n, max_depth) if self.augmix_depth > 0 else rng.integers(1, 4, size=n)
            chosen = rng.integers(len(ops), size=(max_depth, n))
            h = x.clone()
            for step in range(max_depth):
                for k, op in enumerate(ops):
                    rows = np.flatnonzero((chosen[step] == k) & (step < depth))
                    if len(rows):
                        index = torch.from_numpy(rows).to(x.device)
                        h[index] = OPS[op](h[index], rng, self.augmix_severity).clamp_(0, 1)
            mixed += weights[:, i].view(n, 1, 1, 1) * h
        return torch.lerp(mixed, x, m)  # m · x + (1 - m) · mixed

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        views = [x, self.augment(x, step.rng), self.augment(x, step.rng)]
        logits = model(torch.cat(views)).split(len(x))
        consistency = jensen_shannon(list(logits)) if self.jsd_weight > 0 else 0.0
        return hard_target_loss(logits[0], y, step.loss_kind) + self.jsd_weight * consistency, logits[0]
