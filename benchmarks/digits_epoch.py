"""One training epoch on the digits set as a callable, for side-by-side method costs: the cnn,
batch 64, SGD as the loop configures it, the real training step (`training.step.train_step`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from robustbench_mm.data.datasets import DatasetSplits, to_float
from robustbench_mm.methods import Step, create_method
from robustbench_mm.models import create_model
from robustbench_mm.settings import TrainConfig
from robustbench_mm.training.step import make_optimizer, to_training_layout, train_step


def digits_epoch(method_name: str, data: DatasetSplits) -> Callable[[], None]:
    """A function that trains one epoch of ``method_name`` (PGD-AT, TRADES: 10 steps at the headline 0.1)."""
    torch.manual_seed(0)
    model, _ = to_training_layout(create_model("cnn", 10, 1, 8).train(), torch.device("cpu"), amp=False)
    method = create_method(method_name).resolved(data)
    optimizer = make_optimizer(
        model.parameters(),
        TrainConfig(lr=0.05, weight_decay=5e-4, epochs=1, batch_size=64, schedule="step"),
        torch.device("cpu"),
    )
    randomness = Step(np.random.default_rng(0), torch.Generator().manual_seed(0))
    x_all = to_float(data.train_x).contiguous(memory_format=torch.channels_last)
    y_all = data.train_y

    def epoch() -> None:
        for start in range(0, len(y_all) - 63, 64):
            train_step(
                model, method, optimizer, x_all[start : start + 64], y_all[start : start + 64], randomness, amp=False
            )

    return epoch
