"""The ``adversarial`` suite: robust accuracy over an ε grid, worst case per example, and the
gradient-masking diagnostics that say whether those numbers can be trusted.

Rows (``results.row``):

* ``adversarial / <attack> / ε / accuracy``: robust accuracy of one attack at one radius;
* ``adversarial / worst-case / ε / accuracy`` (L∞) and ``worst-case-l2`` (L2): an example counts
  only if it survives *every* attack of that norm at *every* radius ≤ ε (an adversarial example
  found at a smaller radius is one at the larger radius too), so the curve never rises with ε and
  never lies above any single attack -- RobustBench's "robust accuracy is the worst case". By
  default it also runs APGD-CE and APGD-T (100 iterations) at every radius on the examples still
  standing (:mod:`.worstcase`); their work per radius is the table ``worst-case-stages``;
* unbounded attacks (cw-l2, deepfool): ``accuracy`` at severity 0 (the attack failed on the
  example) and ``median-l2``: the median over examples of the L2 perturbation it needed
  (0 for examples misclassified clean, +inf where it failed) -- the radius at which robust
  accuracy under that attack falls to 50%;
* ``diagnostics / <check> / ε / flag|value``: see :mod:`.diagnostics`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from robustbench_mm.attacks import diagnostics as diag
from robustbench_mm.attacks import eps_star as min_norm
from robustbench_mm.attacks.driver import attack
from robustbench_mm.attacks.registry import ATTACKS, AttackResult, AttackSettings, validate
from robustbench_mm.attacks.session import AttackSession
from robustbench_mm.attacks.worstcase import (
    APGD_ITERATIONS,
    STAGES,
    WORST_CASE_NORMS,
    cascade,
    derive,
    linear_reach,
    stages_for,
)
from robustbench_mm.core.errors import UserError
from robustbench_mm.core.results import row
from robustbench_mm.data.threat import ThreatModel, headline_radius
from robustbench_mm.evaluation.interface import (
    HEADLINE_EPS,
    Column,
    Question,
    Section,
    SuiteContext,
    SuiteOutput,
    register_suite,
)
from robustbench_mm.settings import EvalConfig

SUITE = "adversarial"
# Run on every example at every radius; the worst case then adds AutoAttack's APGD-CE and APGD-T
# on the survivors (worstcase.STAGES). Square is the black-box check of gradient masking.
DEFAULT_ATTACKS = ("fgsm", "pgd-linf", "pgd-l2", "square")
SQUARE_QUERIES = 50  # default-set Square: the black-box diagnostic, kept short (a query costs a forward pass)
CW_STEPS = 100
DEEPFOOL_STEPS = 50
MORE_STEPS = (2,)  # non-monotone-steps: PGD with 2x the configured steps (budget: one extra run)
DIAGNOSTIC_CALLS = 1 + len(MORE_STEPS)  # attack calls the checks make: the unbounded PGD, more steps


def eps_grids(threat: ThreatModel, config: EvalConfig) -> tuple[list[float], list[float]]:
    """(L∞ radii, L2 radii): the config's when given, else the threat model's."""
    linf = config.eps if config.eps is not None else list(threat.linf)
    l2 = config.eps_l2 if config.eps_l2 is not None else list(threat.l2)
    return sorted(float(e) for e in linf), sorted(float(e) for e in l2)


def _steps(name: str, config: EvalConfig) -> int:
    if name.startswith("apgd-"):
        return APGD_ITERATIONS  # AutoAttack's fixed budget, whatever --pgd-steps says
    return {"cw-l2": max(CW_STEPS, config.pgd_steps), "deepfool": max(DEEPFOOL_STEPS, config.pgd_steps)}.get(
        name, config.pgd_steps
    )


def _settings(config: EvalConfig, steps: int) -> AttackSettings:
    """The shared attack knobs of an evaluation: the config's, with ``steps`` iterations."""
    return AttackSettings(
        steps=steps,
        restarts=config.pgd_restarts,
        step_size=config.pgd_step_size,
        random_start=True,
        batch_size=config.batch_size,
        only_correct=True,
        precision=config.attack_precision,
    )


def _plan(ctx: SuiteContext) -> tuple[list[str], bool, list[float], list[float]]:
    cfg = ctx.config
    explicit = cfg.attacks is not None
    names = list(dict.fromkeys(cfg.attacks)) if cfg.attacks is not None else list(DEFAULT_ATTACKS)
    if not explicit:  # a default attack that needs more classes than the dataset has is left out
        names = [n for n in names if ATTACKS.get(n).min_classes <= ctx.num_classes]
    if not names:
        raise UserError("the adversarial suite needs at least one attack (--attacks)")
    assert ctx.threat is not None  # SuiteContext fills it in
    linf, l2 = eps_grids(ctx.threat, cfg)
    for name in names:  # fail fast, before minutes of attacking
        spec = ATTACKS.get(name)
        for eps in linf if spec.norm == "linf" else l2 if spec.norm == "l2" else [0.0]:
            validate(name, eps, ctx.num_classes, _settings(cfg, _steps(name, cfg)))
    return names, explicit, linf, l2


