"""Every built-in suite, registered, and the running order of a selection.

The suite interface (:mod:`.suites`) knows no suite; this module imports the modules that
register one (importing them is what registers them), so the registry is complete wherever the
catalog is asked.
"""

from __future__ import annotations

from collections.abc import Sequence

from robustbench_mm.core.errors import UserError
from robustbench_mm.evaluation import adversarial as _adversarial  # noqa: F401  (adversarial)
from robustbench_mm.evaluation import builtin_suites  # noqa: F401  (clean, deformation, corruption, calibration)
from robustbench_mm.evaluation.interface import SUITES, Suite, register_suite, running_order
from robustbench_mm.evaluation.ood import ood_suite
from robustbench_mm.evaluation.representation import representation_suite

# The paper's own lenses (Verma et al. 2019, Sec. 3 and the abstract): cheap next to the attacks
# (one forward pass per layer, one per outlier set), so they run by default.
register_suite(
    "representation",
    order=50,
    description="flattening: singular-value spectra of each class's hidden states per mixing layer",
)(representation_suite)
register_suite(
    "ood",
    order=60,
    description="confidence off the data: outlier detection (MSP, energy) and confidence between classes",
)(ood_suite)


def all_suites() -> list[Suite]:
    """Every registered suite, in running order."""
    return running_order([SUITES.get(name) for name in SUITES.names()])


def default_suites() -> list[str]:
    """The suites an evaluation runs when the user names none, in running order."""
    return [s.name for s in all_suites() if s.default]


def ordered_suites(names: Sequence[str]) -> list[Suite]:
    """The named suites (duplicates dropped), in running order; one-line UserError for an
    unknown name or an empty selection."""
    chosen = [SUITES.get(name) for name in dict.fromkeys(names)]
    if not chosen:
        raise UserError("no suite selected")
    return running_order(chosen)
