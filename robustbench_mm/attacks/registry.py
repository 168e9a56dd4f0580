"""The attack registry and the contract between an attack and the driver.

An attack is registered as an :class:`AttackSpec`: its threat model (norm, whether it is
bounded by ε), how many classes it needs, and a *batch function* that turns one
:class:`BatchJob` (a batch of clean images plus the settings) into adversarial images. The
driver (:mod:`.driver`) runs every attack through the checks here, so no attack can skip them:

* :class:`AttackSettings`: the per-call knobs every attack shares (steps, restarts, batch size...);
* :func:`validate`: the user's numbers (one-line :class:`UserError`);
* :func:`check_inputs`: the images and labels an attack is asked to run on;
* :func:`check_adversarial`: every adversarial batch is finite, inside [0, 1] and inside the
  ε-ball. A violation raises :class:`AttackCheckError` -- a broken attack must never produce a
  number.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.registry import Registry

NORMS = ("linf", "l2", "none")
PRECISIONS = ("auto", "fp32", "bf16")
LINF_TOL = 1e-6  # float32 rounding of x + ε stays far below this
L2_TOL = 1e-5


class AttackCheckError(RuntimeError):
    """An attack produced an example outside the threat model (ε-ball or [0, 1]) or non-finite."""


@dataclass(frozen=True)
class AttackSettings:
    """The per-call knobs every attack call shares (attack-specific ones are ``options``).

    ``steps``/``restarts``: iterations and random restarts of iterative attacks (FGSM ignores
    them); ``step_size``: None is the attack's default (2.5·ε/steps for PGD, Madry et al.);
    ``random_start``: PGD starts from a random point of the ε-ball; ``batch_size``: examples per
    batch (0: from free CUDA memory); ``only_correct``: attack only the examples classified
    correctly on clean inputs (the result is the same either way, it saves the work);
    ``precision``: ``fp32`` | ``bf16`` | ``auto`` (see :func:`.precision.precision_mode`).
    Checked by :func:`validate`.
    """

    steps: int = 10
    restarts: int = 1
    step_size: float | None = None
    random_start: bool = True
    batch_size: int = 500
    only_correct: bool = True
    precision: str = "fp32"


DEFAULT_SETTINGS = AttackSettings()


@dataclass
class BatchJob:
    """What a batch function gets: one batch on the model's device, plus the attack settings.

    ``x``/``y`` hold the whole batch; ``clean_ok`` says which examples the model classifies
    correctly. With ``only_correct`` only those are attacked (the rest are not robust anyway);
    random draws are made for the whole batch either way, so both settings give the same result.
    """

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    eps: float
    grad_model: nn.Module  # attack_copy(model): the same function, faster, for the attack's steps
    clean_ok: torch.Tensor  # bool per example: correctly classified on the clean input
    num_classes: int
    steps: int
    restarts: int
    step_size: float | None
    random_start: bool
    generator: torch.Generator
    only_correct: bool
    autocast: Callable[[], contextlib.AbstractContextManager]
    options: dict[str, Any] = field(default_factory=dict)

    def seed(self) -> int:
        """An integer seed drawn from the generator (for libraries that seed the global RNG)."""
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))


# A batch function returns the adversarial images of the whole batch (clean images where it did
# not attack) and, when it knows it, a bool "still correct" per example (None: the driver
# decides by a forward pass).
BatchFn = Callable[[BatchJob], tuple[torch.Tensor, "torch.Tensor | None"]]


@dataclass(frozen=True)
class AttackSpec:
    name: str
    norm: str  # linf | l2 | none (unbounded, minimal-perturbation attacks: cw-l2, deepfool)
    bounded: bool  # ε-bounded: the result is robust accuracy at ε
    run: BatchFn
    min_classes: int = 2
    min_classes_why: str = ""
    options: tuple[str, ...] = ()  # attack-specific keyword options run_attack accepts
    gradient_free: bool = False  # black-box (square): used by the gradient-masking checks
    # one step of length ε (FGSM): its accuracy need not fall monotonically with ε -- a long step
    # can overshoot the adversarial region -- so the monotonicity check leaves it out
    single_step: bool = False
    use_attack_copy: bool = False  # takes its steps on attack_copy(model): the same function, faster
    description: str = ""
    requires: str = ""  # the module of an optional extra the attack needs (checked by validate)


ATTACKS: Registry[AttackSpec] = Registry("attack")


def register(spec: AttackSpec) -> AttackSpec:
    if spec.norm not in NORMS:
        raise ValueError(f"attack {spec.name}: norm must be one of {NORMS}")
    ATTACKS.register(spec.name)(spec)
    return spec


@dataclass
class AttackResult:
    """Per-example outcome of one attack, on the CPU."""

    correct: torch.Tensor  # bool: correct on clean input AND under the attack
    logits: torch.Tensor | None  # float32 logits of the adversarial examples (when asked for)
    l2: torch.Tensor  # ‖x_adv - x‖₂ per example (0 where nothing was changed)
    linf: torch.Tensor  # ‖x_adv - x‖∞ per example
    x_adv: torch.Tensor | None = None  # when asked for


def validate(
    name: str,
    eps: float,
    num_classes: int,
    settings: AttackSettings = DEFAULT_SETTINGS,
    options: dict[str, Any] | None = None,
) -> AttackSpec:
    """Check the user's settings for attack ``name``; return its spec or raise one-line UserError."""
    spec = ATTACKS.get(name)
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise UserError(f"ε must be a number, got {eps!r}") from None
    if not (eps >= 0 and math.isfinite(eps)):
        raise UserError(f"ε must be >= 0 and finite, got {eps} (attack {name})")
    if spec.norm == "linf" and eps > 1.0:
        raise UserError(
            f"ε={eps} is larger than the [0,1] pixel range: an L2 radius given to the L∞ attack {name}? use --eps-l2"
        )
    if num_classes < spec.min_classes:
        raise UserError(
            f"attack {name} needs at least {spec.min_classes} classes{spec.min_classes_why}; "
            f"the dataset has {num_classes}"
        )
    _check_settings(settings)
    if spec.requires and importlib.util.find_spec(spec.requires) is None:
        raise UserError(
            f"attack {name} needs the package {spec.requires}: pip install {spec.requires} "
            "(the extra robustbench-mm[autoattack])"
        )
    unknown = sorted(set(options or {}) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) or "none"
        shared = [k for k in unknown if k in AttackSettings.__dataclass_fields__]
        hint = f" ({', '.join(shared)}: pass settings=AttackSettings(...))" if shared else ""
        raise UserError(f"attack {name} has no option {', '.join(unknown)}; valid: {valid}{hint}")
    return spec


