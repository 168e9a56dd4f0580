"""Gradient-masking checks: is the robust accuracy we report believable?

Following AutoAttack's automatic checks (Croce & Hein 2020, ``autoattack/checks.py``) and the
checklist of Carlini et al. (2019), "On Evaluating Adversarial Robustness" (§5.2, §7): each check
turns a symptom of a broken attack or a masked gradient into a flag.

=========================  ====================================================================
check                      flagged when
=========================  ====================================================================
fgsm-beats-pgd             FGSM (one step) leaves lower accuracy than PGD at the same ε: the
                           iterative attack is not following the gradient.
blackbox-beats-whitebox    Square (no gradients) leaves lower accuracy than the white-box attacks
                           together at the same ε: the gradients point the wrong way.
unbounded-not-zero         PGD-L∞ with ε = 1 (any image in [0, 1] is allowed) does not reach
                           ~0% accuracy: the attack cannot even find *some* misclassified image
                           (after the follow-up for a universal-image optimum, below).
non-monotone-eps           a multi-step attack's accuracy rises with ε (a larger ball contains the
                           smaller). FGSM is left out: its one step of length ε can overshoot,
                           and on MNIST models it does (notes/measurements.md).
non-monotone-steps         more PGD steps leave higher accuracy than fewer.
zero-gradients             the share of correctly classified examples whose input gradient of
                           the loss is zero or non-finite exceeds 1% (AutoAttack warns at any).
=========================  ====================================================================

Comparisons of two accuracies allow a tolerance of max(2 examples, 0.5%): two runs with
independent random starts legitimately differ by an example or two (seen on normally trained
digits models, 360 test images, for PGD-10 vs PGD-20), while a masked gradient moves tens.

**A universal-image optimum is not masking.** On a normally trained MNIST model, untargeted
PGD in the whole cube drives every image to one saturated image the model calls "8" (noise
alone gets there: the random start already fools most examples), so only true 8s "survive",
about a tenth of the examples, even with 100 steps -- while AutoAttack agrees with the
default worst case. :func:`unbounded_accuracy` therefore looks at who survived: when at least
half of the fooled examples were driven to one class (the universal image's class), the
survivors *of that class* are attacked again, with targeted PGD toward their most likely wrong
classes in turn (APGD-T's choice of targets, Croce & Hein 2020), up to
``UNBOUNDED_TARGETS``; a target fixed for the whole run does not wander between runner-ups as
the untargeted loss does. The check judges what is left. Why not re-attack every survivor: a
targeted cross-entropy is not saturated where the untargeted one is (with logits ×1e4 its
gradient is e_y − e_t, not 0), so it would hide exactly the masking of the untargeted loss --
the loss of the headline attacks -- that this check exists to show. Survivors of any other
class, or of the universal class that the targeted attacks cannot move either (a quantised
input: no gradient at all), still count. The cost is small: only survivors of one class are
attacked again, and a model that reaches 0% (the digits models) needs no follow-up at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_mm.core.inference import evaluating, frozen, model_device
from robustbench_mm.core.results import row

SUITE = "diagnostics"
CHECKS = (
    "fgsm-beats-pgd",
    "blackbox-beats-whitebox",
    "unbounded-not-zero",
    "non-monotone-eps",
    "non-monotone-steps",
    "zero-gradients",
)
UNBOUNDED_EPS = 1.0  # the whole [0, 1] cube
UNBOUNDED_MAX_ACCURACY = 0.01
UNBOUNDED_TARGETS = 3  # targeted follow-ups for survivors of a universal image's class
ZERO_GRADIENT_MAX_SHARE = 0.01


def tolerance(n: int) -> float:
    """Accuracy gap that counts as real: more than two examples and more than 0.5%."""
    return max(2.0 / max(n, 1), 0.005) + 1e-9


def zero_gradient_share(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> tuple[float, int]:
    """Share of the clean-correct examples whose cross-entropy input gradient is all zero or
    non-finite (AutoAttack's ``check_zero_gradients``), and how many examples were looked at.
    """
    device = model_device(model)
    zero, total = 0, 0
    with evaluating(model), frozen(model):
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device, torch.float32).requires_grad_(True)
            yb = y[start : start + batch_size].to(device)
            with torch.enable_grad():
                logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb, reduction="sum")
                (grad,) = torch.autograd.grad(loss, xb)
            ok = logits.detach().argmax(1) == yb
            g = grad.flatten(1)
            bad = (g.abs().sum(1) == 0) | ~torch.isfinite(g).all(1)
            zero += int((bad & ok).sum())
            total += int(ok.sum())
    return (zero / total if total else 0.0), total


def _max_rise(accs: Sequence[float]) -> float:
    """Largest increase of a later value over an earlier one (<= 0 when non-increasing)."""
    rise, low = float("-inf"), float("inf")
    for a in accs:
        if low < float("inf"):
            rise = max(rise, a - low)
        low = min(low, a)
    return rise if rise > float("-inf") else 0.0


def flag_rows(check: str, severity: float, value: float, flagged: bool, n: int) -> list[dict]:
    return [
        row(SUITE, check, severity, "flag", 1.0 if flagged else 0.0, n),
        row(SUITE, check, severity, "value", value, n),
    ]


def fgsm_beats_pgd(acc: Mapping[tuple[str, float], float], n: int) -> list[dict]:
    """acc: {(attack, ε): accuracy}. value = largest (PGD − FGSM) accuracy over the common ε."""
    gaps = [acc[("pgd-linf", e)] - acc[("fgsm", e)] for (a, e) in acc if a == "fgsm" and ("pgd-linf", e) in acc]
    if not gaps:
        return []
    value = max(gaps)
    return flag_rows("fgsm-beats-pgd", 0.0, value, value > tolerance(n), n)


def blackbox_beats_whitebox(eps: float, blackbox_acc: float, whitebox_acc: float, n: int) -> list[dict]:
    """value = white-box worst-case accuracy − black-box accuracy at ``eps``."""
    value = whitebox_acc - blackbox_acc
    return flag_rows("blackbox-beats-whitebox", eps, value, value > tolerance(n), n)


def universal_class(y: torch.Tensor, adv_pred: torch.Tensor, fooled: torch.Tensor) -> int | None:
    """The class at least half of the fooled examples were driven to (their adversarial
    images' predicted class), or None when the attack spread them over several classes."""
    if not bool(fooled.any()):
        return None
    classes, counts = torch.unique(adv_pred[fooled], return_counts=True)
    best = int(counts.argmax())
    return int(classes[best]) if 2 * int(counts[best]) >= int(fooled.sum()) else None


def unbounded_accuracy(
    y: torch.Tensor,
    clean_ok: torch.Tensor,
    still_correct: torch.Tensor,
    adv_pred: torch.Tensor,
    retarget: Callable[[torch.Tensor, int], torch.Tensor],
    num_classes: int,
    targets: int = UNBOUNDED_TARGETS,
) -> float:
    """Accuracy in the whole cube, with the follow-up for a universal-image optimum.

    ``still_correct``/``adv_pred``: the untargeted unbounded attack's verdicts and its adversarial
    images' predictions. ``retarget(indices, k)`` attacks examples ``indices`` with targeted PGD
    toward their k-th most likely wrong class and returns their still-correct verdicts.
    """
    alive = still_correct.clone()
    target_class = universal_class(y, adv_pred, clean_ok & ~still_correct)
    if target_class is not None:
        for k in range(1, min(targets, num_classes - 1) + 1):
            idx = (alive & (y == target_class)).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            alive[idx] = retarget(idx, k)
    return float(alive.float().mean()) if len(alive) else 0.0


def unbounded_not_zero(accuracy: float, n: int, eps: float = UNBOUNDED_EPS) -> list[dict]:
    """value = accuracy left by the unbounded attack (after :func:`unbounded_accuracy`'s follow-up)."""
    return flag_rows("unbounded-not-zero", eps, accuracy, accuracy > UNBOUNDED_MAX_ACCURACY, n)


def non_monotone_eps(curves: Mapping[str, Sequence[float]], n: int) -> list[dict]:
    """curves: {attack: accuracies in increasing ε}. value = the largest rise over all attacks."""
    rises = [_max_rise(c) for c in curves.values() if len(c) >= 2]
    if not rises:
        return []
    value = max(rises)
    return flag_rows("non-monotone-eps", 0.0, value, value > tolerance(n), n)


def non_monotone_steps(eps: float, accs_by_steps: Sequence[float], n: int) -> list[dict]:
    """accs_by_steps: PGD accuracies for an increasing number of steps at ``eps``."""
    value = _max_rise(accs_by_steps)
    return flag_rows("non-monotone-steps", eps, value, value > tolerance(n), n)


def zero_gradients(share: float, n: int) -> list[dict]:
    return flag_rows("zero-gradients", 0.0, share, share > ZERO_GRADIENT_MAX_SHARE, n)


def flagged(rows: Sequence[dict]) -> dict[str, bool]:
    """{check: flagged?} from diagnostics rows (a check is flagged if any of its flag rows is)."""
    out: dict[str, bool] = {}
    for r in rows:
        if r["suite"] == SUITE and r["metric"] == "flag":
            out[r["test"]] = out.get(r["test"], False) or r["value"] > 0
    return out
