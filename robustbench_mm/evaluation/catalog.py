"""Every built-in suite, registered, and the running order of a selection.

The suite interface (:mod:`.interface`) knows no suite; this module imports every module of
:mod:`.suites` (importing one is what registers its suites), so the registry is complete wherever
the catalog is asked, and a new suite needs no line here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence

from robustbench_mm.core.errors import UserError
from robustbench_mm.evaluation import suites as _suites
from robustbench_mm.evaluation.interface import SUITES, Suite, running_order

for _module in pkgutil.iter_modules(_suites.__path__):
    importlib.import_module(f"{_suites.__name__}.{_module.name}")


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
