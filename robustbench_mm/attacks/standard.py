"""``autoattack``: the standard AutoAttack, run by the original code (Croce & Hein 2020).

The original implementation is on the package index as ``pyautoattack`` (MIT; the optional extra
``robustbench-mm[autoattack]``). Its ``version='standard'`` settings are fixed, as the paper
fixes them, and not taken from ``--pgd-steps``: APGD-CE, APGD-T (9 target classes), FAB-T
(9 target classes), Square (5,000 queries), 100 iterations each, one restart. Each attack runs on
the examples the ones before it left standing. With fewer than 10 classes the targeted attacks
take every wrong class (the original would ask for 9).

The adapter only keeps the original's habits we do not want out of the caller's process: it
seeds torch's global RNG (we run it inside ``fork_rng`` with a seed drawn from our generator),
and the driver checks its output like any other attack's.
"""

from __future__ import annotations

import logging

import torch

from robustbench_mm.attacks.registry import AttackSpec, BatchJob, register
from robustbench_mm.attacks.zoo import _own_rng, _targets

SETTINGS = (
    "the original standard AutoAttack (pyautoattack, Croce & Hein 2020): APGD-CE, APGD-T (9 targets), "
    "FAB-T (9 targets), Square (5,000 queries), 100 iterations, 1 restart; fixed, not from --pgd-steps"
)
_NORM = {"linf": "Linf", "l2": "L2"}


def _standard(norm: str):
    def run(job: BatchJob):
        from pyautoattack import AutoAttack  # optional extra: checked by validate() before any attack

        adv = job.x.clone()
        todo = job.clean_ok.nonzero().squeeze(1) if job.only_correct else torch.arange(len(job.x))
        if todo.numel() == 0:
            return adv, None
        x, y = job.x[todo], job.y[todo]
        seed = job.seed()
        with _own_rng(job.x.device):
            atk = AutoAttack(
                job.grad_model, eps=job.eps, norm=_NORM[norm], seed=seed, version="standard", device=x.device
            )
            atk.apgd_targeted.n_target_classes = atk.fab.n_target_classes = _targets(job.num_classes)
            atk.verbose = False
            quiet = logging.getLogger("auto-attack")
            level, quiet.level = quiet.level, logging.ERROR  # its checks warn on every batch
            try:
                out, _ = atk.run_standard_evaluation(x, y, batch_size=len(x))
            finally:
                quiet.setLevel(level)
        adv[todo] = out.detach().to(adv.dtype)
        return adv, None  # verdict by the driver's own forward pass

    return run


_WHY = " (targeted DLR loss: the 4 largest logits; AutoAttack refuses 3 classes)"
for _name, _norm in (("autoattack", "linf"), ("autoattack-l2", "l2")):
    register(
        AttackSpec(
            _name,
            _norm,
            True,
            _standard(_norm),
            min_classes=4,
            min_classes_why=_WHY,
            use_attack_copy=True,
            requires="pyautoattack",
            description=SETTINGS.replace("AutoAttack", f"AutoAttack ({'L∞' if _norm == 'linf' else 'L2'})", 1),
        )
    )
