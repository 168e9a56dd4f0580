"""The worst case per example: every attack of a norm at every radius up to ε.

An adversarial example found at radius r lies in every larger ball too, so an example broken at r
counts as broken at every larger radius: the worst case never rises with ε and never lies above
any single attack (RobustBench's "robust accuracy is the worst case").

By default the worst case is as strong as AutoAttack's first two stages at *every* radius, not
only the headline: after FGSM, PGD (and Square) have run on every example, APGD-CE and APGD-T
(DLR loss, min(9, classes - 1) targets) with AutoAttack's fixed 100 iterations attack the examples
still standing, radius by radius from the smallest, so the work goes only to the survivors and the
largest radius comes last. (:data:`STAGES`; the L2 radii get the L2 versions.) A first-order
pre-screen (:func:`linear_reach`, :data:`SCREEN_FACTOR`) spares them the examples far from every
decision boundary at that radius.

:func:`derive` is the hook the store calls when an evaluation is merged into an earlier one: the
worst case is recomputed from the per-example results of both, so it covers every attack measured.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from robustbench_mm.attacks.registry import ATTACKS, AttackResult
from robustbench_mm.core.inference import evaluating, frozen, model_device

SUITE = "adversarial"
# the worst case per norm: the test's name and the norm of the attacks it combines
WORST_CASE_NORMS = {"worst-case": "linf", "worst-case-l2": "l2"}
# AutoAttack's first two stages, run on the survivors of the cheaper attacks at every radius
STAGES = {"linf": ("apgd-ce", "apgd-t"), "l2": ("apgd-ce-l2", "apgd-t-l2")}
APGD_ITERATIONS = 100  # AutoAttack's, fixed (not --pgd-steps): the attacks are parameter-free
# The pre-screen: an example whose first-order distance to every decision boundary is more than
# twice the radius is not given to the APGD stages at that radius (it still faces FGSM, PGD and
# Square there). On the digits models the linear estimate overstated the distance of every
# example APGD-CE + APGD-T broke by less than 2x, while the screen spares most examples at the
# smallest radius, where almost all stand and the stages cost most (notes/measurements.md).
SCREEN_FACTOR = 2.0
Key = tuple[str, str, float]


def worst_case(
    runs: dict[tuple[str, float], np.ndarray], clean: np.ndarray | None, grid: list[float] | None = None
) -> dict[float, np.ndarray]:
    """Per radius ε, the examples correct under every attack in ``runs`` at every radius up to ε
    (an adversarial example found at a smaller radius is one at ε too). ``runs``: (attack, ε) ->
    bool per example, already false where the clean image is misclassified."""
    grid = sorted({e for _, e in runs}) if grid is None else grid
    alive = (clean if clean is not None else np.ones(len(next(iter(runs.values()))), dtype=bool)).copy()
    out = {}
    for eps in grid:
        for (_, e), ok in runs.items():
            if e == eps:
                alive &= ok
        out[float(eps)] = alive.copy()
    return out


def stages_for(norm: str, num_classes: int) -> list[str]:
    """The APGD stages the default worst case of ``norm`` runs (APGD-T needs 4 classes)."""
    return [s for s in STAGES[norm] if ATTACKS.get(s).min_classes <= num_classes]


def linear_reach(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str, batch_size: int = 500) -> np.ndarray:
    """Per example, the first-order distance to the nearest decision boundary (DeepFool's
    estimate): min over wrong classes t of (z_y - z_t) / ‖∇ₓ(z_y - z_t)‖, in the dual norm of the
    threat (L1 for L∞, L2 for L2); 0 where the example is misclassified. One backward pass per
    class at the clean point, for every radius at once."""
    dual = 1.0 if norm == "linf" else 2.0
    out = []
    with evaluating(model), frozen(model):
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(model_device(model)).requires_grad_(True)
            yb = y[start : start + batch_size].to(xb.device)
            with torch.enable_grad():
                z = model(xb).float()
                zy = z.gather(1, yb[:, None])[:, 0]
                reach = torch.full((len(yb),), torch.inf, device=xb.device)
                for t in range(z.shape[1]):
                    margin = zy - z[:, t]
                    (grad,) = torch.autograd.grad(margin.sum(), xb, retain_graph=True)
                    ratio = margin.detach() / grad.flatten(1).norm(p=dual, dim=1).clamp_min(1e-12)
                    reach = torch.where(yb == t, reach, torch.minimum(reach, ratio))
            out.append(reach.clamp_min(0).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def cascade(
    correct: dict[tuple[str, float], np.ndarray],
    clean: np.ndarray,
    grid: list[float],
    stages: list[str],
    attack: Callable[[str, float, torch.Tensor], AttackResult],
    reach: np.ndarray | None = None,
) -> tuple[dict[float, np.ndarray], list[dict]]:
    """The worst case over ``correct`` (attacks run on every example) and ``stages`` run, radius by
    radius in increasing order, only on the examples still standing: ``attack(name, eps, idx)``
    attacks the examples at positions ``idx``. ``reach`` (:func:`linear_reach`): the stages skip an
    example whose first-order distance to every boundary exceeds :data:`SCREEN_FACTOR` · ε.
    Returns ({ε: alive}, one log entry per stage run)."""
    alive = clean.copy()
    out: dict[float, np.ndarray] = {}
    log = []
    for eps in sorted(grid):
        for (_, e), ok in correct.items():
            if e == eps:
                alive &= ok
        near = alive if reach is None else alive & (reach <= SCREEN_FACTOR * eps)
        for stage in stages if eps > 0 else []:
            idx = np.flatnonzero(near & alive)
            if not len(idx):
                break
            ok = attack(stage, eps, torch.from_numpy(idx)).correct.numpy()
            alive[idx] &= ok
            log.append(
                {
                    "severity": float(eps),
                    "attack": stage,
                    "attacked": len(idx),
                    "broken": int((~ok).sum()),
                    "screened": int((alive & ~near).sum()),
                }
            )
        out[float(eps)] = alive.copy()
    return out, log


def derive(stored: dict[Key, np.ndarray], new: dict[Key, np.ndarray]) -> dict[Key, np.ndarray]:
    """The worst-case arrays of ``new`` merged into ``stored`` (the store's hook): per norm, every
    attack's per-example result in either, and both worst cases (each holds the survivors-only
    stages of its evaluation, which have no result of their own), at every radius up to ε."""
    merged = {**stored, **new}
    clean = merged.get(("clean", "clean", 0.0))
    out: dict[Key, np.ndarray] = {}
    for test, norm in WORST_CASE_NORMS.items():
        runs = {
            (t, sev): ok
            for (suite, t, sev), ok in merged.items()
            if suite == SUITE and t in ATTACKS and ATTACKS.get(t).norm == norm
        }
        for origin, source in (("stored", stored), ("new", new)):
            runs.update(
                {(f"{test}@{origin}", sev): ok for (suite, t, sev), ok in source.items() if (suite, t) == (SUITE, test)}
            )
        if runs:
            out.update({(SUITE, test, eps): alive for eps, alive in worst_case(runs, clean).items()})
    return out
