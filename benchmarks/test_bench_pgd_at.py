"""PGD adversarial training vs ERM: one digits epoch each, side by side (target: at most 12x)."""

from __future__ import annotations

import numpy as np
import torch
from interleaved import interleaved_medians

from robustbench_mm.data.datasets import load_dataset, to_float
from robustbench_mm.methods import Step, create_method
from robustbench_mm.models import create_model
from robustbench_mm.settings import TrainConfig
from robustbench_mm.training.step import make_optimizer, to_training_layout, train_step

ROUNDS = 5


def _epoch(method_name: str, data):
    torch.manual_seed(0)
    model, _ = to_training_layout(create_model("cnn", 10, 1, 8).train(), torch.device("cpu"), amp=False)
    method = create_method(method_name).resolved(data)  # PGD-AT: 10 steps at the headline radius 0.1
    optimizer = make_optimizer(model.parameters(), TrainConfig(lr=0.05, weight_decay=5e-4), torch.device("cpu"))
    randomness = Step(np.random.default_rng(0), torch.Generator().manual_seed(0))
    x_all = to_float(data.train_x).contiguous(memory_format=torch.channels_last)
    y_all = data.train_y

    def epoch():
        for start in range(0, len(y_all) - 63, 64):
            train_step(
                model, method, optimizer, x_all[start : start + 64], y_all[start : start + 64], randomness, amp=False
            )

    return epoch


def test_pgd_at_epoch_costs_at_most_12_erm_epochs(benchmark):
    data = load_dataset("digits")
    epochs = {name: _epoch(name, data) for name in ("erm", "pgd-at")}
    medians = interleaved_medians(epochs, ROUNDS)
    erm, at = medians["erm"], medians["pgd-at"]
    ratio = at / erm
    benchmark.extra_info.update({"erm_epoch_s": erm, "pgd_at_epoch_s": at, "ratio": ratio})
    print(f"\nERM epoch {erm * 1e3:.0f} ms, PGD-AT epoch (10 steps) {at * 1e3:.0f} ms, ratio {ratio:.2f}")
    benchmark.pedantic(epochs["pgd-at"], rounds=1, iterations=1)
    assert ratio <= 12, f"a PGD-AT epoch costs {ratio:.1f} ERM epochs"
