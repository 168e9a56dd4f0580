"""Adversarial attacks: our fast FGSM/PGD, a torchattacks adapter, gradient-masking checks.

Modules, one job each: :mod:`.registry` (specs, validation, the threat-model check),
:mod:`.driver` (:func:`attack`, the loop over batches), :mod:`.session` (what the attacks of one
evaluation share), :mod:`.fastcopy` (faster copies of the model for the attack steps),
:mod:`.precision` (fp32/bf16, batch size from free memory), :mod:`.pgd` and :mod:`.zoo` (the
attacks), :mod:`.diagnostics` and :mod:`.suite` (the ``adversarial`` suite).

Importing this package registers every attack in :data:`ATTACKS` and the ``adversarial`` suite
in :data:`robustbench_mm.evaluation.interface.SUITES`.
"""

from robustbench_mm.attacks import adversarial as suite  # noqa: F401,E402  (registers the adversarial suite)
from robustbench_mm.attacks import pgd, standard, zoo  # noqa: F401  (register the attacks)
from robustbench_mm.attacks.driver import attack, run_attack
from robustbench_mm.attacks.registry import ATTACKS, AttackCheckError, AttackResult, AttackSpec, check_adversarial
from robustbench_mm.attacks.session import AttackSession

__all__ = [
    "ATTACKS",
    "AttackCheckError",
    "AttackResult",
    "AttackSession",
    "AttackSpec",
    "attack",
    "check_adversarial",
    "run_attack",
]
