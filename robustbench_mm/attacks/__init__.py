"""Adversarial attacks: our fast FGSM/PGD, a torchattacks adapter, gradient-masking checks.

Importing this package registers every attack in :data:`ATTACKS` and the ``adversarial`` suite
in :data:`robustbench_mm.suites.SUITES`.
"""

from . import pgd, zoo  # noqa: F401  (register the attacks)
from .base import ATTACKS, AttackCheckError, AttackResult, AttackSpec, attack, check_adversarial, run_attack
from . import suite  # noqa: F401,E402  (registers the adversarial suite)

__all__ = [
    "ATTACKS",
    "AttackCheckError",
    "AttackResult",
    "AttackSpec",
    "attack",
    "check_adversarial",
    "run_attack",
]
