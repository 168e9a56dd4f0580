"""Our own first-order attacks: FGSM, PGD-L∞ and PGD-L2, on a fast path.

PGD follows Madry et al. (2018): a random start in the ε-ball, ``steps`` signed (L∞) or
normalized (L2) gradient steps of size α = 2.5·ε/steps on the cross-entropy, projection onto the
ε-ball ∩ [0, 1] after every step, and restarts of which an example must survive all.

What makes it fast, without changing any number it reports:

* **Only examples still correct are attacked** (AutoAttack does this). An example is *fooled*
  the first time any iterate it visits -- the random start, an intermediate step, the last
  step -- is misclassified; that iterate is kept as its adversarial example and the example
  leaves the batch. Continuing to attack it could only change which adversarial example we
  keep, never the verdict. Restarts attack only the survivors of the previous ones.
* The forward pass that computes the gradient also tells which examples are fooled, so there is
  no extra evaluation pass per step.
* Gradients w.r.t. the input only (``torch.autograd.grad``; the driver switches parameters'
  ``requires_grad`` off), in-place updates on one buffer, no per-step ``.item()``.
* On CUDA the shrinking batch is cut to multiples of 64 rows (a few already-fooled rows ride
  along) so cuDNN's autotuner sees a handful of shapes rather than one per step.

``only_correct=False`` attacks every example for every step and restart with the same verdict
rule, so on deterministic settings both give identical results; it exists to test exactly that.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustbench_mm.attacks.registry import AttackSpec, BatchJob, register
from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import clip

_CUDA_BUCKET = 64


def start_noise(generator: torch.Generator, shape: torch.Size, norm: str, eps: float) -> torch.Tensor:
    """A uniformly random point of the ε-ball (drawn on the CPU from ``generator``).

    L∞: uniform in [-ε, ε]^d. L2: a Gaussian direction scaled by ε·u^(1/d), u ~ U(0, 1), which is
    uniform in the L2 ball of dimension d.
    """
    if norm == "linf":
        return torch.rand(shape, generator=generator).mul_(2).sub_(1).mul_(eps)
    direction = torch.randn(shape, generator=generator)
    d = direction[0].numel() if len(direction) else 1
    radius = torch.rand(shape[0], generator=generator).pow_(1.0 / d).mul_(eps)
    scale = radius / direction.flatten(1).norm(dim=1).clamp_min(1e-12)
    return direction.mul_(scale.view(-1, *([1] * (len(shape) - 1))))


def _rows_to_keep(alive: torch.Tensor) -> torch.Tensor | None:
    """Indices of the rows to keep attacking, or None when compaction is not worth it."""
    if alive.device.type != "cuda":
        if bool(alive.all()):
            return None
        return alive.nonzero().squeeze(1)
    m = int(alive.sum())  # the one host sync per step
    keep = min(len(alive), -(-m // _CUDA_BUCKET) * _CUDA_BUCKET)
    if keep >= len(alive):
        return None
    # alive rows first (stable), topped up with already-fooled rows to the bucket size
    return torch.argsort((~alive).to(torch.int8), stable=True)[:keep]


def pgd(
    job: BatchJob,
    norm: str,
    steps: int,
    alpha: float,
    random_start: bool,
    restarts: int,
    targets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PGD on one batch; returns (adversarial images, still-correct bool) on the batch's device.

    ``targets`` (a class per example): targeted PGD, descending the cross-entropy toward the
    target instead of ascending it away from the label. Either way an example is fooled when
    any iterate is misclassified, into the target or not.
    """
    model, x, y, eps = job.model, job.x, job.y, job.eps
    n, device = len(x), x.device
    view = (-1,) + (1,) * (x.dim() - 1)
    correct = job.clean_ok.clone()  # sticky: once fooled, never correct again
    x_best = x.clone()
    for _ in range(restarts):
        noise = start_noise(job.generator, x.shape, norm, eps).to(device) if random_start else None
        if job.only_correct:
            idx = correct.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
        else:
            idx = torch.arange(n, device=device)
        x0, yy = x[idx], y[idx]
        tt = targets[idx] if targets is not None else None
        xa, lo, hi = _start_point(x0, noise[idx] if noise is not None else None, norm, eps)
        for step in range(steps + 1):
            last = step == steps
            if last:
                with torch.no_grad(), job.autocast():
                    logits = model(xa)
            else:
                xa.requires_grad_(True)
                with torch.enable_grad(), job.autocast():
                    logits = job.grad_model(xa)
            fooled = logits.argmax(1) != yy
            was_correct = correct[idx]
            newly = fooled & was_correct  # keep the *first* iterate that fooled each example
            now_correct = was_correct & ~fooled
            correct[idx] = now_correct
            store = (newly | now_correct) if last else newly
            x_best[idx] = torch.where(store.view(view), xa.detach(), x_best[idx])
            if last:
                break
            if tt is None:
                loss = F.cross_entropy(logits.float(), yy, reduction="sum")
            else:
                loss = -F.cross_entropy(logits.float(), tt, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xa)
            xa = xa.detach()
            if job.only_correct:
                rows = _rows_to_keep(now_correct)
                if rows is not None:
                    if rows.numel() == 0:
                        break
                    idx, yy, xa, grad = idx[rows], yy[rows], xa[rows], grad[rows]
                    tt = tt[rows] if tt is not None else None
                    if norm == "linf":
                        lo, hi = lo[rows], hi[rows]
                    else:
                        x0 = x0[rows]
            xa = _ascend(xa, grad, norm, alpha, eps, lo, hi, x0)
    return x_best, correct


