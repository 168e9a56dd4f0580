"""The robustness curve across runs: robust accuracy at every ε from each example's ε*
(:mod:`robustbench_mm.attacks.eps_star`), the median ε* and the area under the curve up to the
headline radius, each against ERM with a paired-bootstrap 95% CI over test examples (seeds
pooled, as every other difference in the report), and the radius where a method and ERM differ
most.

A bootstrap draw resamples test examples once for all seeds and both methods (the pairing); a
statistic of a method is the mean over its seeds of the statistic on the drawn examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from robustbench_mm.attacks.eps_star import CURVE_TEST, STAR_TEST, area_under_curve, curve_at
from robustbench_mm.methods import method_sort_key
from robustbench_mm.report.collect import RunSet

SAMPLES = 1000
POINTS = 101  # radii of the drawn curve and of the search for the largest difference
SUITE = "adversarial"


@dataclass(frozen=True)
class Gap:
    """Where a method's curve is farthest from ERM's: the radius and the difference there (+CI)."""

    eps: float
    diff: float
    low: float
    high: float


def _by_method(runs: RunSet) -> dict[str, list[str]]:
    methods = runs.metrics.drop_duplicates("run").set_index("run")["method"]
    out: dict[str, list[str]] = {}
    for run, method in methods.items():
        out.setdefault(str(method), []).append(str(run))
    return {m: sorted(r) for m, r in out.items()}


def stars(runs: RunSet, names: list[str], norm: str = "linf") -> np.ndarray | None:
    """(seeds, examples) ε* of the given runs, or None when any lacks it."""
    key = (SUITE, STAR_TEST[norm], 0.0)
    found = [runs.per_example.get(r, {}).get(key) for r in names]
    arrays = [a for a in found if a is not None]
    if not arrays or len(arrays) != len(found) or len({a.shape for a in arrays}) != 1:
        return None
    return np.stack(arrays).astype(np.float64)


def headline_of_auc(runs: RunSet, norm: str = "linf") -> float | None:
    """The radius the stored area under the curve runs up to (its rows' severity)."""
    rows = runs.metrics[(runs.metrics.test == CURVE_TEST[norm]) & (runs.metrics.metric == "auc")]
    return float(rows["severity"].iloc[0]) if len(rows) else None


def radii(runs: RunSet, norm: str = "linf") -> np.ndarray:
    """0 to the largest radius of the grid, :data:`POINTS` points."""
    rows = runs.metrics[(runs.metrics.test == CURVE_TEST[norm]) & (runs.metrics.metric == "accuracy")]
    top = float(rows["severity"].max()) if len(rows) else 0.0
    return np.linspace(0.0, top, POINTS) if top > 0 else np.zeros(0)


def _draws(n: int, samples: int, seed: int) -> np.ndarray:
    """Row 0 the examples themselves, then ``samples`` bootstrap draws of example indices."""
    rng = np.random.default_rng(seed)
    return np.vstack([np.arange(n), rng.integers(0, n, size=(samples, n))])


def _ci(values: np.ndarray) -> tuple[float, float, float]:
    """(statistic on the sample, 2.5th and 97.5th percentile over the draws)."""
    finite = values[1:][np.isfinite(values[1:])]
    if not np.isfinite(values[0]) or len(finite) < 0.9 * (len(values) - 1):
        return float("nan"), float("nan"), float("nan")
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(values[0]), float(low), float(high)


def _median(star: np.ndarray, draws: np.ndarray) -> np.ndarray:
    # inf - inf (both medians unbroken) is undefined: that draw says nothing about the difference
    with np.errstate(invalid="ignore"):
        return np.mean([np.median(s[draws], axis=1) for s in star], axis=0)


def differences(runs: RunSet, mine: list[str], erm: list[str], samples: int = SAMPLES, seed: int = 0) -> list[dict]:
    """Rows of the report's difference table for the median ε* and the area under the curve."""
    rows = []
    for norm, test in CURVE_TEST.items():
        a, b = stars(runs, mine, norm), stars(runs, erm, norm)
        if a is None or b is None or a.shape[1] != b.shape[1] or not a.shape[1]:
            continue
        draws = _draws(a.shape[1], samples, seed)
        with np.errstate(invalid="ignore"):
            stats = [("median-eps", 0.0, _median(a, draws) - _median(b, draws))]
        headline = headline_of_auc(runs, norm)
        if headline:
            auc = [np.mean([area_under_curve(s[draws], headline) for s in side], axis=0) for side in (a, b)]
            stats.append(("auc", headline, auc[0] - auc[1]))
        for metric, severity, values in stats:
            diff, low, high = _ci(values)
            if np.isfinite(diff):
                rows.append(
                    {
                        "method": None,
                        "suite": SUITE,
                        "test": test,
                        "severity": severity,
                        "metric": metric,
                        "diff": diff,
                        "ci_low": low,
                        "ci_high": high,
                    }
                )
    return rows


def largest_gap(runs: RunSet, mine: list[str], erm: list[str], samples: int = SAMPLES, seed: int = 0) -> Gap | None:
    """The radius where the method's robust accuracy differs most from ERM's (seed means), with
    the difference's paired-bootstrap CI at that radius."""
    a, b, grid = stars(runs, mine), stars(runs, erm), radii(runs)
    if a is None or b is None or a.shape[1] != b.shape[1] or not len(grid):
        return None
    gap = curve_at(a, grid).mean(axis=0) - curve_at(b, grid).mean(axis=0)
    at = int(np.argmax(np.abs(gap)))
    draws = _draws(a.shape[1], samples, seed)
    eps = grid[at : at + 1]
    values = np.mean([curve_at(s[draws], eps)[:, 0] for s in a], axis=0) - np.mean(
        [curve_at(s[draws], eps)[:, 0] for s in b], axis=0
    )
    diff, low, high = _ci(values)
    return Gap(float(grid[at]), diff, low, high)


def gaps(runs: RunSet) -> dict[str, Gap]:
    """method -> :func:`largest_gap` against ERM (methods with ε* and an ERM run to compare)."""
    by_method = _by_method(runs)
    if "erm" not in by_method:
        return {}
    out = {}
    for method in sorted(by_method, key=method_sort_key):
        if method != "erm":
            gap = largest_gap(runs, by_method[method], by_method["erm"])
            if gap is not None:
                out[method] = gap
    return out


def curve_table(runs: RunSet, samples: int = 200, seed: int = 0) -> pd.DataFrame:
    """The drawn curves: per method and radius, robust accuracy (seed mean) and its 95% band
    (bootstrap over test examples, seeds pooled)."""
    grid, rows = radii(runs), []
    for method, names in sorted(_by_method(runs).items(), key=lambda kv: method_sort_key(kv[0])):
        star = stars(runs, names)
        if star is None or not len(grid) or not star.shape[1]:
            continue
        draws = _draws(star.shape[1], samples, seed)
        values = np.mean([curve_at(s[draws], grid) for s in star], axis=0)  # (1 + samples, radii)
        low, high = np.percentile(values[1:], [2.5, 97.5], axis=0)
        rows += [
            {"method": method, "eps": float(e), "mean": float(m), "low": float(lo), "high": float(hi)}
            for e, m, lo, hi in zip(grid, values[0], low, high, strict=True)
        ]
    return pd.DataFrame(rows, columns=["method", "eps", "mean", "low", "high"])
