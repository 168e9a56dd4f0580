"""Calibration metrics on logits: ECE (three flavours), MCE, NLL, Brier, temperature scaling.

Every public function takes ``logits`` of shape (N, C) (float, any device) and ``labels`` of
shape (N,) (long) and returns Python floats (or a small DataFrame), so callers never have to
care where the tensors live.

Binning follows ``torchmetrics.functional.classification.multiclass_calibration_error`` exactly,
so our ECE/MCE agree with the library a reviewer is most likely to check against:
equal-width bins ``[k/B, (k+1)/B)`` that are closed on the left, plus one extra degenerate slot
for confidences that are *exactly* 1.0 (``torch.bucketize(..., right=True)`` puts them there).
That slot matters in practice: a float32 softmax saturates to 1.0 for logit gaps above ~17,
which well-trained MNIST-like models produce often. :func:`reliability_bins` folds that slot
into the last bin (making it ``[1 - 1/B, 1]``) because a plot wants exactly B bars.

References: Guo et al. 2017 (ECE, MCE, temperature scaling); Nixon et al. 2019 (adaptive,
equal-mass ECE); Kull et al. 2019 (classwise ECE); Brier 1950.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from robustbench_mm.core import results

METRICS = ("ece", "ece-adaptive", "ece-classwise", "mce", "nll", "brier", "confidence", "accuracy")

# Search interval for the temperature. Guo et al. report fitted temperatures between ~1 and ~3
# for modern networks; [0.05, 20] leaves a wide margin on both sides while keeping logits/T
# finite in float64.
T_MIN, T_MAX = 0.05, 20.0


# --------------------------------------------------------------------------- helpers


def _check(logits: torch.Tensor, labels: torch.Tensor) -> None:
    """Shape/type checks: a wrong shape here is a pipeline bug, so fail loudly and early."""
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must be (N,) with N={logits.shape[0]}, got shape {tuple(labels.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("calibration metrics need at least one example")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")


def _probs(logits: torch.Tensor) -> torch.Tensor:
    """Softmax in the logits' own precision (float32 for the usual case).

    Keeping the input precision is what makes bin assignment identical to torchmetrics run on
    ``softmax(logits)``; half precision is lifted to float32 because fp16 probabilities are
    too coarse to bin.
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return torch.softmax(logits, dim=1)


