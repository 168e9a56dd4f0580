"""Every built-in suite, registered, and the running order of a selection.

The suite interface (:mod:`.interface`) knows no suite; this module imports the modules that
register one (importing them is what registers them), so the registry is complete wherever the
catalog is asked.
"""

from __future__ import annotations

from collections.abc import Sequence

from robustbench_mm.core.errors import UserError
from robustbench_mm.evaluation import adversarial as _adversarial  # noqa: F401  (adversarial)
from robustbench_mm.evaluation import builtin_suites  # noqa: F401  (clean, deformation, corruption, calibration)
from robustbench_mm.evaluation import ood as _ood  # noqa: F401  (ood)
from robustbench_mm.evaluation import representation as _representation  # noqa: F401  (representation)
from robustbench_mm.evaluation.interface import SUITES, Suite, running_order


def all_suites() -> list[Suite]:
    """Every registered suite, in running order."""
    return running_order([SUITES.get(name) for name in SUITES.names()])


def headline_suites() -> list[Suite]:
    """Every registered suite in the order its columns take in the report's headline."""
    return sorted(all_suites(), key=lambda s: (s.order if s.headline_order is None else s.headline_order, s.name))


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
