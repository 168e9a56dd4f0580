"""Adversarial attacks: our fast FGSM/PGD, a torchattacks adapter, gradient-masking checks.

Modules, one job each: :mod:`.registry` (specs, the shared :class:`AttackSettings`, validation,
the threat-model check), :mod:`.driver` (:func:`attack`, the loop over batches), :mod:`.session`
(what the attacks of one evaluation share), :mod:`.fastcopy` (faster copies of the model for the
attack steps), :mod:`.precision` (fp32/bf16, batch size from free memory), :mod:`.pgd` and
:mod:`.zoo` (the attacks), :mod:`.diagnostics` (gradient-masking checks). The ``adversarial``
suite that runs them is an evaluation lens: :mod:`robustbench_mm.evaluation.suites.adversarial`.

Importing this package registers every attack in :data:`ATTACKS`.
"""

from robustbench_mm.attacks import minimum_norm, pgd, standard, zoo  # noqa: F401  (register the attacks)
from robustbench_mm.attacks.driver import attack, run_attack
from robustbench_mm.attacks.registry import (
    ATTACKS,
    AttackCheckError,
    AttackResult,
    AttackSettings,
    AttackSpec,
    check_adversarial,
)
from robustbench_mm.attacks.session import AttackSession

__all__ = [
    "ATTACKS",
    "AttackCheckError",
    "AttackResult",
    "AttackSession",
    "AttackSettings",
    "AttackSpec",
    "attack",
    "check_adversarial",
    "run_attack",
]
