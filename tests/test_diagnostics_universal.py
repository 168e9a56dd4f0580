"""unbounded-not-zero and a universal-image optimum: an attack that drives every image to one
class, leaving only that class's examples, is not gradient masking and must not be flagged."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn

import robustbench_mm.attacks  # noqa: F401  (registers the attacks and the adversarial suite)
from robustbench_mm.attacks import AttackSettings, attack
from robustbench_mm.attacks import diagnostics as diag
from robustbench_mm.attacks.pgd import ranked_targets
from robustbench_mm.attacks.registry import BatchJob
from robustbench_mm.core.errors import UserError
from robustbench_mm.core.inference import predict_logits
from robustbench_mm.evaluation.interface import SUITES, SuiteContext
from robustbench_mm.settings import EvalConfig

UNIVERSAL, DECOY = 0, 3


class Universal(nn.Module):
    """Four classes read from the ink of an 8x8 image's left (u) and right (v) halves:
    0 = both halves inked (u + v > 1, so noise and saturated images are 0), 1 = left only,
    2 = right only, and 3 = a runner-up that never wins (its logit is 0's, minus 2, plus up to
    1.5 for ink). Untargeted PGD in the whole cube takes every image of classes 1 and 2 to class
    0; from a class-0 image the cross-entropy's gradient follows class 3, whose gain is more ink,
    so PGD stays in class 0 -- while the gradient is exact, and targeted PGD toward class 1 or 2
    gets there in a few steps. The same pattern as a normally trained MNIST model, whose
    unbounded PGD makes every image a saturated "8" and leaves the true 8s."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x[..., :4].mean(dim=(1, 2, 3)), x[..., 4:].mean(dim=(1, 2, 3))
        both = 20 * (u + v) - 20
        return torch.stack([both, 20 * (u - v), 20 * (v - u), both - 2 + 1.5 * (u + v) / 2], 1)


def _images(per_class: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """Classes 0, 1, 2: ink 0.85-1 where the class has it, 0-0.15 elsewhere."""
    g = torch.Generator().manual_seed(0)
    xs, ys = [], []
    for label, (left, right) in enumerate([(True, True), (True, False), (False, True)]):
        x = 0.15 * torch.rand(per_class, 1, 8, 8, generator=g)
        x[..., :4] += 0.85 * left
        x[..., 4:] += 0.85 * right
        xs.append(x)
        ys.append(torch.full((per_class,), label))
    return torch.cat(xs), torch.cat(ys)


def _unbounded(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **options):
    return attack(
        "pgd-linf",
        model,
        x,
        y,
        diag.UNBOUNDED_EPS,
        num_classes=4,
        settings=AttackSettings(steps=20),
        generator=torch.Generator().manual_seed(0),
        keep_logits=True,
        **options,
    )


def test_a_universal_image_optimum_is_not_flagged() -> None:
    model, (x, y) = Universal().eval(), _images()
    assert bool((model(x).argmax(1) == y).all())
    # the premise: untargeted unbounded PGD leaves many survivors, all of class 0, and takes
    # most of the others to class 0 -- what the check used to flag
    res = _unbounded(model, x, y)
    survivors = Counter(y[res.correct].tolist())
    assert set(survivors) == {UNIVERSAL} and survivors[UNIVERSAL] > 0.1 * len(y)
    fooled_into = Counter(res.logits.argmax(1)[~res.correct].tolist())
    assert fooled_into.most_common(1)[0][0] == UNIVERSAL and 2 * fooled_into[UNIVERSAL] >= sum(fooled_into.values())
    # the whole suite: the follow-up moves the survivors, the check stays quiet
    ctx = SuiteContext(
        model=model,
        x=x,
        y=y,
        num_classes=4,
        dataset="digits",
        config=EvalConfig(),
        device=torch.device("cpu"),
        clean_logits=predict_logits(model, x),
    )
    out = SUITES.get("adversarial").run(ctx)
    rows = {r["metric"]: r["value"] for r in out.rows if r["test"] == "unbounded-not-zero"}
    assert rows == {"flag": 0.0, "value": 0.0}
    assert not any(diag.flagged(out.rows).values())


def test_targeted_pgd_goes_to_the_ranked_target() -> None:
    model, (x, y) = Universal().eval(), _images()
    zeros = y == UNIVERSAL
    # rank 1 of a class-0 image is the class that never wins: the targeted attack cannot succeed
    assert bool(_unbounded(model, x[zeros], y[zeros], target_rank=1).correct.all())
    # rank 2 is class 1 or 2: every image gets there
    res = _unbounded(model, x[zeros], y[zeros], target_rank=2)
    assert not bool(res.correct.any())
    job = BatchJob(
        model=model,
        x=x[zeros],
        y=y[zeros],
        eps=1.0,
        grad_model=model,
        clean_ok=torch.ones(int(zeros.sum()), dtype=torch.bool),
        num_classes=4,
        steps=1,
        restarts=1,
        step_size=None,
        random_start=False,
        generator=torch.Generator(),
        only_correct=True,
        autocast=torch.no_grad,
    )
    targets = ranked_targets(job, 2)
    assert bool((ranked_targets(job, 1) == DECOY).all())
    assert bool((res.logits.argmax(1) == targets).all())
    for bad in (0, 4, 1.5, True):
        with pytest.raises(UserError, match="target_rank must be an integer in 1..3"):
            ranked_targets(job, bad)
    with pytest.raises(UserError, match="has no option target_rank"):
        attack("pgd-l2", model, x, y, 0.5, num_classes=4, target_rank=1)


def test_only_survivors_of_the_universal_class_are_attacked_again() -> None:
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    clean_ok = torch.ones(10, dtype=torch.bool)
    calls: list[tuple[list[int], int]] = []

    def retarget(idx: torch.Tensor, k: int) -> torch.Tensor:  # fools the first example it is given
        calls.append((idx.tolist(), k))
        return torch.arange(len(idx)) > 0

    survived = torch.tensor([True, True, True, True, False, False, False, False, False, False])
    into_zero = torch.tensor([0, 0, 0, 1, 0, 0, 0, 0, 0, 1])  # 5 of the 6 fooled went to class 0
    acc = diag.unbounded_accuracy(y, clean_ok, survived, into_zero, retarget, num_classes=10)
    # the class-0 survivors get targeted PGD toward ranks 1, 2, 3 in turn; the class-1 survivor is
    # not attacked again and still counts
    assert calls == [([0, 1, 2], 1), ([1, 2], 2), ([2], 3)]
    assert acc == pytest.approx(0.1)
    # the fooled examples spread over classes: no universal image, no follow-up
    calls.clear()
    spread = torch.tensor([0, 0, 0, 1, 1, 3, 4, 5, 6, 7])
    assert diag.unbounded_accuracy(y, clean_ok, survived, spread, retarget, num_classes=10) == pytest.approx(0.4)
    assert calls == [] and diag.universal_class(y, spread, clean_ok & ~survived) is None