def _bin_stats(conf: torch.Tensor, hit: torch.Tensor, n_bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-bin (count, mean confidence, mean accuracy) over n_bins + 1 slots (see module doc).

    Empty bins get mean 0 (not NaN) so that their weighted contribution and their |gap| are 0,
    as in torchmetrics.
    """
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    edges = torch.linspace(0, 1, n_bins + 1, dtype=conf.dtype, device=conf.device)
    conf = conf.contiguous()  # a class column of probs is strided; bucketize wants contiguous
    idx = torch.bucketize(conf, edges, right=True) - 1
    # Negative confidences cannot come from a softmax; clamp only guards against -0.0 oddities.
    idx = idx.clamp_(min=0)
    count = torch.zeros(n_bins + 1, dtype=conf.dtype, device=conf.device).scatter_add_(0, idx, torch.ones_like(conf))
    conf_sum = torch.zeros_like(count).scatter_add_(0, idx, conf)
    hit_sum = torch.zeros_like(count).scatter_add_(0, idx, hit.to(conf.dtype))
    return count, torch.nan_to_num(conf_sum / count), torch.nan_to_num(hit_sum / count)


def _binned_ece(conf: torch.Tensor, hit: torch.Tensor, n_bins: int) -> float:
    count, mean_conf, mean_hit = _bin_stats(conf, hit, n_bins)
    return float(((mean_hit - mean_conf).abs() * count / count.sum()).sum())


def _top_label(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(confidence of the predicted class, 1.0 where the prediction is right)."""
    _check(logits, labels)
    conf, pred = _probs(logits).max(dim=1)
    return conf, (pred == labels).to(conf.dtype)


# --------------------------------------------------------------------------- metrics


def ece(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Top-label expected calibration error with equal-width bins (Guo et al. 2017), in [0, 1]."""
    conf, hit = _top_label(logits, labels)
    return _binned_ece(conf, hit, n_bins)


def mce(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Maximum calibration error: the largest |accuracy - confidence| over non-empty bins."""
    conf, hit = _top_label(logits, labels)
    _, mean_conf, mean_hit = _bin_stats(conf, hit, n_bins)
    return float((mean_hit - mean_conf).abs().max())


def adaptive_ece(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """ECE with equal-mass bins (Nixon et al. 2019).

    The confidences are sorted and cut into ``n_bins`` consecutive groups whose sizes differ by
    at most one (``torch.tensor_split`` semantics: the first ``N % n_bins`` groups get the extra
    example). Equal-width bins leave most bins nearly empty for confident models; equal mass
    spends the resolution where the predictions are. Ties are broken by the stable sort, so the
    result is deterministic.
    """
    conf, hit = _top_label(logits, labels)
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    order = torch.sort(conf, stable=True).indices
    total = 0.0
    for group in torch.tensor_split(order, n_bins):
        if group.numel():  # fewer examples than bins leaves some groups empty
            total += group.numel() * abs(float(hit[group].mean()) - float(conf[group].mean()))
    return total / conf.numel()


def classwise_ece(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Classwise ECE (Kull et al. 2019): mean over classes of the binned ECE of p_c vs 1[y = c].

    Unlike top-label ECE it also scores the probabilities given to the classes the model did
    *not* pick, which is where mixup-style soft targets change things.
    """
    _check(logits, labels)
    probs = _probs(logits)
    onehot = F.one_hot(labels, probs.shape[1]).to(probs.dtype)
    per_class = [_binned_ece(probs[:, c], onehot[:, c], n_bins) for c in range(probs.shape[1])]
    return float(np.mean(per_class))


def nll(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-likelihood in nats (float64 so saturated logits do not round to 0)."""
    _check(logits, labels)
    return float(F.cross_entropy(logits.double(), labels))


def brier(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Multi-class Brier score: mean over examples of sum_c (p_c - 1[y = c])^2, in [0, 2]."""
    _check(logits, labels)
    probs = torch.softmax(logits.double(), dim=1)
    onehot = F.one_hot(labels, probs.shape[1]).to(probs.dtype)
    return float(((probs - onehot) ** 2).sum(dim=1).mean())


def mean_confidence(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean max-softmax probability; compare with accuracy for the sign of miscalibration."""
    conf, _ = _top_label(logits, labels)
    return float(conf.double().mean())


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of examples whose argmax is the label, in [0, 1]."""
    _, hit = _top_label(logits, labels)
    return float(hit.double().mean())


def reliability_bins(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> pd.DataFrame:
    """The data of a reliability diagram: one row per equal-width bin.

    Columns: bin (0..n_bins-1), lower, upper, count, accuracy, confidence. Empty bins have
    count 0 and NaN accuracy/confidence (a plot must not draw a bar there). Confidences of
    exactly 1.0 are counted in the last bin, so ``count`` sums to N.
    """
    conf, hit = _top_label(logits, labels)
    count, mean_conf, mean_hit = (t.double().cpu().numpy() for t in _bin_stats(conf, hit, n_bins))
    # Fold the "exactly 1.0" slot into the last bin with count-weighted means.
    c_last = count[-2] + count[-1]
    if count[-1] > 0:
        mean_conf[-2] = (mean_conf[-2] * count[-2] + mean_conf[-1] * count[-1]) / c_last
        mean_hit[-2] = (mean_hit[-2] * count[-2] + mean_hit[-1] * count[-1]) / c_last
    count[-2] = c_last
    count, mean_conf, mean_hit = count[:-1], mean_conf[:-1], mean_hit[:-1]
    empty = count == 0
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins, dtype=np.int64),
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": count.round().astype(np.int64),
            "accuracy": np.where(empty, np.nan, mean_hit),
            "confidence": np.where(empty, np.nan, mean_conf),
        }
    )


def calibration_metrics(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict[str, float]:
    """All calibration numbers for one set of predictions, keyed by the schema's metric names."""
    return {
        "ece": ece(logits, labels, n_bins),
        "ece-adaptive": adaptive_ece(logits, labels, n_bins),
        "ece-classwise": classwise_ece(logits, labels, n_bins),
        "mce": mce(logits, labels, n_bins),
        "nll": nll(logits, labels),
        "brier": brier(logits, labels),
        "confidence": mean_confidence(logits, labels),
        "accuracy": accuracy(logits, labels),
    }


# --------------------------------------------------------------------------- temperature scaling


def _nll_at_log_t(z: torch.Tensor, labels: torch.Tensor, log_t: float) -> float:
    return float(F.cross_entropy(z / math.exp(log_t), labels))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, tol: float = 1e-7) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising NLL(softmax(logits / T)).

    Why golden-section search rather than gradient descent: NLL is convex in beta = 1/T
    (a log-sum-exp of affine functions of beta), hence unimodal in log T, so a bracketed
    golden-section search on log T in [log T_MIN, log T_MAX] is guaranteed to converge to the
    global minimiser, needs no learning rate, and is bit-for-bit deterministic. We run it to a
    tolerance of ``tol`` in log T (about 35 NLL evaluations for the default), in float64.

    If the minimiser lies outside the bracket (e.g. every training example is right with a huge
    margin, so NLL keeps falling as T -> 0) the nearest end of the bracket is returned.
    """
    _check(logits, labels)
    z = logits.detach().double()
    invphi = (math.sqrt(5.0) - 1.0) / 2.0  # 1/golden ratio: the interval shrinks by this per step
    a, b = math.log(T_MIN), math.log(T_MAX)
    c, d = b - invphi * (b - a), a + invphi * (b - a)
    fc, fd = _nll_at_log_t(z, labels, c), _nll_at_log_t(z, labels, d)
    while b - a > tol:
        if fc <= fd:  # minimiser in [a, d]
            b, d, fd = d, c, fc
            c = b - invphi * (b - a)
            fc = _nll_at_log_t(z, labels, c)
        else:  # minimiser in [c, b]
            a, c, fc = c, d, fd
            d = a + invphi * (b - a)
            fd = _nll_at_log_t(z, labels, d)
    # Refinement: the bracket ends are candidates too (the interior points never touch them),
    # so a minimiser at the edge of the search range is returned exactly.
    candidates = [(a + b) / 2.0, math.log(T_MIN), math.log(T_MAX)]
    best = min(candidates, key=lambda lt: _nll_at_log_t(z, labels, lt))
    return math.exp(best)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / T, with a check that T is a usable temperature."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return logits / temperature


# --------------------------------------------------------------------------- results rows


def calibration_rows(
    logits: torch.Tensor,
    labels: torch.Tensor,
    suite: str = "calibration",
    test: str = "clean",
    severity: float = 0.0,
    temperature: float | None = None,
    n_bins: int = 15,
) -> list[dict]:
    """Result rows (``results.row`` dicts) for every metric of :func:`calibration_metrics`.

    With a ``temperature`` (fitted on a held-out split, never on the data scored here) the same
    metrics are repeated on ``logits / temperature`` with names suffixed ``-ts`` (``ece-ts``,
    ``nll-ts``, ...), plus one row ``temperature`` holding T itself.
    """
    n = int(labels.shape[0])
    rows = [results.row(suite, test, severity, k, v, n) for k, v in calibration_metrics(logits, labels, n_bins).items()]
    if temperature is not None:
        scaled = calibration_metrics(apply_temperature(logits, float(temperature)), labels, n_bins)
        rows += [results.row(suite, test, severity, f"{k}-ts", v, n) for k, v in scaled.items()]
        rows.append(results.row(suite, test, severity, "temperature", float(temperature), n))
    return rows
