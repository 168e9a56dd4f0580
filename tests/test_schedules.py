"""Learning-rate schedules, tested on the schedule itself (pure functions of the step)."""

from __future__ import annotations

import math

import pytest
import torch

from robustbench_mm.training import schedules
from robustbench_mm.training.schedules import lr_factor

# Optimizer steps of a 1-epoch run: the training split minus the 10% calibration holdout,
# in whole batches (train.py drops the last partial batch).
DIGITS_STEPS = (1437 - round(0.1 * 1437)) // 64  # 1,437 digits training images, batch 64 -> 20 steps
MNIST8K_STEPS = (8000 - 800) // 128
MNIST_STEPS = (60000 - 6000) // 128


@pytest.mark.parametrize("steps", [DIGITS_STEPS, MNIST8K_STEPS, MNIST_STEPS])
def test_one_epoch_trains_near_the_full_rate_for_most_of_the_epoch(steps):
    factors = [lr_factor("trapezoid", s, steps, steps) for s in range(steps)]
    assert sum(f >= 0.9 for f in factors) > 0.6 * steps
    assert factors[0] > 0 and factors[-1] > 0  # no step is wasted at lr 0
    assert min(factors[-3:]) < 0.35  # and it still anneals within its single epoch


def test_the_old_step_schedule_at_one_epoch_never_divides_before_the_epoch_ends():
    steps = DIGITS_STEPS
    assert all(lr_factor("step", s, steps, steps) == 1.0 for s in range(steps))
    assert schedules.default_milestones(30) == [10, 20]  # the paper's 1/3 and 2/3, unchanged for digits
    assert schedules.default_milestones(2) == [1]


def test_step_schedule_is_per_epoch_with_the_given_milestones():
    per_epoch = 7
    factors = [lr_factor("step", s, 9 * per_epoch, per_epoch, [3, 6]) for s in range(9 * per_epoch)]
    expected = [1.0] * 21 + [0.1] * 21 + [0.1**2] * 21
    assert factors == pytest.approx(expected)


def test_trapezoid_shape_and_length_independence():
    total = 1000
    f = [lr_factor("trapezoid", s, total, 100) for s in range(total)]
    warm = schedules.warmup_steps(total)
    assert f[:warm] == pytest.approx([(s + 1) / warm for s in range(warm)])
    assert f[warm : total - 300] == [1.0] * (total - 300 - warm)
    assert f[-1] == pytest.approx(1 / 300) and all(a >= b for a, b in zip(f[warm:], f[warm + 1 :], strict=False))
    # the shape depends on the share of training done, not on the number of epochs
    long = [lr_factor("trapezoid", s, 10 * total, 100) for s in range(0, 10 * total, 10)]
    assert max(abs(a - b) for a, b in zip(long[50:], f[50:], strict=True)) < 0.01


def test_cosine_has_a_warmup_then_follows_torch_cosine_annealing():
    total = 200
    warm = schedules.warmup_steps(total)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warm + 1)
    expected = []
    for _ in range(total - warm):
        optimizer.step()
        reference.step()
        expected.append(optimizer.param_groups[0]["lr"])
    ours = [lr_factor("cosine", s, total, 10) for s in range(warm, total)]
    assert ours == pytest.approx(expected, abs=1e-9)
    assert [lr_factor("cosine", s, total, 10) for s in range(warm)] == pytest.approx(
        [(s + 1) / warm for s in range(warm)]
    )


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="valid: step, cosine, trapezoid"):
        lr_factor("linear", 0, 10, 10)
    assert math.isclose(lr_factor("cosine", 0, 1, 1), 1.0)
