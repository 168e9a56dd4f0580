"""What each metric of the results table means: direction, valid range, unit and display.

The report (formatting, which value is best), the plots (axis labels) and the regression gate
(which way is worse, which values are impossible) all ask this registry; a metric that is not
registered here is an error in the gate, never a silent pass. A ``-ts`` metric (after temperature
scaling) means what its base metric means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.registry import Registry
from robustbench_mm.core.untrusted import clip

HIGHER, LOWER, NEITHER = 1, -1, 0
TS = "-ts"  # suffix of the metrics computed after temperature scaling


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    direction: int  # HIGHER or LOWER is better; NEITHER: descriptive, never gates
    low: float = -math.inf  # valid range, inclusive
    high: float = math.inf
    unit: str = ""  # what the displayed number is in: "%", "nats", ...
    scale: float = 1.0  # displayed value = stored value * scale
    digits: int = 3  # decimals on display
    gated: bool = True  # False: shown in reports, never fails the gate (too noisy to gate)

    def display(self, value: float) -> str:
        return f"{value * self.scale:.{self.digits}f}"

    def valid(self, value: float) -> bool:
        """Inside the metric's range (NaN counts as valid: "not measured" is not impossible)."""
        return math.isnan(value) or self.low <= value <= self.high

    @property
    def title(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


METRICS: Registry[Metric] = Registry("metric")


def register(metric: Metric) -> Metric:
    METRICS.register(metric.name)(metric)
    return metric


def _fraction(name: str, label: str, direction: int, gated: bool = True) -> Metric:
    return register(Metric(name, label, direction, 0.0, 1.0, "%", 100.0, 1, gated))


_fraction("accuracy", "accuracy", HIGHER)
_fraction("ece", "ECE", LOWER)
_fraction("ece-adaptive", "adaptive ECE", LOWER)
_fraction("ece-classwise", "classwise ECE", LOWER)
# the largest gap over bins, some holding a handful of examples: moves by tens of points between
# machines whose float rounding differs, so it is reported but never gates
_fraction("mce", "MCE", LOWER, gated=False)
_fraction("confidence", "mean confidence", NEITHER)
register(Metric("nll", "NLL", LOWER, 0.0, math.inf, "nats", 1.0, 3))
register(Metric("brier", "Brier score", LOWER, 0.0, 2.0, "", 1.0, 3))
register(Metric("temperature", "temperature", NEITHER, 0.0, math.inf, "", 1.0, 3))
# gradient-masking diagnostics: a flag per check and run (1 = fired) and the measured quantity
register(Metric("flag", "check fired", LOWER, 0.0, 1.0, "", 1.0, 2))
register(Metric("value", "measured quantity", NEITHER))
# unbounded attacks: the median L2 perturbation an attack needed (higher = more robust)
register(Metric("median-l2", "median L2 needed", HIGHER, 0.0, math.inf, "L2", 1.0, 3))
# the robustness curve (attacks/eps_star.py): the median over examples of the smallest adversarial
# radius found (in the threat model's norm) and the area under the curve up to the headline
# radius, normalised to [0, 1]
register(Metric("median-eps", "median ε*", HIGHER, 0.0, math.inf, "", 1.0, 4))
_fraction("auc", "area under the robustness curve", HIGHER)
# corruption errors relative to ERM's (Hendrycks & Dietterich 2019 with ERM in AlexNet's place):
# ratios of seed-means with no spread of their own, derived from the corruption accuracies the
# gate already checks row by row, so they are reported but do not gate
register(Metric("mce-vs-erm", "mCE vs ERM", LOWER, 0.0, math.inf, "", 1.0, 3, gated=False))
register(Metric("relative-mce-vs-erm", "relative mCE vs ERM", LOWER, -math.inf, math.inf, "", 1.0, 3, gated=False))


# the paper's own lenses: representation flattening (descriptive: fewer significant directions is
# the paper's claim, not "better") and confidence off the data (detection of outliers)
register(Metric("effective-rank", "effective rank", NEITHER, 1.0, math.inf, "", 1.0, 2))
register(Metric("sv90", "singular values for 90% of the variance", NEITHER, 1.0, math.inf, "", 1.0, 1))
register(Metric("sv99", "singular values for 99% of the variance", NEITHER, 1.0, math.inf, "", 1.0, 1))
register(Metric("top-sv-share", "share of the top singular value", NEITHER, 0.0, 1.0, "%", 100.0, 1))
for _score in ("msp", "energy"):
    _fraction(f"auroc-{_score}", f"AUROC ({_score})", HIGHER)
    _fraction(f"aupr-{_score}", f"AUPR ({_score})", HIGHER)
    _fraction(f"fpr95-{_score}", f"FPR at 95% TPR ({_score})", LOWER)


def metric(name: str) -> Metric:
    """The registered metric ``name`` (``x-ts`` derives from ``x``); UserError if unknown."""
    if name in METRICS:
        return METRICS.get(name)
    if name.endswith(TS) and name[: -len(TS)] in METRICS:
        base = METRICS.get(name[: -len(TS)])
        return replace(base, name=name, label=f"{base.label} after temperature scaling")
    raise UserError(f"unknown metric {clip(name)}; valid: {', '.join(METRICS.names())} (and their -ts variants)")


def is_known(name: str) -> bool:
    try:
        metric(name)
    except UserError:
        return False
    return True


def direction(name: str) -> int:
    return metric(name).direction
