"""Synthetic results in the real schema: 3 methods x 2 seeds, every suite, plus reliability bins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from robustbench_mm.core.results import frame, row
from robustbench_mm.evaluation import calibration

METHODS = {"erm": 0.0, "mixup": 0.08, "manifold-mixup": 0.12}  # method -> robustness bonus
SEEDS = (0, 1)
EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
DEFORMATIONS = {"rotate": (20, 40, 60), "shear": (28.6, 57.3), "zoom-in": (60, 80), "zoom-out": (120, 140)}
CORRUPTIONS = ("gaussian_noise", "defocus_blur", "fog", "contrast")


def _run_rows(method: str, seed: int, rng: np.random.Generator) -> list[dict]:
    bonus, n = METHODS[method], 1000
    noise = lambda: rng.normal(0, 0.015)  # noqa: E731  seed-to-seed spread for the bands
    rows = [row("clean", "clean", 0, "accuracy", 0.92 + noise(), n)]
    for i, eps in enumerate(EPS):
        rows.append(row("adversarial", "fgsm", eps, "accuracy", 0.7 - 0.12 * i + bonus + noise(), n))
        rows.append(row("adversarial", "pgd-linf", eps, "accuracy", 0.6 - 0.15 * i + bonus / 3 + noise(), n))
        rows.append(row("adversarial", "worst-case", eps, "accuracy", 0.55 - 0.14 * i + bonus / 3 + noise(), n))
    for test, severities in DEFORMATIONS.items():
        for k, s in enumerate(severities):
            rows.append(row("deformation", test, s, "accuracy", 0.8 - 0.15 * k + bonus + noise(), n))
    for c in CORRUPTIONS:
        for level in range(1, 6):
            rows.append(row("corruption", c, level, "accuracy", 0.9 - 0.1 * level + bonus / 2 + noise(), n))
    logits, labels = _logits(method, seed)
    rows += calibration.calibration_rows(logits, labels, temperature=1.5)
    return rows


def _logits(method: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Over-confident ERM, milder mixup: scaled calibrated logits."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(1000, 10, generator=g) * 2.5
    y = torch.multinomial(z.softmax(1), 1, generator=g).squeeze(1)
    return z * (2.0 - 4 * METHODS[method]), y


def synthetic_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frames, bins = [], []
    for method in METHODS:
        for seed in SEEDS:
            identity = dict(run=f"{method}-s{seed}", dataset="digits", arch="cnn", method=method, seed=seed)
            frames.append(frame(_run_rows(method, seed, rng), identity))
            bins.append(calibration.reliability_bins(*_logits(method, seed)).assign(**identity))
    return pd.concat(frames, ignore_index=True), pd.concat(bins, ignore_index=True)
