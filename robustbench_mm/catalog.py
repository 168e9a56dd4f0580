"""Every built-in suite, registered, and the running order of a selection.

The suite interface (:mod:`.suites`) knows no suite; this module imports the modules that
register one (importing them is what registers them), so the registry is complete wherever the
catalog is asked.
"""

from __future__ import annotations

from typing import Sequence

from . import builtin_suites  # noqa: F401  (clean, deformation, corruption, calibration)
from .attacks import suite as _adversarial  # noqa: F401  (adversarial)
from .errors import UserError
from .suites import SUITES, Suite, running_order


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
