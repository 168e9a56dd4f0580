"""The suite interface: each lens of the benchmark is a :class:`Suite` whose ``run`` turns a
:class:`SuiteContext` into a :class:`SuiteOutput`.

Suites register themselves with a position in the running order and their place in the report
(``@register_suite("calibration", order=90, description=..., headline=(Column(...),),
sections=(Section(...),))``); the runner sorts by that position and knows nothing about what a
suite does, and the report shows each suite's columns and tables without knowing its name. A
suite that reads what others produced runs after them: the runner adds the logits each finished
suite left behind to ``ctx.shifted_logits`` (calibration measures them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from robustbench_mm.core.progress import Progress
from robustbench_mm.core.registry import Registry
from robustbench_mm.data.cards import threat_for
from robustbench_mm.data.threat import ThreatModel

if TYPE_CHECKING:  # the attacks package registers a suite itself, so it cannot be imported here
    import pandas as pd

    from robustbench_mm.attacks.session import AttackSession
    from robustbench_mm.settings import EvalConfig

Key = tuple[str, str, float]  # (suite, test, severity)


@dataclass
class SuiteContext:
    """Everything a suite may use. The model is in eval mode on ``device`` and takes [0, 1] images."""

    model: nn.Module
    x: torch.Tensor  # test images, float32 in [0, 1], NCHW, on the CPU
    y: torch.Tensor  # labels, int64, on the CPU
    num_classes: int
    dataset: str
    config: EvalConfig
    device: torch.device
    clean_logits: torch.Tensor  # float32 logits of the clean test set, on the CPU
    holdout: tuple[torch.Tensor, torch.Tensor] | None = None  # (images, labels) for temperature scaling
    # the attacks' shared model copies and clean verdicts, and the shard (None: one process)
    attacks: AttackSession | None = None
    # logits under each shift, filled by the runner as suites finish (suites ordered before you)
    shifted_logits: dict[Key, torch.Tensor] = field(default_factory=dict)
    progress_mode: str = "off"  # bar | lines | off (progress.mode_for)
    indices: torch.Tensor | None = None  # positions of x in the dataset's test split (None: all, in order)
    threat: ThreatModel | None = None  # the dataset's radii and headline (None: by the dataset's name)

    def __post_init__(self) -> None:
        if self.threat is None:
            self.threat = threat_for(self.dataset, self.x.shape[1], self.x.shape[-1])

    def progress(self, total: int, label: str, unit: str = "step") -> Progress:
        """A progress report for a suite's ``total`` units of work (close it, or use ``with``)."""
        return Progress(total, label, self.progress_mode, unit)

    def generator(self, *keys: object) -> torch.Generator:
        """A CPU generator seeded by the evaluation seed and ``keys`` (stable across runs and processes)."""
        text = "/".join([str(self.config.seed), *map(str, keys)])
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)
        return torch.Generator().manual_seed(seed)

    @property
    def clean_correct(self) -> np.ndarray:
        return (self.clean_logits.argmax(1) == self.y).numpy()


@dataclass
class SuiteOutput:
    rows: list[dict] = field(default_factory=list)  # results.row(...) dicts
    per_example: dict[Key, np.ndarray] = field(default_factory=dict)  # bool correctness per test example
    logits: dict[Key, torch.Tensor] = field(default_factory=dict)  # logits under shift, for calibration
    reliability: pd.DataFrame | None = None  # reliability bins of the clean logits (calibration)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # further tables kept with the run (name.csv)


SuiteFn = Callable[[SuiteContext], SuiteOutput]
# (stored per-example results, new ones) -> the suite's derived per-example results, recomputed
# over both (e.g. the worst case over every attack): what the store asks when it merges
DeriveFn = Callable[[dict[Key, np.ndarray], dict[Key, np.ndarray]], dict[Key, np.ndarray]]
RefreshFn = Callable[["pd.DataFrame", dict[Key, np.ndarray]], "pd.DataFrame"]

HEADLINE_EPS = None  # a Column's severity: the radius the headline quotes (the threat model's)
ALL_TESTS = "*"  # a Column's test: the mean over every test of the suite (its "mean" row aside)


