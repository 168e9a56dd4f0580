"""AugMix, Noisy Feature Mixup and TRADES vs ERM and Manifold Mixup: one digits epoch each, side
by side (the cnn, batch 64, one thread). Expected shape: NFM ~ Manifold Mixup ~ ERM (a few extra
element-wise ops at one layer); AugMix ~ 3 ERM epochs of compute (three views in one forward) plus
its augmentation chains; TRADES ~ 12 (10 KL-PGD steps + two training forwards). The measured
table lives in notes/new_methods.md."""

from __future__ import annotations

import numpy as np
import torch
from interleaved import interleaved_medians

from robustbench_mm.data.datasets import load_dataset, to_float
from robustbench_mm.methods import Step, create_method
from robustbench_mm.models import create_model
from robustbench_mm.settings import TrainConfig
from robustbench_mm.training.step import make_optimizer, to_training_layout, train_step

ROUNDS = 3
METHODS = ("erm", "manifold-mixup", "noisy-feature-mixup", "augmix", "pgd-at", "trades")
LIMITS = {"noisy-feature-mixup": 3, "augmix": 15, "trades": 20}  # ERM epochs, with room for a busy machine


def _epoch(method_name: str, data):
    torch.manual_seed(0)
    model, _ = to_training_layout(create_model("cnn", 10, 1, 8).train(), torch.device("cpu"), amp=False)
    method = create_method(method_name).resolved(data)  # PGD-AT and TRADES: 10 steps at the headline 0.1
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


def test_new_methods_epoch_cost_against_erm(benchmark):
    data = load_dataset("digits")
    epochs = {name: _epoch(name, data) for name in METHODS}
    medians = interleaved_medians(epochs, ROUNDS)
    erm = medians["erm"]
    ratios = {name: seconds / erm for name, seconds in medians.items()}
    benchmark.extra_info.update({f"{name}_epoch_s": s for name, s in medians.items()})
    print()
    for name in METHODS:
        print(f"{name:22s} {medians[name] * 1e3:7.0f} ms/epoch  {ratios[name]:5.2f} x ERM")
    benchmark.pedantic(epochs["noisy-feature-mixup"], rounds=1, iterations=1)
    for name, limit in LIMITS.items():
        assert ratios[name] <= limit, f"a {name} epoch costs {ratios[name]:.1f} ERM epochs"
