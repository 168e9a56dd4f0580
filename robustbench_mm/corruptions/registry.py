"""The corruption registry: every family module (noise, blur, weather, digital) registers here."""

from __future__ import annotations

from collections.abc import Callable

import torch

from robustbench_mm.core.registry import Registry

Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]

CORRUPTIONS: Registry[Corruption] = Registry("corruption")
