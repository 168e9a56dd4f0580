"""The outlier lens: is the model less confident off the data, and between classes?

The paper's abstract: ERM networks are confident on outliers and between classes, Manifold
Mixup networks are not. Two measurements:

**Outlier detection.** A score per image, higher = more in-distribution: the maximum softmax
probability (``msp``, Hendrycks & Gimpel 2017) and the negative energy ``T * logsumexp(f / T)``
with T = 1 (``energy``, Liu et al. 2020). Against each outlier set: AUROC, AUPR and the false
positive rate at 95% true positive rate, all with the *in-distribution* test set as the
positive class (Liu et al.'s convention: FPR95 = the share of outliers accepted when 95% of
test images are; AUROC does not depend on the choice, AUPR does: "AUPR-In"). Plus the mean
confidence (max softmax) on the outliers. Rows ``ood/<set>/0/<metric>-<score>`` and
``ood/<set>/0/confidence``; ``n`` is the number of outliers: as many as test images for the
synthetic sets, a seeded sample of at most that many from a dataset (AUPR depends on the
ratio, so it stays at most 1:1).

**Interpolations.** Each test image is paired with a test image of another class (seeded);
the mean confidence on ``lam * x_i + (1 - lam) * x_j`` for lam in 0, 0.1, ..., 1: rows
``ood/interpolation/<lam>/confidence``. lam = 0.5 is the paper's "between classes".

Outlier sets (no download): ``uniform`` (i.i.d. U(0, 1) pixels), ``gaussian`` (i.i.d.
N(0.5, 1) clipped to [0, 1], Hendrycks et al. 2019's Gaussian outliers), ``pixel-shuffle``
(each test image with its pixels permuted: the same colours, no structure). Any dataset name
that :func:`robustbench_mm.data.datasets.load_dataset` accepts (``svhn``, ``imagefolder:<path>``)
contributes its test split: images of another size are resized (bilinear, antialiased) to the
model's size, as the LSUN/TinyImageNet "(resize)" benchmarks do; images with another number of
channels are refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.inference import predict_logits
from robustbench_mm.core.results import row
from robustbench_mm.data.datasets import DATASETS, load_dataset, to_float
from robustbench_mm.evaluation.interface import SuiteContext, SuiteOutput, register_suite

SUITE = "ood"
SYNTHETIC = ("uniform", "gaussian", "pixel-shuffle")
DEFAULT_SETS = SYNTHETIC
SCORES = ("msp", "energy")
LAMBDAS = tuple(round(0.1 * k, 1) for k in range(11))


# --------------------------------------------------------------------------- scores and metrics


def msp_score(logits: torch.Tensor) -> np.ndarray:
    """Maximum softmax probability per row (Hendrycks & Gimpel 2017), float64."""
    return logits.double().softmax(1).max(1).values.numpy()


def energy_score(logits: torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    """Negative energy ``T * logsumexp(f / T)`` (Liu et al. 2020): higher = more in-distribution."""
    return (temperature * torch.logsumexp(logits.double() / temperature, dim=1)).numpy()


SCORE_FUNCTIONS = {"msp": msp_score, "energy": energy_score}


def _ranked_counts(scores_in: np.ndarray, scores_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives at every distinct threshold, highest score first (in = positive).

    Tied scores share one threshold, so ties are neither split nor ordered by input position.
    """
    scores = np.concatenate([scores_in, scores_out]).astype(np.float64)
    positive = np.concatenate([np.ones(len(scores_in)), np.zeros(len(scores_out))])
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order]
    last_of_threshold = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(positive)[last_of_threshold]
    fp = last_of_threshold + 1 - tp
    return tp, fp


def detection_metrics(scores_in: np.ndarray, scores_out: np.ndarray) -> dict[str, float]:
    """AUROC, AUPR and FPR at 95% TPR of separating in-distribution (positive) from outliers.

    AUROC integrates the ROC curve with the trapezoid rule (ties count half), AUPR is the
    average precision (precision at each threshold weighted by the recall it adds), FPR95 is
    the smallest false positive rate at which at least 95% of in-distribution images pass:
    scikit-learn's roc_auc_score, average_precision_score and roc_curve, from one sort.
    """
    if len(scores_in) == 0 or len(scores_out) == 0:
        raise UserError("outlier detection needs in-distribution and outlier images")
    tp, fp = _ranked_counts(np.asarray(scores_in), np.asarray(scores_out))
    tpr = np.r_[0.0, tp / tp[-1]]
    fpr = np.r_[0.0, fp / fp[-1]]
    auroc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2)  # trapezoids (np.trapezoid needs NumPy 2)
    precision = tp / (tp + fp)
    aupr = float(np.sum(np.diff(tpr) * precision))
    fpr95 = float(fpr[np.searchsorted(tpr, 0.95, side="left")])
    return {"auroc": auroc, "aupr": aupr, "fpr95": fpr95}


def confidence(logits: torch.Tensor) -> float:
    """Mean maximum softmax probability."""
    return float(msp_score(logits).mean()) if len(logits) else float("nan")


def ood_rows(logits_in: torch.Tensor, logits_out: torch.Tensor, name: str) -> list[dict]:
    """Every detection metric for every score, plus the mean confidence on the outliers."""
    n = len(logits_out)
    rows = []
    for score in SCORES:
        function = SCORE_FUNCTIONS[score]
        for metric, value in detection_metrics(function(logits_in), function(logits_out)).items():
            rows.append(row(SUITE, name, 0.0, f"{metric}-{score}", value, n))
    rows.append(row(SUITE, name, 0.0, "confidence", confidence(logits_out), n))
    return rows


# --------------------------------------------------------------------------- outlier sets


