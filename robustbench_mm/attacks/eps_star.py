"""Per-example smallest adversarial radius ε* and the robustness curve it gives.

ε* of an example is an upper bound on the smallest radius at which it is broken: the smallest of
(a) the norm of the minimum-norm attack's adversarial example (:mod:`.minimum_norm`) and (b) the
smallest radius of the grid at which any bounded attack of the norm broke it (the worst case);
0 for an example misclassified clean, +inf where nothing broke it. Robust accuracy at any ε is
then the share of examples with ε* > ε (the *robustness curve*, monotone in ε by construction and
never above the worst case at a grid radius).

Rows (``results.row``), for L∞ (test ``curve``) and L2 (test ``curve-l2``):

* ``adversarial / curve / ε / accuracy`` at every radius of the grid (per-example bool kept);
* ``adversarial / curve / 0 / median-eps``: the median ε* (+inf when most examples survive);
* ``adversarial / curve / h / auc``: the area under the curve from 0 to the headline radius h,
  divided by h -- the mean over examples of min(ε*, h) / h, in [0, 1].

Per-example values kept for the report: ``adversarial / eps-star[-l2] / 0`` (float ε*) and the
minimum-norm attack's own distances ``adversarial / fmn-linf|fmn-l2 / 0`` (float; what an
evaluation that adds attacks later recombines with the new worst case: :func:`refresh`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from robustbench_mm.attacks.minimum_norm import DEFAULT_MINIMUM_NORM, FMN_STEPS, MINIMUM_NORM
from robustbench_mm.core.results import row

SUITE = "adversarial"
CURVE_TEST = {"linf": "curve", "l2": "curve-l2"}
STAR_TEST = {"linf": "eps-star", "l2": "eps-star-l2"}  # their arrays are distances: core.results.DISTANCE_ARRAYS
WORST_TEST = {"linf": "worst-case", "l2": "worst-case-l2"}


def eps_star(clean: np.ndarray, worst: dict[float, np.ndarray], found: np.ndarray | None = None) -> np.ndarray:
    """Per example: the smallest radius of ``worst`` (ε -> still correct under every attack) at
    which it fell, lowered to ``found`` (a minimum-norm attack's distances, +inf where it failed);
    0 where ``clean`` is false."""
    star = np.full(len(clean), np.inf)
    for eps in sorted(worst, reverse=True):  # descending: the smallest broken radius is written last
        star[~np.asarray(worst[eps], dtype=bool)] = eps
    if found is not None:
        star = np.minimum(star, np.asarray(found, dtype=np.float64))
    star[~np.asarray(clean, dtype=bool)] = 0.0
    return star


def area_under_curve(star: np.ndarray, headline: float) -> np.ndarray:
    """Normalised area under the robustness curve on [0, headline], over the last axis of ``star``."""
    return np.minimum(star, headline).mean(axis=-1) / headline


def curve_at(star: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Robust accuracy at each radius: the share of examples with ε* > ε (last axis: examples)."""
    return (star[..., None, :] > np.asarray(radii)[:, None]).mean(axis=-1)


def curve_rows(star: np.ndarray, grid: list[float], headline: float | None, norm: str) -> tuple[list[dict], dict]:
    """The curve's rows and per-example results for one norm (see the module docstring)."""
    test, n = CURVE_TEST[norm], len(star)
    rows: list[dict] = []
    per_example: dict[tuple, np.ndarray] = {(SUITE, STAR_TEST[norm], 0.0): star.astype(np.float32)}
    for eps in grid:
        alive = star > eps
        rows.append(row(SUITE, test, eps, "accuracy", float(alive.mean()) if n else math.nan, n))
        per_example[(SUITE, test, float(eps))] = alive
    rows.append(row(SUITE, test, 0.0, "median-eps", float(np.median(star)) if n else math.nan, n))
    if headline:
        rows.append(row(SUITE, test, headline, "auc", float(area_under_curve(star, headline)) if n else math.nan, n))
    return rows, per_example


def wanted(names: list[str], explicit: bool) -> list[str]:
    """The minimum-norm attacks the suite runs: those named in --attacks, else the default ones."""
    return [n for n in names if n in MINIMUM_NORM] if explicit else list(DEFAULT_MINIMUM_NORM)


def distances(run: Callable, names: list[str], clean: np.ndarray) -> dict:
    """Run the minimum-norm attacks (``run(name, 0.0, steps=...)`` -> AttackResult): per attack,
    ``(SUITE, name, 0.0)`` -> its distance per example (float32; 0 where the clean image is
    wrong, +inf where it found nothing). The worst case uses them to pre-screen and as an attack."""
    found = {}
    for name in names:
        res = run(name, 0.0, steps=FMN_STEPS)
        norm = MINIMUM_NORM[name]
        distance = (res.linf if norm == "linf" else res.l2).numpy().astype(np.float64)
        distance = np.where(res.correct.numpy(), np.inf, distance)
        distance[~clean] = 0.0
        found[(SUITE, name, 0.0)] = distance.astype(np.float32)
    return found


def nearest(found: dict, norm: str) -> np.ndarray | None:
    """The smallest distance per example over the minimum-norm attacks of ``norm`` in ``found``."""
    arrays = [v for (_, name, _), v in found.items() if MINIMUM_NORM.get(name) == norm]
    return np.min(np.stack(arrays), axis=0).astype(np.float64) if arrays else None


def minimal_perturbations(
    found: dict,
    clean: np.ndarray,
    per_example: dict,
    grids: dict[str, list[float]],
    headlines: dict[str, float | None],
) -> tuple[list[dict], dict]:
    """The curve rows of each norm a minimum-norm attack ran for: its distances (``found``, from
    :func:`distances`) combined with the worst case already in ``per_example``."""
    rows, kept = [], dict(found)
    combined = {**per_example, **found}
    for norm in MINIMUM_NORM.values():
        more_rows, more = _norm_rows(combined, clean, norm, grids.get(norm, []), headlines.get(norm))
        rows += more_rows
        kept.update(more)
    return rows, kept


def _norm_rows(per_example: dict, clean: np.ndarray, norm: str, grid: list[float], headline: float | None):
    attacks = [(SUITE, name, 0.0) for name, n in MINIMUM_NORM.items() if n == norm]
    distances = [per_example[k] for k in attacks if k in per_example]
    if not distances:
        return [], {}
    keys = {eps: (SUITE, WORST_TEST[norm], eps) for eps in grid}
    worst = {eps: per_example[k] for eps, k in keys.items() if k in per_example}
    star = eps_star(clean, worst, np.min(np.stack(distances), axis=0))
    return curve_rows(star, sorted(worst) or list(grid), headline, norm)


def add_to_suite(ctx, out, found: dict, linf: list[float], l2: list[float], headline) -> None:
    """The adversarial suite's hook: after its worst case, the curves from the minimum-norm
    attacks' distances (``found``, :func:`distances`)."""
    if not found:
        return
    rows, kept = minimal_perturbations(
        found,
        ctx.clean_correct,
        out.per_example,
        {"linf": linf, "l2": l2},
        {"linf": headline, "l2": max(l2, default=None)},
    )
    out.rows.extend(rows)
    out.per_example.update(kept)


def refresh(per_example: dict, headline_linf: float | None) -> tuple[list[dict], dict]:
    """The curve rows again from stored per-example results (after merging a new worst case):
    the grid is the worst case's radii, the L2 headline its largest radius."""
    clean = per_example.get(("clean", "clean", 0.0))
    if clean is None:
        return [], {}
    rows, out = [], {}
    for norm in MINIMUM_NORM.values():
        grid = sorted(sev for suite, test, sev in per_example if suite == SUITE and test == WORST_TEST[norm])
        headline = headline_linf if norm == "linf" else (max(grid) if grid else None)
        more_rows, more = _norm_rows(per_example, clean, norm, grid, headline)
        rows += more_rows
        out.update(more)
    return rows, out


def refresh_metrics(metrics, per_example: dict):
    """``metrics`` (a results frame of one run) with its curve rows recomputed by :func:`refresh`
    from ``per_example`` (updated in place); unchanged when the run has no minimum-norm result.
    The area under the curve keeps the radius it had."""
    auc = metrics[(metrics["suite"] == SUITE) & (metrics["test"] == CURVE_TEST["linf"]) & (metrics["metric"] == "auc")]
    rows, kept = refresh(per_example, float(auc["severity"].iloc[0]) if len(auc) else None)
    if not rows:
        return metrics
    for key in [k for k in per_example if k[0] == SUITE and k[1] in (*CURVE_TEST.values(), *STAR_TEST.values())]:
        del per_example[key]
    per_example.update(kept)
    identity = metrics.iloc[0][["run", "dataset", "arch", "method", "seed"]].to_dict()
    old = (metrics["suite"] == SUITE) & metrics["test"].isin(list(CURVE_TEST.values()))
    new = pd.DataFrame([{**identity, **r} for r in rows], columns=metrics.columns)
    return pd.concat([metrics[~old], new], ignore_index=True)
