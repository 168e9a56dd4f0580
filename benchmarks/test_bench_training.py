"""Training-step time of Manifold Mixup against ERM: same model, same batch, one run.

Target (issue): Manifold Mixup costs at most 5% more per step than ERM. Steps of the two
methods are interleaved so that drift of the machine affects both alike; the ratio of the
medians is reported in ``extra_info`` and printed.
"""

from __future__ import annotations

import numpy as np
import torch
from interleaved import interleaved_medians

from robustbench_mm.data.datasets import load_dataset
from robustbench_mm.methods import Step, create_method
from robustbench_mm.models import create_model
from robustbench_mm.settings import TrainConfig
from robustbench_mm.training.step import make_optimizer, to_training_layout, train_step


def _stepper(method_name: str, x, y):
    torch.manual_seed(0)
    model, _ = to_training_layout(create_model("cnn", 10, 1, 8).train(), torch.device("cpu"), amp=False)
    method = create_method(method_name)
    optimizer = make_optimizer(
        model.parameters(),
        TrainConfig(lr=0.05, weight_decay=5e-4, epochs=1, batch_size=64, schedule="step"),
        torch.device("cpu"),
    )
    randomness = Step(np.random.default_rng(0), torch.Generator())

    def step():
        train_step(model, method, optimizer, x, y, randomness, amp=False)

    return step


def test_manifold_mixup_step_costs_at_most_5_percent_more_than_erm(benchmark):
    data = load_dataset("digits")
    x, y = data.train_x[:64], data.train_y[:64]
    steps = {name: _stepper(name, x, y) for name in ("erm", "manifold-mixup")}
    medians = interleaved_medians(steps, rounds=300, warmup=20)
    erm, mm = medians["erm"], medians["manifold-mixup"]
    ratio = mm / erm
    benchmark.extra_info.update({"erm_ms": erm * 1e3, "manifold_mixup_ms": mm * 1e3, "ratio": ratio})
    print(f"\nERM step {erm * 1e3:.3f} ms, Manifold Mixup step {mm * 1e3:.3f} ms, ratio {ratio:.3f}")
    benchmark.pedantic(steps["manifold-mixup"], rounds=50, iterations=1)
    assert ratio <= 1.05, f"Manifold Mixup step is {100 * (ratio - 1):.1f}% slower than ERM"
