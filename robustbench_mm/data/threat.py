"""Threat models: the attack radii a dataset is evaluated at, the one the headline quotes, and how
radii are written.

Each dataset's card (:mod:`.cards`) names its threat model; an image folder gets the one its
images look like (:func:`threat_for_shape`), and the report says which was picked. ``--eps`` and
``--eps-l2`` still override the radii.

Sources for the radii:

* 28×28 grey (MNIST, Fashion-MNIST): L∞ 0.3 is the standard claim since Madry et al. (2018,
  "Towards Deep Learning Models Resistant to Adversarial Attacks"), 0.1 and 0.2 the weaker ones
  (e.g. Wong & Kolter 2018); L2 2.0 is the usual large radius (Croce & Hein 2020, AutoAttack's
  MNIST evaluation), 0.5 and 1 smaller ones.
* 32×32 colour (CIFAR-10/100, SVHN): L∞ 8/255 is RobustBench's CIFAR threat model (Croce et al.
  2021) and Madry et al.'s; 1, 2 and 4/255 trace the curve. L2 0.5 is RobustBench's L2 radius.
* digits (8×8, 17 grey levels): measured for this project (see ``evaluation/adversarial.py``): the
  8-bit radii are below a quarter of one grey level there, so the grid runs from "mostly
  robust" (0.025) to "broken" (0.2), with the headline 0.1 where ERM keeps about half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ThreatModel:
    name: str  # what the report calls it
    linf: tuple[float, ...]  # L∞ radii, pixel scale [0, 1]
    l2: tuple[float, ...]  # L2 radii
    headline: float  # the L∞ radius the headline quotes
    levels: int | None = None  # 255: radii are written as k/255 (8-bit data)

    @classmethod
    def from_table(cls, table: Any) -> ThreatModel | None:
        """A threat model as evaluation.toml records it (None: not recorded, or not readable)."""
        try:
            return cls(
                str(table["name"]),
                tuple(map(float, table["linf"])),
                tuple(map(float, table["l2"])),
                float(table["headline"]),
                int(table["levels"]) if table.get("levels") else None,
            )
        except (TypeError, KeyError, ValueError, AttributeError):
            return None

    def show(self, eps: float) -> str:
        """``8/255`` for an 8-bit threat model's grey-level radii, ``0.3`` otherwise."""
        if self.levels:
            steps = eps * self.levels
            # stored radii keep 6 significant digits (metrics.csv): 0.0313725 is 8/255
            if 0 < eps < 1 and abs(steps - round(steps)) < 1e-3:  # 1, not 255/255
                return f"{round(steps)}/{self.levels}"
        return f"{eps:.4g}"


DIGITS = ThreatModel("digits (8×8, 17 grey levels)", (0.025, 0.05, 0.1, 0.15, 0.2), (0.25, 0.5, 1.0), 0.1)
GREY28 = ThreatModel("28×28 grey (MNIST-like)", (0.05, 0.1, 0.2, 0.3), (0.5, 1.0, 2.0), 0.3)
COLOUR32 = ThreatModel("32×32 colour (CIFAR-like)", (1 / 255, 2 / 255, 4 / 255, 8 / 255), (0.25, 0.5), 8 / 255, 255)


def threat_for_shape(channels: int, size: int) -> ThreatModel:
    """An image folder's threat model: by channels and size, the nearest registered kind."""
    if size <= 12:
        return DIGITS
    if channels == 1:
        return GREY28
    return COLOUR32


def headline_radius(grid: list[float], threat: ThreatModel) -> float | None:
    """The radius the headline quotes: the threat model's, when the grid holds it (else the
    grid's middle radius, for a user's own --eps)."""
    positive = sorted(e for e in grid if e > 0)
    for eps in positive:
        if math.isclose(eps, threat.headline, rel_tol=1e-5):  # metrics.csv keeps 6 significant digits
            return eps
    return positive[len(positive) // 2] if positive else None
