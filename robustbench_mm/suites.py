"""The suite interface: each lens of the benchmark is a function ``SuiteContext -> SuiteOutput``.

Suites register themselves in :data:`SUITES` (``@SUITES.register("adversarial")``); the
evaluation runner knows nothing about what a suite does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .settings import EvalConfig
from .registry import Registry

Key = tuple[str, str, float]  # (suite, test, severity)


@dataclass
class SuiteContext:
    """Everything a suite may use. The model is in eval mode on ``device`` and takes [0, 1] images."""

    model: nn.Module
    x: torch.Tensor  # test images, float32 in [0, 1], NCHW, on the CPU
    y: torch.Tensor  # labels, int64, on the CPU
    num_classes: int
    dataset: str
    config: EvalConfig
    device: torch.device
    clean_logits: torch.Tensor  # float32 logits of the clean test set, on the CPU
    holdout: tuple[torch.Tensor, torch.Tensor] | None = None  # (images, labels) for temperature scaling

    def generator(self, *keys: object) -> torch.Generator:
        """A CPU generator seeded by the evaluation seed and ``keys`` (stable across runs and processes)."""
        text = "/".join([str(self.config.seed), *map(str, keys)])
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)
        return torch.Generator().manual_seed(seed)

    @property
    def clean_correct(self) -> np.ndarray:
        return (self.clean_logits.argmax(1) == self.y).numpy()


@dataclass
class SuiteOutput:
    rows: list[dict] = field(default_factory=list)  # results.row(...) dicts
    per_example: dict[Key, np.ndarray] = field(default_factory=dict)  # bool correctness per test example
    logits: dict[Key, torch.Tensor] = field(default_factory=dict)  # logits under shift, for calibration


SuiteFn = Callable[[SuiteContext], SuiteOutput]
SUITES: Registry[SuiteFn] = Registry("suite")
