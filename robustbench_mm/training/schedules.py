"""Learning-rate schedules: the lr multiplier at every optimizer step, as pure functions.

Evaluated per step, not per epoch, so a schedule means the same thing whether a run lasts
one epoch or hundreds: a 1-epoch run warms up for a few steps, trains at the full rate and
anneals within its single epoch, where a per-epoch step schedule would have spent the whole
epoch at one value (the old default divided the lr by 10 before the first step of a 1-epoch
run).

- ``step``: the paper's shape (Verma et al. 2019, App. C: lr ÷10 at epochs 400 and 800 of
  1,200), ÷10 at each milestone epoch; kept for the paper presets.
- ``cosine``: linear warm-up, then half a cosine down to 0 (Loshchilov & Hutter 2017, SGDR,
  with the warm-up of Goyal et al. 2017).
- ``trapezoid``: linear warm-up, constant, then a linear decay to 0 over the last part of
  training ("warmup-stable-decay"; Hägele et al. 2024 find it matches cosine with a decay
  over the last ~20% of steps; airbench's CIFAR-10 speed runs use the same linear shape).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from robustbench_mm.settings.train import SCHEDULES  # the names (a setting's choices); the shapes are here

WARMUP_FRACTION = 0.03  # of all steps: enough for BatchNorm statistics and momentum to settle
MAX_WARMUP_STEPS = 300
DECAY_FRACTION = 0.3  # trapezoid: the share of steps spent decaying to 0


def warmup_steps(total_steps: int, fraction: float = WARMUP_FRACTION, cap: int = MAX_WARMUP_STEPS) -> int:
    """Warm-up length: a small share of training, at least one step, at most ``cap`` steps."""
    return max(1, min(cap, round(fraction * total_steps)))


def _warmup(step: int, warmup: int) -> float:
    # (step + 1) / warmup: the first step already moves, the warm-up's last step is at full rate
    return min(1.0, (step + 1) / warmup)


def cosine_factor(step: int, total_steps: int, warmup: int | None = None) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from 1 down to (not reaching) 0."""
    warmup = warmup_steps(total_steps) if warmup is None else warmup
    if step < warmup:
        return _warmup(step, warmup)
    progress = (step - warmup + 1) / max(1, total_steps - warmup + 1)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def trapezoid_factor(
    step: int, total_steps: int, warmup: int | None = None, decay_fraction: float = DECAY_FRACTION
) -> float:
    """Linear warm-up, 1 until the last ``decay_fraction`` of the steps, then linear to 0.

    The last step trains at 1/decay_steps of the rate, not at 0 (a step at lr 0 is wasted).
    """
    warmup = warmup_steps(total_steps) if warmup is None else warmup
    decay = max(1, round(decay_fraction * total_steps))
    if step < warmup:
        return _warmup(step, warmup)
    return min(1.0, (total_steps - step) / decay)


def default_milestones(epochs: int) -> list[int]:
    """÷10 at 1/3 and 2/3 of training (the paper's 400 and 800 of 1,200), never before epoch 1 ends."""
    return sorted({max(1, round(epochs / 3)), max(1, round(2 * epochs / 3))})


def step_factor(step: int, steps_per_epoch: int, epochs: int, milestones: Sequence[int] | None = None) -> float:
    """0.1 ** (milestones passed): constant within an epoch, as in the paper."""
    epoch = step // max(1, steps_per_epoch)
    marks = list(milestones) if milestones else default_milestones(epochs)
    return 0.1 ** sum(epoch >= mark for mark in marks)


def lr_factor(
    schedule: str, step: int, total_steps: int, steps_per_epoch: int, milestones: Sequence[int] | None = None
) -> float:
    """The lr multiplier at optimizer step ``step`` (0-based) of ``total_steps``."""
    if schedule == "step":
        return step_factor(step, steps_per_epoch, math.ceil(total_steps / max(1, steps_per_epoch)), milestones)
    if schedule == "cosine":
        return cosine_factor(step, total_steps)
    if schedule == "trapezoid":
        return trapezoid_factor(step, total_steps)
    raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
