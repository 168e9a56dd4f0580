"""How a training split is divided: the examples a run trains on and the holdout that calibrates
its temperature. Fixed by the run's seed, so evaluation finds exactly the examples training never
saw (config.toml and model.pt record the fraction and the seed)."""

from __future__ import annotations

import numpy as np
import torch

from robustbench_mm.core.errors import UserError


def holdout_split(n_train: int, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n_train)`` into (train_idx, holdout_idx) for fitting the temperature.

    The holdout gets ``round(fraction * n_train)`` examples (at least 1, leaving at least 1 for
    training), drawn uniformly without replacement by ``numpy.random.default_rng(seed)``; the
    same (n_train, fraction, seed) gives the same split on every machine and numpy version
    that keeps PCG64. Both index arrays are sorted int64 (sorted, so that subset reads from
    memory-mapped or on-disk data stay sequential). Not stratified: with the usual 10% of a
    dataset every class is represented anyway.
    """
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) or n_train < 2:
        raise UserError(f"holdout split needs at least 2 training examples, got {n_train!r}")
    if not (0.0 < fraction < 1.0):
        raise UserError(f"holdout fraction must be in (0, 1), got {fraction!r}")
    n_hold = min(max(int(round(fraction * n_train)), 1), n_train - 1)
    perm = np.random.default_rng(seed).permutation(int(n_train))
    return np.sort(perm[n_hold:]).astype(np.int64), np.sort(perm[:n_hold]).astype(np.int64)


def training_split(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, holdout) of the training split, as int64 tensors; ``fraction`` 0: no holdout."""
    if fraction == 0:
        return torch.arange(n), torch.empty(0, dtype=torch.int64)
    train_idx, holdout_idx = holdout_split(n, fraction, seed)
    return torch.from_numpy(train_idx), torch.from_numpy(holdout_idx)
