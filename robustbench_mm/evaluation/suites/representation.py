"""The representation lens: are each class's hidden states "flatter" after Manifold Mixup?

The paper (Sec. 3, Figs. 3-4) claims Manifold Mixup concentrates each class's hidden
representations in fewer directions of variance. For every mix point of a
:class:`~robustbench_mm.models.base.MixableNet` (``layer0`` = the normalized input, ``layerK``
= after stage K; the last stage's output is the head's input and is called ``penultimate``)
we take each class's test-set hidden states, flattened per example, centre them on the class
mean, and compute all singular values of that n_c x d matrix. Per layer, averaged over
classes:

- ``sv90`` / ``sv99``: the number of singular values that hold 90% / 99% of the class-centred
  variance (variance = squared singular values);
- ``effective-rank``: Roy & Vetterli (2007), exp of the Shannon entropy of the singular values
  normalised to sum 1 (1 for a rank-one matrix, r for r equal singular values);
- ``top-sv-share``: the share of the variance held by the top singular value.

Lower counts and effective rank, and a higher top share, mean flatter.

How the singular values are computed, and the memory it takes
--------------------------------------------------------------
The singular values of the centred class matrix X_c (n_c x d) are the square roots of the
eigenvalues of either Gram matrix, X_c^T X_c (d x d) or X_c X_c^T (n_c x n_c). We take the
smaller one, in float64, and ``torch.linalg.eigvalsh`` gives *every* singular value:

- d <= n_c (narrow layers: the input of digits, penultimate layers): the d x d Gram is summed
  batch by batch, never holding the class's hidden states (shifted by the first batch's mean,
  so that removing the class mean at the end does not cancel large numbers).
- d > n_c (wide conv layers): the class's n_c rows are kept (float32) and the n_c x n_c Gram
  is formed at the end, feature block by feature block.

Classes are processed one at a time, so the peak memory is, for the largest class used, the
sum over layers of ``8 * min(d, n_c)**2 + 4 * n_c * d * [d > n_c]`` bytes, plus one batch of
activations and one float64 block of n_c x 4,096 features; never the whole test set
(CIFAR-10, PreActResNet18, 1,000 test images per class: about 0.5 GB, where the whole test
set's hidden states would take 4.7 GB). ``max_per_class`` (a seeded subsample) caps n_c and
so the memory.
Randomised SVD (``torch.svd_lowrank``) was not used: it needs the matrix all the same and
returns only the top q singular values, while the 99% count and the entropy need all of them.

Values below the rounding noise of float32 hidden states (see :func:`_noise_floor`) count as
zero. A class with no variance at all is counted as rank one (effective rank 1, one singular
value holding everything): the limit of a rank-one spread shrinking to a point, and the
flattest a representation can be.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.inference import evaluating, model_device
from robustbench_mm.core.results import row
from robustbench_mm.evaluation.interface import SuiteContext, SuiteOutput, register_suite
from robustbench_mm.models.base import MixableNet

SUITE = "representation"
SPECTRA = "spectra"  # the table of normalised spectra a run keeps
METRICS = ("effective-rank", "sv90", "sv99", "top-sv-share")
PENULTIMATE = "penultimate"
_FEATURE_BLOCK = 4096  # features per float64 block when forming the n x n Gram


def require_mixable(model: nn.Module) -> Any:  # a MixableNet, or a HookedNet (the same hidden-state methods)
    """The model as a MixableNet (or a HookedNet: hidden states through hooks), or one line saying
    why it has no hidden states to measure."""
    if not isinstance(model, MixableNet) and not callable(getattr(model, "state_names", None)):
        raise UserError(
            f"the representation suite needs a model with mix points (a MixableNet); {type(model).__name__} has none"
        )
    return model


def layer_names(model: nn.Module) -> list[str]:
    """``layer0`` (normalized input), ``layer1`` .. ``layer{K-1}``, and ``penultimate`` (the head's input)."""
    net = require_mixable(model)
    if callable(getattr(net, "state_names", None)):  # a HookedNet names its own
        return net.state_names()
    stages = len(net.stages)
    return [f"layer{k}" for k in range(stages)] + [PENULTIMATE]


@torch.no_grad()
def collect_hidden_states(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> dict[str, torch.Tensor]:
    """Every layer's hidden states for ``x``, flattened per example: {layer name: (n, d) float32 on the CPU}.

    Holds the whole set in memory: meant for small sets and figures; the suite uses
    :func:`class_spectra`, which does not.
    """
    net = require_mixable(model)
    names = layer_names(net)
    device = model_device(net)
    chunks: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    with evaluating(net):
        for start in range(0, len(x), batch_size):
            states = net.hidden_states(x[start : start + batch_size].to(device))
            for name, h in zip(names, states, strict=True):
                chunks[name].append(h.flatten(1).float().cpu())
    return {name: torch.cat(parts) for name, parts in chunks.items()}


@dataclass
class _ClassGram:
    """Accumulates the centred Gram matrix of one class at one layer (see the module docstring)."""

    dim: int
    count: int  # rows this class will contribute: picks the smaller Gram before any row arrives
    rows: list[torch.Tensor] = field(default_factory=list)
    shift: torch.Tensor | None = None
    gram: torch.Tensor | None = None
    total: torch.Tensor | None = None
    max_norm: float = 0.0

    @property
    def by_features(self) -> bool:
        return self.dim <= self.count

    def add(self, h: torch.Tensor) -> None:
        h = h.flatten(1)
        self.max_norm = max(self.max_norm, float(h.float().norm(dim=1).max()))
        if not self.by_features:
            # kept as computed (float32 from a model; float64 rows keep their precision)
            self.rows.append(h if h.dtype == torch.float64 else h.float())
            return
        h = h.double()
        if self.shift is None:
            self.shift = h.mean(0)
            self.gram = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=h.device)
            self.total = torch.zeros(self.dim, dtype=torch.float64, device=h.device)
        assert self.gram is not None and self.total is not None  # set with the shift
        centred = h - self.shift
        self.gram += centred.T @ centred
        self.total += centred.sum(0)

    def centred_gram(self) -> torch.Tensor:
        if self.by_features:
            assert self.gram is not None and self.total is not None, "centred_gram() before any add()"
            return self.gram - torch.outer(self.total, self.total) / self.count
        # feature block by feature block, so no second copy of the rows is ever made
        rows, self.rows = self.rows, []
        n = sum(len(r) for r in rows)
        gram = torch.zeros(n, n, dtype=torch.float64, device=rows[0].device)
        for start in range(0, self.dim, _FEATURE_BLOCK):
            block = torch.cat([r[:, start : start + _FEATURE_BLOCK] for r in rows]).double()
            block -= block.mean(0)
            gram += block @ block.T
        return gram

    def singular_values(self) -> np.ndarray:
        """Every singular value of the centred class matrix, descending (min(n_c, d) of them)."""
        gram = self.centred_gram()
        eigenvalues = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0.0).cpu().numpy()
        values = np.sqrt(eigenvalues)
        values[values <= _noise_floor(values, self.count, self.dim, self.max_norm)] = 0.0
        return values