def check_sets(names: Sequence[str]) -> list[str]:
    """The outlier set names, checked before any work (one line naming a bad one)."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise UserError("no outlier set given; valid: " + ", ".join(SYNTHETIC) + ", or a dataset name")
    for name in names:
        if name in SYNTHETIC or name in DATASETS:
            continue
        if name.startswith("imagefolder:") and name.split(":", 1)[1]:
            continue
        raise UserError(
            f"unknown outlier set {_shown(name)!r}; "
            f"valid: {', '.join(SYNTHETIC)}, {', '.join(DATASETS.names())}, imagefolder:<path>"
        )
    return list(dict.fromkeys(names))


def _shown(name: str) -> str:
    """A user-given name, capped so that a message stays one short line."""
    return name if len(name) <= 60 else name[:57] + "..."


def synthetic_outliers(name: str, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``len(x)`` outlier images shaped like ``x`` (float, [0, 1]), drawn on ``generator``."""
    shape = tuple(x.shape)
    if name == "uniform":
        return torch.rand(shape, generator=generator)
    if name == "gaussian":
        return (0.5 + torch.randn(shape, generator=generator)).clamp_(0.0, 1.0)
    if name == "pixel-shuffle":
        n, c, h, w = shape
        # one independent permutation of the h*w pixel positions per image; a pixel keeps its channels
        order = torch.rand(n, h * w, generator=generator).argsort(dim=1)
        flat = to_float(x).reshape(n, c, h * w)
        return flat.gather(2, order[:, None, :].expand(n, c, h * w)).reshape(shape)
    raise UserError(f"unknown synthetic outlier set {name!r}; valid: {', '.join(SYNTHETIC)}")


def dataset_outliers(name: str, like: torch.Tensor, data_root: str | None, generator: torch.Generator) -> torch.Tensor:
    """Up to ``len(like)`` test images of dataset ``name`` (seeded sample), at ``like``'s image size.

    Another image size is resized (bilinear, antialiased); another channel count is refused.
    """
    images = load_dataset(name, data_root).test_x
    channels, size = like.shape[1], tuple(like.shape[-2:])
    if images.shape[1] != channels:
        raise UserError(
            f"outlier set {_shown(name)} has {images.shape[1]}-channel images, "
            f"the model takes {channels}-channel ones (refused, not converted)"
        )
    if len(images) > len(like):
        images = images[torch.randperm(len(images), generator=generator)[: len(like)].sort().values]
    images = to_float(images)
    if tuple(images.shape[-2:]) != size:
        images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False).clamp_(0.0, 1.0)
    return images


def outlier_images(
    name: str, x: torch.Tensor, generator: torch.Generator, data_root: str | None = None
) -> torch.Tensor:
    return (
        synthetic_outliers(name, x, generator) if name in SYNTHETIC else dataset_outliers(name, x, data_root, generator)
    )


# --------------------------------------------------------------------------- interpolations


def partners(y: torch.Tensor, generator: torch.Generator, max_rounds: int = 1000) -> torch.Tensor:
    """For every example, a uniformly drawn example of another class (redrawn until it is)."""
    if len(torch.unique(y)) < 2:
        raise UserError("interpolations need test images of at least two classes")
    partner = torch.randint(len(y), (len(y),), generator=generator)
    for _ in range(max_rounds):
        same = torch.nonzero(y[partner] == y).flatten()
        if len(same) == 0:
            return partner
        partner[same] = torch.randint(len(y), (len(same),), generator=generator)
    raise RuntimeError("could not draw partners of another class")  # probability ~ 0 with two classes present


def interpolation_confidence(
    model: torch.nn.Module,
    x: torch.Tensor,
    partner: torch.Tensor,
    lambdas: Sequence[float] = LAMBDAS,
    batch_size: int = 1000,
) -> dict[float, float]:
    """Mean confidence on ``lam * x + (1 - lam) * x[partner]`` for each lam (pixel space)."""
    x = to_float(x)
    other = x[partner]
    return {
        float(lam): confidence(predict_logits(model, torch.lerp(other, x, float(lam)), batch_size=batch_size))
        for lam in lambdas
    }


# --------------------------------------------------------------------------- the suite


def run_ood(ctx: SuiteContext, sets: Sequence[str] = DEFAULT_SETS, data_root: str | None = None) -> SuiteOutput:
    """Outlier detection against each set in ``sets``, then the interpolation curve."""
    sets = check_sets(sets)
    batch_size = ctx.config.batch_size or 1000
    out = SuiteOutput()
    for name in sets:
        images = outlier_images(name, ctx.x, ctx.generator(SUITE, name), data_root)
        logits = predict_logits(ctx.model, images, batch_size=batch_size)
        out.rows += ood_rows(ctx.clean_logits, logits, name)
    partner = partners(ctx.y, ctx.generator(SUITE, "interpolation"))
    for lam, value in interpolation_confidence(ctx.model, ctx.x, partner, batch_size=batch_size).items():
        out.rows.append(row(SUITE, "interpolation", lam, "confidence", value, len(partner)))
    return out


# The paper's own lenses (Verma et al. 2019, Sec. 3 and the abstract): cheap next to the attacks
# (one forward pass per layer, one per outlier set), so they run by default.
@register_suite(
    "ood",
    order=60,
    description="confidence off the data: outlier detection (MSP, energy) and confidence between classes",
)
def ood_suite(ctx: SuiteContext) -> SuiteOutput:
    """The outlier lens with the sets named by ``ctx.config.ood`` (absent or None: the synthetic three)
    and datasets read from ``ctx.config.ood_data_root`` (absent: ``data_root``, else None)."""
    sets = getattr(ctx.config, "ood", None) or DEFAULT_SETS
    data_root = getattr(ctx.config, "ood_data_root", None) or getattr(ctx.config, "data_root", None)
    return run_ood(ctx, sets, data_root)