@dataclass(frozen=True)
class Column:
    """A column a suite puts in the report's headline: the seed-mean of ``metric`` at (``test``,
    ``severity``), per method. Which way is better, the scale and the digits are the metric's own
    (core/metrics.py); the best value is bold."""

    label: str  # "{eps}" becomes the headline radius, written the threat model's way (8/255, 0.3)
    test: str  # or ALL_TESTS
    metric: str = "accuracy"
    severity: float | None = 0.0  # or HEADLINE_EPS
    spread: bool = True  # "± std" over seeds
    masking: bool = False  # marked ⚠ for a method whose gradient-masking checks fired


@dataclass(frozen=True)
class Question:
    """A line of the report's verdict a suite asks: is a method's difference to ERM in ``metric``
    at (``test``, ``severity``) significant, and which way (the metric's direction)?"""

    label: str  # "{eps}" becomes the headline radius
    test: str
    metric: str = "accuracy"
    severity: float | None = 0.0  # or HEADLINE_EPS
    rank: int = 0  # position in the verdict line (smaller first)


@dataclass(frozen=True)
class Section:
    """A table a suite puts under the report's detailed results.

    ``kind``: "grid" (one column per test and severity of ``metric``), "per-test" (one row per
    test: ``metric`` averaged over severities) or "metrics" (the ``metrics`` of test ``test``).
    """

    title: str
    kind: str
    metric: str = "accuracy"
    test: str = "clean"
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class Suite:
    name: str
    run: SuiteFn
    order: int  # position in the running order: a suite runs after every suite of a smaller order
    default: bool  # run when the user names no suites
    description: str
    headline: tuple[Column, ...] = ()  # its columns in the report's headline table
    sections: tuple[Section, ...] = ()  # its tables under the report's detailed results
    headline_order: int | None = None  # where its columns go in the headline (None: ``order``)
    verdict: tuple[Question, ...] = ()  # what the verdict asks of it
    derive: DeriveFn | None = None  # per-example results that summarise others (the worst case)
    refresh: RefreshFn | None = None  # rows recomputed from the merged per-example results (the curve)


SUITES: Registry[Suite] = Registry("suite")


def register_suite(
    name: str,
    *,
    order: int,
    default: bool = True,
    description: str = "",
    headline: tuple[Column, ...] = (),
    sections: tuple[Section, ...] = (),
    headline_order: int | None = None,
    verdict: tuple[Question, ...] = (),
    derive: DeriveFn | None = None,
    refresh: RefreshFn | None = None,
) -> Callable[[SuiteFn], SuiteFn]:
    """Decorator: register ``run`` as suite ``name`` at position ``order``, with its place in the
    report; returns ``run`` unchanged. ``derive`` / ``refresh``: how the suite recomputes its
    summary rows when a new evaluation is merged into a stored one (see :func:`derived`)."""

    def add(run: SuiteFn) -> SuiteFn:
        SUITES.register(name)(
            Suite(
                name,
                run,
                order,
                default,
                description,
                tuple(headline),
                tuple(sections),
                headline_order,
                tuple(verdict),
                derive,
                refresh,
            )
        )
        return run

    return add


def derived(stored: dict[Key, np.ndarray], new: dict[Key, np.ndarray]) -> dict[Key, np.ndarray]:
    """Every registered suite's derived per-example results over ``stored`` and ``new`` (each an
    accuracy row: its mean), the hook the store calls when it merges evaluations."""
    out: dict[Key, np.ndarray] = {}
    for name in SUITES.names():
        suite = SUITES.get(name)
        if suite.derive is not None:
            out.update(suite.derive(stored, new))
    return out


def refreshed(metrics: pd.DataFrame, per_example: dict[Key, np.ndarray]) -> pd.DataFrame:
    """Every registered suite's rows recomputed from the merged per-example results (the
    robustness curve over the merged worst case), the second hook the store calls."""
    for name in SUITES.names():
        suite = SUITES.get(name)
        if suite.refresh is not None:
            metrics = suite.refresh(metrics, per_example)
    return metrics


def running_order(suites: list[Suite]) -> list[Suite]:
    return sorted(suites, key=lambda s: (s.order, s.name))