def _check_settings(settings: AttackSettings) -> None:
    """One-line UserError unless the per-call knobs are usable (any attack)."""
    if int(settings.steps) <= 0:
        raise UserError(f"attack steps must be > 0, got {settings.steps}")
    if int(settings.restarts) <= 0:
        raise UserError(f"attack restarts must be > 0, got {settings.restarts}")
    step_size = settings.step_size
    if step_size is not None and not (step_size > 0 and math.isfinite(step_size)):
        raise UserError(f"attack step size must be > 0, got {step_size}")
    if settings.precision not in PRECISIONS:
        raise UserError(f"unknown attack precision {settings.precision!r}; valid: {', '.join(PRECISIONS)}")
    if settings.batch_size < 0:
        raise UserError(f"attack batch size must be >= 0 (0: from free memory), got {settings.batch_size}")


def check_inputs(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> None:
    """One-line UserError unless ``x`` is a float NCHW batch in [0, 1] and ``y`` its labels."""
    if x.dim() != 4:
        raise UserError(f"attacks take NCHW image batches, got shape {tuple(x.shape)}")
    if len(x) != len(y):
        raise UserError(f"{len(x)} images but {len(y)} labels")
    if not x.is_floating_point():
        raise UserError(f"attacks take float images in [0, 1], got dtype {x.dtype}")
    if x.numel() and not (torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise UserError("attacks take images in [0, 1]; these are outside it (normalized twice?)")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise UserError(f"labels must be in 0..{num_classes - 1}")


def check_adversarial(x: torch.Tensor, x_adv: torch.Tensor, eps: float | None, norm: str, name: str = "attack") -> None:
    """Raise :class:`AttackCheckError` unless ``x_adv`` is finite, in [0, 1] and within ε of ``x``.

    ``eps=None`` (unbounded attacks) checks the pixel range only.
    """
    if x_adv.shape != x.shape:
        raise AttackCheckError(f"{name}: adversarial batch has shape {tuple(x_adv.shape)}, expected {tuple(x.shape)}")
    if not torch.isfinite(x_adv).all():
        raise AttackCheckError(f"{name}: adversarial examples contain NaN or inf")
    lo, hi = float(x_adv.min()) if x_adv.numel() else 0.0, float(x_adv.max()) if x_adv.numel() else 0.0
    if lo < 0.0 or hi > 1.0:
        raise AttackCheckError(f"{name}: adversarial examples leave [0, 1] (min {lo:.6g}, max {hi:.6g})")
    if eps is None or norm == "none" or not x.numel():
        return
    delta = (x_adv.float() - x.float()).flatten(1)
    if norm == "linf":
        worst = float(delta.abs().amax())
        if worst > eps + LINF_TOL:
            raise AttackCheckError(f"{name}: ‖δ‖∞ = {worst:.8g} exceeds ε = {eps:.8g}")
    elif norm == "l2":
        worst = float(delta.norm(dim=1).amax())
        if worst > eps + L2_TOL:
            raise AttackCheckError(f"{name}: ‖δ‖₂ = {worst:.8g} exceeds ε = {eps:.8g}")