def _start_point(
    x0: torch.Tensor, noise: torch.Tensor | None, norm: str, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first iterate and, under L∞, the box [lo, hi] it stays in (ε-ball ∩ [0, 1]; x0 under L2)."""
    if norm == "linf":
        lo, hi = (x0 - eps).clamp_(min=0.0), (x0 + eps).clamp_(max=1.0)
        xa = x0 + noise if noise is not None else x0.clone()
        return xa.clamp_(min=lo, max=hi), lo, hi
    xa = (x0 + noise).clamp_(0.0, 1.0) if noise is not None else x0.clone()
    return xa, x0, x0


def _ascend(
    xa: torch.Tensor,
    grad: torch.Tensor,
    norm: str,
    alpha: float,
    eps: float,
    lo: torch.Tensor,
    hi: torch.Tensor,
    x0: torch.Tensor,
) -> torch.Tensor:
    """One step along ``grad`` (sign under L∞, normalised under L2), projected back into the ball
    and [0, 1]. ``xa`` and ``grad`` (N, ...) are consumed (updated in place)."""
    if norm == "linf":
        xa.add_(grad.sign_(), alpha=alpha)
        return xa.clamp_(min=lo, max=hi)
    view = (-1,) + (1,) * (xa.dim() - 1)
    gnorm = grad.flatten(1).norm(dim=1).clamp_min_(1e-12)
    xa.add_(grad.mul_((alpha / gnorm).view(view)))
    delta = xa.sub_(x0)
    dnorm = delta.flatten(1).norm(dim=1).clamp_min_(1e-12)
    delta.mul_((eps / dnorm).clamp_(max=1.0).view(view))
    return delta.add_(x0).clamp_(0.0, 1.0)


def _alpha(job: BatchJob) -> float:
    # Madry et al.: 2.5·ε/steps lets a step sequence cross the ball and back
    return job.step_size if job.step_size is not None else 2.5 * job.eps / job.steps


def _fgsm(job: BatchJob):
    # Goodfellow et al. (2015): one signed step of size ε from the clean image
    return pgd(job, "linf", steps=1, alpha=job.eps, random_start=False, restarts=1)


def ranked_targets(job: BatchJob, rank: object) -> torch.Tensor:
    """The ``rank``-th most likely wrong class of each clean example (1: the runner-up), the
    targets APGD-T (Croce & Hein 2020) takes in turn."""
    if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank < job.num_classes:
        raise UserError(f"target_rank must be an integer in 1..{job.num_classes - 1}, got {clip(rank)}")
    with torch.no_grad():
        logits = job.model(job.x).float()
    logits[torch.arange(len(logits), device=logits.device), job.y] = -torch.inf
    return logits.topk(rank, dim=1).indices[:, rank - 1]


def _pgd_linf(job: BatchJob):
    rank = job.options.get("target_rank")
    targets = ranked_targets(job, rank) if rank is not None else None
    return pgd(job, "linf", job.steps, _alpha(job), job.random_start, job.restarts, targets)


def _pgd_l2(job: BatchJob):
    return pgd(job, "l2", job.steps, _alpha(job), job.random_start, job.restarts)


register(
    AttackSpec(
        "fgsm",
        "linf",
        True,
        _fgsm,
        use_attack_copy=True,
        single_step=True,
        description="FGSM (Goodfellow et al. 2015), ours",
    )
)
register(
    AttackSpec(
        "pgd-linf",
        "linf",
        True,
        _pgd_linf,
        use_attack_copy=True,
        options=("target_rank",),
        description="PGD-L∞ (Madry et al. 2018), ours; target_rank=k: targeted at the k-th likeliest wrong class",
    )
)
register(
    AttackSpec("pgd-l2", "l2", True, _pgd_l2, use_attack_copy=True, description="PGD-L2 (Madry et al. 2018), ours")
)
