"""torchattacks-backed attacks: APGD-CE and APGD-T (L∞ and L2), FAB, Square, CW-L2, DeepFool.

(The standard AutoAttack itself is the original code: :mod:`.standard`.)

The adapter keeps torchattacks' attack code and leaves its habits we do not want:

* our models normalize inside, so ``set_normalization_used`` is never called;
* torchattacks seeds torch's *global* RNG (``torch.random.manual_seed(self.seed)``); we draw
  the seed from the caller's generator and run inside ``torch.random.fork_rng`` so the global
  RNG state is untouched and results depend on our generator only;
* torchattacks' defaults assume 10 classes; the number of classes comes from the dataset and,
  as in the original AutoAttack, targeted attacks use at most 9 target classes;
* its outputs go through the same ε-ball/[0, 1] check as ours (in :func:`.driver.attack`).

These attacks run in float32 whatever the requested precision: they convert losses to NumPy,
which has no bfloat16.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import torch
import torchattacks

from robustbench_mm.attacks.registry import AttackSpec, BatchJob, register

_NORM = {"linf": "Linf", "l2": "L2"}


def _targets(num_classes: int) -> int:
    # AutoAttack's n_target_classes = 9: the 9 most likely wrong classes (all of them for 10 classes)
    return min(9, num_classes - 1)


@contextlib.contextmanager
def _own_rng(device: torch.device):
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=devices):
        yield


def _spec(name: str, norm: str, bounded: bool, build, **kw) -> AttackSpec:
    return register(AttackSpec(name, norm, bounded, _zoo(build), use_attack_copy=True, **kw))


def _zoo(build: Callable[[BatchJob], torchattacks.Attack]):
    """A batch function running the torchattacks attack ``build(job)`` on the job's batch."""

    def run(job: BatchJob):
        todo = job.clean_ok.nonzero().squeeze(1) if job.only_correct else None
        adv = job.x.clone()
        if todo is not None and todo.numel() == 0:
            return adv, None
        # the attack sees attack_copy(model) (the same function, faster); the verdict is the driver's
        sub = dataclasses.replace(
            job,
            model=job.grad_model,
            x=job.x if todo is None else job.x[todo],
            y=job.y if todo is None else job.y[todo],
        )
        with _own_rng(job.x.device):
            torch.manual_seed(sub.seed())
            atk = build(sub)
            out = atk(sub.x, sub.y).detach()
        if todo is None:
            return out, None
        adv[todo] = out.to(adv.dtype)
        return adv, None  # verdict by the driver's own forward pass

    return run


def _apgd_ce(job: BatchJob):
    return torchattacks.APGD(
        job.model,
        norm=_NORM[job.options.get("norm", "linf")],
        eps=job.eps,
        steps=job.steps,
        n_restarts=job.restarts,
        seed=job.seed(),
        loss="ce",
        rho=0.75,
    )


def _apgd_t(job: BatchJob):
    # targeted APGD on the DLR loss, AutoAttack's "apgd-t": the 9 likeliest wrong classes in turn
    atk = torchattacks.APGDT(
        job.model,
        norm=_NORM[job.options.get("norm", "linf")],
        eps=job.eps,
        steps=job.steps,
        n_restarts=job.restarts,
        seed=job.seed(),
        n_classes=job.num_classes,
    )
    atk.n_target_classes = _targets(job.num_classes)
    return atk


def _with_norm(build: Callable[[BatchJob], torchattacks.Attack], norm: str):
    def with_norm(job: BatchJob):
        return build(dataclasses.replace(job, options={**job.options, "norm": norm}))

    return with_norm


def _fab(job: BatchJob):
    return torchattacks.FAB(
        job.model,
        norm="Linf",
        eps=job.eps,
        steps=job.steps,
        n_restarts=job.restarts,
        seed=job.seed(),
        multi_targeted=False,
        n_classes=job.num_classes,
    )


def _square(job: BatchJob):
    return torchattacks.Square(
        job.model,
        norm="Linf",
        eps=job.eps,
        n_queries=int(job.options.get("n_queries", 1000)),
        n_restarts=job.restarts,
        p_init=0.8,
        loss="margin",
        seed=job.seed(),
    )


def _cw(job: BatchJob):
    return torchattacks.CW(
        job.model,
        c=float(job.options.get("c", 1.0)),
        kappa=float(job.options.get("kappa", 0.0)),
        steps=job.steps,
        lr=float(job.options.get("lr", 0.01)),
    )


def _deepfool(job: BatchJob):
    return torchattacks.DeepFool(job.model, steps=job.steps, overshoot=float(job.options.get("overshoot", 0.02)))


_DLR = " (targeted DLR loss: the 4 largest logits; AutoAttack refuses 3 classes)"
_spec("apgd-ce", "linf", True, _apgd_ce, description="APGD on cross-entropy (torchattacks' port of AutoAttack's)")
_spec(
    "apgd-t",
    "linf",
    True,
    _apgd_t,
    min_classes=4,
    min_classes_why=_DLR,
    description="targeted APGD on the DLR loss, 9 targets (torchattacks' port of AutoAttack's apgd-t)",
)
_spec(
    "apgd-ce-l2",
    "l2",
    True,
    _with_norm(_apgd_ce, "l2"),
    description="APGD-L2 on cross-entropy (torchattacks' port of AutoAttack's)",
)
_spec(
    "apgd-t-l2",
    "l2",
    True,
    _with_norm(_apgd_t, "l2"),
    min_classes=4,
    min_classes_why=_DLR,
    description="targeted APGD-L2 on the DLR loss, 9 targets (torchattacks' port of AutoAttack's apgd-t)",
)
_spec("fab", "linf", True, _fab, description="FAB-L∞ (torchattacks)")
_spec(
    "square",
    "linf",
    True,
    _square,
    options=("n_queries",),
    gradient_free=True,
    description="Square attack, black-box (torchattacks)",
)
_spec(
    "cw-l2",
    "none",
    False,
    _cw,
    options=("c", "kappa", "lr"),
    description="Carlini-Wagner L2, minimal perturbation (torchattacks)",
)
_spec(
    "deepfool",
    "none",
    False,
    _deepfool,
    options=("overshoot",),
    description="DeepFool, minimal perturbation (torchattacks)",
)