def _grid(name: str, linf: list[float], l2: list[float]) -> list[float]:
    """The radii attack ``name`` runs at (unbounded attacks: one run, at 0)."""
    norm = ATTACKS.get(name).norm
    return [0.0] if norm == "none" else linf if norm == "linf" else l2


def _stage_calls(explicit: bool, num_classes: int, linf: list[float], l2: list[float]) -> int:
    if explicit:
        return 0
    return sum(len(stages_for(norm, num_classes)) * len(linf if norm == "linf" else l2) for norm in STAGES)


@register_suite(
    "adversarial",
    order=20,
    description="robust accuracy under attacks over an ε grid, worst case, gradient-masking checks",
    headline=tuple(
        Column(f"{label} ε={{eps}} (%)", test, severity=HEADLINE_EPS, masking=True)
        for test, label in (("fgsm", "FGSM"), ("pgd-linf", "PGD"), ("worst-case", "Worst case"))
    )
    # the robustness curve's numbers beside the headline's (curve.py): they still differ where the
    # headline is saturated
    + (Column("Median ε*", "curve", "median-eps"), Column("Curve area to ε={eps} (%)", "curve", "auc", HEADLINE_EPS)),
    sections=(Section("Adversarial accuracy (%) by attack and ε", "grid"),),
    verdict=(Question("worst-case robust accuracy at ε = {eps}", "worst-case", severity=HEADLINE_EPS, rank=10),),
    derive=derive,
    refresh=min_norm.refresh_metrics,
)
def adversarial_suite(ctx: SuiteContext) -> SuiteOutput:
    cfg = ctx.config
    names, explicit, linf_grid, l2_grid = _plan(ctx)
    minimum = min_norm.wanted(names, explicit)  # minimum-norm attacks: after the worst case (curve.py)
    names = [name for name in names if name not in minimum]
    n = len(ctx.y)
    out = SuiteOutput()
    model = ctx.model
    session = ctx.attacks or AttackSession(model)  # model copies and clean verdicts built once
    assert ctx.threat is not None  # SuiteContext fills it in
    headline = headline_radius(linf_grid, ctx.threat)
    calls = sum(len(_grid(name, linf_grid, l2_grid)) for name in names) + DIAGNOSTIC_CALLS
    calls += _stage_calls(explicit, ctx.num_classes, linf_grid, l2_grid)  # at most: survivors only
    calls += len(minimum)
    bar = ctx.progress(calls, "adversarial", unit="attack")

    def run(
        name: str,
        eps: float,
        *,
        steps: int | None = None,
        keep_logits: bool = False,
        key: str = "",
        subset: torch.Tensor | None = None,
        **options,
    ) -> AttackResult:
        x, y = (ctx.x, ctx.y) if subset is None else (ctx.x[subset], ctx.y[subset])
        result = attack(
            name,
            model,
            x,
            y,
            eps,
            num_classes=ctx.num_classes,
            settings=_settings(cfg, steps or _steps(name, cfg)),
            generator=ctx.generator(SUITE, name, eps, key),
            keep_logits=keep_logits,
            session=session,
            **options,
        )
        bar.update(1, f"{name} ε={eps:.4g}{' ' + key if key else ''}")
        return result

    def record(test: str, eps: float, correct: np.ndarray) -> float:
        acc = float(correct.mean()) if n else 0.0
        out.rows.append(row(SUITE, test, eps, "accuracy", acc, n))
        out.per_example[(SUITE, test, float(eps))] = correct
        return acc

    correct: dict[tuple[str, float], np.ndarray] = {}
    acc: dict[tuple[str, float], float] = {}
    smallest_linf = min((e for e in linf_grid if e > 0), default=None)
    with bar:
        for name in names:
            options: dict[str, Any] = {"n_queries": SQUARE_QUERIES} if name == "square" and not explicit else {}
            for eps in _grid(name, linf_grid, l2_grid):
                keep = name == "pgd-linf" and eps == smallest_linf
                res = run(name, eps, keep_logits=keep, **options)
                ok = res.correct.numpy()
                acc[(name, eps)] = record(name, eps, ok)
                if ATTACKS.get(name).norm == "none":  # unbounded, minimal-perturbation attacks
                    out.rows.append(_median_l2(name, res, ok, ctx.clean_correct, n))
                    continue
                correct[(name, eps)] = ok
                if keep:
                    assert res.logits is not None  # asked for with keep_logits
                    out.logits[(SUITE, name, float(eps))] = res.logits
        # the minimum-norm attacks first: their distances pre-screen the worst case's APGD stages
        found = min_norm.distances(run, minimum, ctx.clean_correct)
        _finish(ctx, out, record, run, correct, acc, linf_grid, l2_grid, explicit, found)
        min_norm.add_to_suite(ctx, out, found, linf_grid, l2_grid, headline)
    return out