def _noise_floor(values: np.ndarray, n: int, d: int, max_norm: float) -> float:
    """Singular values at or below this are rounding noise, not variance.

    Two sources: float32 hidden states are exact only to ``eps32 * |h|`` per row (a matrix of
    such errors has norm up to ``sqrt(n) * eps32 * max|h|``), and the float64 Gram's
    eigenvalues are exact only to ``size * eps64 * lambda_max`` (the square root of that on the
    singular values).
    """
    eps32, eps64 = np.finfo(np.float32).eps, np.finfo(np.float64).eps
    top = float(values[0]) if len(values) else 0.0
    return max(math.sqrt(n) * float(eps32) * max_norm, math.sqrt(max(n, d) * float(eps64)) * top)


def singular_values(h: torch.Tensor) -> np.ndarray:
    """All singular values of one class's hidden states ``h`` (n, ...) after centring, descending."""
    acc = _ClassGram(dim=int(h[0].numel()), count=len(h))
    acc.add(h)
    return acc.singular_values()


def effective_rank(values: np.ndarray) -> float:
    """Roy & Vetterli (2007): exp of the Shannon entropy of the singular values normalised to sum 1."""
    values = np.asarray(values, dtype=np.float64)
    total = values.sum()
    if total <= 0:
        return 1.0  # no variance: counted as rank one (module docstring)
    p = values[values > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def variance_count(values: np.ndarray, share: float) -> int:
    """The fewest singular values whose squares hold ``share`` of the total variance."""
    variance = np.asarray(values, dtype=np.float64) ** 2
    total = variance.sum()
    if total <= 0:
        return 1
    cumulative = np.cumsum(np.sort(variance)[::-1])
    # a relative 1e-12 slack: 9/(9+1) must count as holding 90% although 0.9 has no exact float
    return int(np.searchsorted(cumulative, share * total * (1 - 1e-12), side="left") + 1)


def top_share(values: np.ndarray) -> float:
    """The share of the variance held by the largest singular value."""
    variance = np.asarray(values, dtype=np.float64) ** 2
    total = variance.sum()
    return float(variance.max() / total) if total > 0 else 1.0


def spectrum_metrics(values: np.ndarray) -> dict[str, float]:
    """Every metric of one class's singular values, keyed by metric name (:data:`METRICS`)."""
    return {
        "effective-rank": effective_rank(values),
        "sv90": float(variance_count(values, 0.90)),
        "sv99": float(variance_count(values, 0.99)),
        "top-sv-share": top_share(values),
    }


def _class_indices(
    y: torch.Tensor, num_classes: int, max_per_class: int | None, generator: torch.Generator | None
) -> list[torch.Tensor]:
    groups = []
    for label in range(num_classes):
        index = torch.nonzero(y == label).flatten()
        if max_per_class is not None and len(index) > max_per_class:
            order = torch.randperm(len(index), generator=generator)[:max_per_class]
            index = index[order.sort().values]
        if len(index) >= 2:  # one example has no spread to measure
            groups.append(index)
    if not groups:
        raise UserError("the representation suite needs at least two test images of some class")
    return groups


def class_spectra(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    batch_size: int = 500,
    max_per_class: int | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, list[np.ndarray]]:
    """Singular values of every class's centred hidden states at every layer: {layer: [per class]}.

    One class at a time, in batches of ``batch_size`` images, on the model's device, in eval
    mode (restored afterwards). ``max_per_class`` subsamples each class (drawn on
    ``generator``) to cap the memory (module docstring). Classes with fewer than two test
    images are skipped.
    """
    groups = _class_indices(y, num_classes, max_per_class, generator)
    return _group_spectra(require_mixable(model), x, groups, batch_size)


@torch.no_grad()
def _group_spectra(
    net: MixableNet, x: torch.Tensor, groups: list[torch.Tensor], batch_size: int
) -> dict[str, list[np.ndarray]]:
    names = layer_names(net)
    device = model_device(net)
    spectra: dict[str, list[np.ndarray]] = {name: [] for name in names}
    with evaluating(net):
        for index in groups:
            grams: list[_ClassGram] = []
            for start in range(0, len(index), batch_size):
                states = net.hidden_states(x[index[start : start + batch_size]].to(device))
                if not grams:
                    grams = [_ClassGram(dim=int(h[0].numel()), count=len(index)) for h in states]
                for gram, h in zip(grams, states, strict=True):
                    gram.add(h)
            for name, gram in zip(names, grams, strict=True):
                spectra[name].append(gram.singular_values())
    return spectra


def normalised_spectrum(values_per_class: list[np.ndarray]) -> np.ndarray:
    """Mean over classes of each class's singular values divided by their sum (shorter classes padded with 0)."""
    length = max(len(v) for v in values_per_class)
    table = np.zeros((len(values_per_class), length))
    for i, values in enumerate(values_per_class):
        total = values.sum()
        table[i, : len(values)] = values / total if total > 0 else np.eye(1, len(values))[0]
    return table.mean(0)


def representation_rows(spectra: dict[str, list[np.ndarray]], n: int) -> tuple[list[dict], pd.DataFrame]:
    """Rows ``representation/<layer>/0/<metric>`` (mean over classes) and the normalised spectra.

    The spectra table has columns ``layer``, ``index`` (1-based) and ``value`` (see
    :func:`normalised_spectrum`); a caller adds the run identity.
    """
    rows, frames = [], []
    for layer, per_class in spectra.items():
        metrics = [spectrum_metrics(values) for values in per_class]
        for metric in METRICS:
            rows.append(row(SUITE, layer, 0.0, metric, float(np.mean([m[metric] for m in metrics])), n))
        spectrum = normalised_spectrum(per_class)
        frames.append(pd.DataFrame({"layer": layer, "index": np.arange(1, len(spectrum) + 1), "value": spectrum}))
    return rows, pd.concat(frames, ignore_index=True)


@register_suite(
    "representation",
    order=50,
    description="flattening: singular-value spectra of each class's hidden states per mixing layer",
)
def representation_suite(ctx: SuiteContext) -> SuiteOutput:
    """The representation lens on the test set (every class with two or more images, every layer).

    ``ctx.config.representation_max_per_class`` (absent or None: every image) caps the images
    per class, and so the memory.
    """
    net = require_mixable(ctx.model)
    max_per_class = getattr(ctx.config, "representation_max_per_class", None)
    groups = _class_indices(ctx.y, ctx.num_classes, max_per_class, ctx.generator(SUITE, "subsample"))
    spectra = _group_spectra(net, ctx.x, groups, ctx.config.batch_size or 500)
    rows, table = representation_rows(spectra, sum(len(g) for g in groups))
    return SuiteOutput(rows=rows, tables={SPECTRA: table})
