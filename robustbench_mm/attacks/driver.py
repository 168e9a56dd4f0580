"""The one driver every attack runs through: :func:`attack` (and :func:`run_attack`).

It owns everything around an attack's batch function, so no attack can skip it:

* validation of the user's numbers and inputs (one-line :class:`UserError`, :mod:`.registry`);
* eval mode restored afterwards (:func:`evaluating`) and parameters frozen (no parameter
  gradients are ever computed or accumulated, and the caller's ``requires_grad`` flags return);
* batching on the model's device (batch size 0: from free CUDA memory), opt-in bf16 autocast
  + channels_last on CUDA (fp32 by default: see :func:`.precision.precision_mode`);
* only examples classified correctly on clean inputs are attacked (AutoAttack's habit: an
  example misclassified clean is not robust whatever the attack does);
* every adversarial batch is checked: finite, inside [0, 1] and inside the ε-ball
  (:func:`.registry.check_adversarial`);
* with an :class:`.session.AttackSession`, the model's copies and clean verdicts are built once
  for all the calls of an evaluation, and under its shard (``torchrun ... evaluate``) each
  process attacks every N-th batch while all processes receive the whole result. A batch's
  randomness depends only on the caller's generator and the batch's index
  (:func:`batch_generator`), so the numbers are the same for any number of processes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robustbench_mm.attacks.precision import auto_batch_size, precision_mode
from robustbench_mm.attacks.registry import (
    DEFAULT_SETTINGS,
    AttackResult,
    AttackSettings,
    AttackSpec,
    BatchJob,
    check_adversarial,
    check_inputs,
    validate,
)
from robustbench_mm.attacks.session import AttackSession
from robustbench_mm.core.inference import evaluating, frozen, model_device


def batch_generator(generator: torch.Generator, start_state: torch.Tensor, index: int) -> torch.Generator:
    """The generator batch ``index`` of an attack call draws from.

    Batch 0 draws from ``generator`` itself (a one-batch call uses the caller's stream as it is);
    batch b > 0 from a generator seeded by the caller's starting state and b. So what happens
    to a batch does not depend on whether the batches before it ran in this process: sharding
    batches over processes gives the numbers of one process. (It does depend on the batch size,
    which is part of the evaluation settings.)
    """
    if index == 0:
        return generator
    digest = hashlib.sha256(start_state.numpy().tobytes() + index.to_bytes(8, "little")).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


@dataclass
class _Rows:
    """The per-example outputs of one call, on the CPU, filled batch by batch (zeros elsewhere)."""

    correct: torch.Tensor
    l2: torch.Tensor
    linf: torch.Tensor
    logits: torch.Tensor | None
    adv: torch.Tensor | None

    @classmethod
    def empty(cls, x: torch.Tensor, num_classes: int, keep_logits: bool, keep_adv: bool) -> _Rows:
        n = len(x)
        return cls(
            torch.zeros(n, dtype=torch.bool),
            torch.zeros(n),
            torch.zeros(n),
            torch.zeros(n, num_classes) if keep_logits else None,
            torch.zeros_like(x, device="cpu", dtype=torch.float32) if keep_adv else None,
        )

    def fill(
        self, sl: slice, ok: torch.Tensor, adv: torch.Tensor, delta: torch.Tensor, logits: torch.Tensor | None
    ) -> None:
        self.correct[sl] = ok.cpu()
        self.l2[sl] = delta.norm(dim=1).cpu()
        self.linf[sl] = delta.abs().amax(dim=1).cpu() if delta.shape[1] else 0.0
        if self.logits is not None:
            assert logits is not None, "_attack_batch returns logits whenever they are kept"
            self.logits[sl] = logits.cpu()
        if self.adv is not None:
            self.adv[sl] = adv.cpu()

    def gathered(self, session: AttackSession) -> AttackResult:
        """The result over every process's rows."""
        correct, l2, linf, logits, adv = session.gather([self.correct, self.l2, self.linf, self.logits, self.adv])
        assert correct is not None and l2 is not None and linf is not None  # gather keeps None only for a None
        return AttackResult(correct=correct, logits=logits, l2=l2, linf=linf, x_adv=adv)


def _attack_batch(
    spec: AttackSpec, job: BatchJob, precision: str, keep_logits: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Run the batch function on one batch, check its output; (still correct, x_adv, δ, logits)."""
    adv, ok_attack = spec.run(job)
    adv = adv.detach().to(torch.float32)
    check_adversarial(job.x, adv, job.eps if spec.bounded else None, spec.norm, spec.name)
    # the attack's own verdict counts only in fp32: the verdict is always an fp32 forward pass
    ok_known = ok_attack is not None and precision == "fp32"
    ok = job.clean_ok & ok_attack.to(job.x.device) if ok_attack is not None and ok_known else job.clean_ok
    logits = None
    if keep_logits or not ok_known:
        with torch.no_grad():
            logits = job.model(adv).float()
        if not ok_known:
            ok = job.clean_ok & (logits.argmax(1) == job.y)
    delta = (adv - job.x).flatten(1).float()
    return ok, adv, delta, logits if keep_logits else None


def attack(
    name: str,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    num_classes: int,
    settings: AttackSettings = DEFAULT_SETTINGS,
    generator: torch.Generator | None = None,
    keep_logits: bool = False,
    keep_adv: bool = False,
    session: AttackSession | None = None,
    **options: Any,
) -> AttackResult:
    """Run attack ``name`` on every example of ``x`` and report the per-example outcome.

    ``x`` (float, [0, 1], NCHW) and ``y`` (int labels in 0..num_classes-1, one per image) may
    live anywhere; batches go to the model's device. ``settings`` holds the knobs every attack
    shares (steps, restarts, step size, random start, batch size, only-correct, precision: see
    :class:`.registry.AttackSettings`); ``options`` are attack-specific (e.g. ``n_queries`` for
    square; see ``ATTACKS.get(name).options``). ``keep_logits``/``keep_adv``: the result also
    holds the adversarial logits (N, num_classes) / images (like ``x``, float32, on the CPU).
    Randomness comes only from ``generator`` (a CPU generator; default: seeded with 0). Libraries
    that seed torch's global RNG (torchattacks) run inside ``fork_rng``: the caller's global RNG
    state is left as it was. ``session`` (for ``model``) shares the model's copies and clean
    verdicts between calls and says which batches this process attacks; None: one process,
    nothing shared.
    """
    spec = validate(name, eps, num_classes, settings, options)
    check_inputs(x, y, num_classes)
    session = session if session is not None else AttackSession(model)
    if session.model is not model:
        raise ValueError("the AttackSession given to attack() belongs to another model")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = model_device(model)
    rows = _Rows.empty(x, num_classes, keep_logits, keep_adv)
    start_state = generator.get_state()
    with evaluating(model), frozen(model), precision_mode(model, device, settings.precision) as (prec, autocast):
        bs = session.agree_on_batch_size(settings.batch_size or auto_batch_size(model, x, device, autocast))
        grad_model, verdict_model = session.model_copies(spec.use_attack_copy, prec)
        for index, start in enumerate(range(0, len(x), bs)):
            if not session.owns(index):
                continue
            sl = slice(start, min(start + bs, len(x)))
            xb = x[sl].to(device, torch.float32, non_blocking=True)
            yb = y[sl].to(device, non_blocking=True)
            if prec == "bf16":
                xb = xb.contiguous(memory_format=torch.channels_last)
            job = BatchJob(
                model=verdict_model,
                x=xb,
                y=yb,
                eps=float(eps),
                grad_model=grad_model,
                clean_ok=session.clean_verdict(verdict_model, x, y, sl, xb, yb),
                num_classes=num_classes,
                steps=int(settings.steps),
                restarts=int(settings.restarts),
                step_size=settings.step_size,
                random_start=settings.random_start,
                generator=batch_generator(generator, start_state, index),
                only_correct=settings.only_correct,
                autocast=autocast,
                options=dict(options),
            )
            rows.fill(sl, *_attack_batch(spec, job, prec, keep_logits))
    return rows.gathered(session)


def run_attack(
    name: str,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    num_classes: int,
    settings: AttackSettings = DEFAULT_SETTINGS,
    generator: torch.Generator | None = None,
    session: AttackSession | None = None,
    **options: Any,
) -> torch.Tensor:
    """Bool per example: still correctly classified under attack ``name`` at radius ``eps``.

    :func:`attack`'s ``.correct``: a bool tensor (N,) on the CPU. Examples misclassified on clean
    inputs count as not correct. ``settings`` (:class:`.registry.AttackSettings`): the knobs
    every attack shares -- ``steps``/``restarts`` are the iterations and random restarts of
    iterative attacks (FGSM ignores them), ``step_size`` defaults to 2.5·ε/steps for PGD
    (Madry et al.). ``options`` are attack-specific (e.g. ``n_queries`` for square, ``c`` for
    cw-l2); see ``ATTACKS.get(name).options``.
    """
    return attack(
        name,
        model,
        x,
        y,
        eps,
        num_classes=num_classes,
        settings=settings,
        generator=generator,
        session=session,
        **options,
    ).correct