def _median_l2(name: str, res: AttackResult, ok: np.ndarray, clean_correct: np.ndarray, n: int) -> dict:
    """The median over examples of the L2 perturbation an unbounded attack needed (0 where the
    clean image is already wrong, +inf where the attack failed)."""
    needed = np.where(ok, np.inf, res.l2.numpy())
    needed[~clean_correct] = 0.0
    return row(SUITE, name, 0.0, "median-l2", float(np.median(needed)) if n else math.nan, n)


def _finish(ctx, out, record, run, correct, acc, linf_grid, l2_grid, explicit: bool, found: dict) -> None:
    """The worst case per example (every attack of the norm, every radius up to ε; by default
    APGD-CE and APGD-T on the survivors, pre-screened by the minimum-norm distances ``found``
    where the norm has one), then the gradient-masking checks."""
    log: list[dict] = []
    for test, norm in WORST_CASE_NORMS.items():
        grid = linf_grid if norm == "linf" else l2_grid
        runs = {k: v for k, v in correct.items() if ATTACKS.get(k[0]).norm == norm}
        stages = [] if explicit else stages_for(norm, ctx.num_classes)
        if not runs and not stages or not grid:
            continue
        distance = min_norm.nearest(found, norm)
        reach = linear_reach(ctx.model, ctx.x, ctx.y, norm, _batch(ctx)) if stages and distance is None else None
        alive, done = cascade(
            runs, ctx.clean_correct, grid, stages, lambda a, e, idx: run(a, e, subset=idx), reach, distance
        )
        for eps, ok in alive.items():
            record(test, eps, ok)
        log += [{"norm": norm, **entry} for entry in done]
    if log:
        out.tables["worst-case-stages"] = pd.DataFrame(
            log, columns=["norm", "severity", "attack", "attacked", "broken"]
        )
    out.rows.extend(_diagnostics(ctx, run, correct, acc, linf_grid, l2_grid))


def _batch(ctx: SuiteContext) -> int:
    return ctx.config.batch_size or 500


def _diagnostics(ctx, run, correct, acc, linf_grid, l2_grid) -> list[dict]:
    cfg, n = ctx.config, len(ctx.y)
    rows: list[dict] = []
    rows += diag.fgsm_beats_pgd(acc, n)

    mid = headline_radius(linf_grid, ctx.threat)
    blackbox = [k for k in correct if ATTACKS.get(k[0]).gradient_free and ATTACKS.get(k[0]).norm == "linf"]
    for name, eps in blackbox:
        white = [
            ok
            for (a, e), ok in correct.items()
            if e == eps and ATTACKS.get(a).norm == "linf" and not ATTACKS.get(a).gradient_free
        ]
        if white:
            whitebox = np.logical_and.reduce(white)
            rows += diag.blackbox_beats_whitebox(eps, acc[(name, eps)], float(whitebox.mean()), n)

    # PGD-L∞ in the whole cube: 2x the steps (at least 20) from a random start, then targeted
    # PGD for the survivors of a universal image's class (see diagnostics)
    steps = max(20, 2 * cfg.pgd_steps)
    unbounded = run("pgd-linf", diag.UNBOUNDED_EPS, steps=steps, key="unbounded", keep_logits=True)

    def retarget(idx: torch.Tensor, k: int) -> torch.Tensor:
        return run(
            "pgd-linf", diag.UNBOUNDED_EPS, steps=steps, key=f"unbounded-target-{k}", subset=idx, target_rank=k
        ).correct

    accuracy = diag.unbounded_accuracy(
        ctx.y,
        torch.from_numpy(ctx.clean_correct),
        unbounded.correct,
        unbounded.logits.argmax(1),
        retarget,
        ctx.num_classes,
    )
    rows += diag.unbounded_not_zero(accuracy, n)

    rows += diag.non_monotone_eps(monotonicity_curves(acc), n)

    if mid is not None:
        by_steps = [acc[("pgd-linf", mid)]] if ("pgd-linf", mid) in acc else []
        if not by_steps:
            by_steps.append(float(run("pgd-linf", mid).correct.float().mean()))
        for k in MORE_STEPS:
            by_steps.append(float(run("pgd-linf", mid, steps=k * cfg.pgd_steps).correct.float().mean()))
        rows += diag.non_monotone_steps(mid, by_steps, n)

    share, _ = diag.zero_gradient_share(ctx.model, ctx.x, ctx.y, batch_size=cfg.batch_size or 500)
    rows += diag.zero_gradients(share, n)
    return rows


def monotonicity_curves(acc: dict[tuple[str, float], float]) -> dict[str, list[float]]:
    """{attack: accuracies in increasing ε} for the multi-step bounded attacks (the ones whose
    accuracy must not rise with ε; a single step can overshoot)."""
    curves: dict[str, list[float]] = {}
    for name, eps in sorted(acc):
        spec = ATTACKS.get(name)
        if spec.bounded and not spec.single_step:
            curves.setdefault(name, []).append(acc[(name, eps)])
    return curves
