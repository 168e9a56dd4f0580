"""Calibration metrics: agreement with torchmetrics, hand-computed cases, temperature scaling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_calibration_error, multiclass_calibration_error

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.results import COLUMNS
from robustbench_mm.data.splits import holdout_split
from robustbench_mm.evaluation import calibration as cal


def _random_case(seed: int, n: int = 2000, c: int = 10, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g) * scale, torch.randint(0, c, (n,), generator=g)


def _calibrated_case(seed: int, n: int, c: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits z and labels drawn from softmax(z): z is calibrated by construction."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=g) * 2.0
    y = torch.multinomial(z.softmax(dim=1), 1, generator=g).squeeze(1)
    return z, y


def _binary_logits(p_first: list[float]) -> torch.Tensor:
    """Two-class logits whose softmax is (p, 1 - p) per row."""
    p = torch.tensor(p_first, dtype=torch.float64)
    return torch.stack([p.log(), (1 - p).log()], dim=1)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("scale", [0.5, 3.0, 30.0])  # 30: many confidences saturate to exactly 1.0
def test_ece_and_mce_match_torchmetrics(seed: int, scale: float) -> None:
    logits, labels = _random_case(seed, scale=scale)
    if scale == 30.0:
        labels[::2] = logits.argmax(dim=1)[::2]  # make half right so the top bins are populated
    probs = logits.softmax(dim=1)
    ref_ece = multiclass_calibration_error(probs, labels, num_classes=10, n_bins=15, norm="l1")
    ref_mce = multiclass_calibration_error(probs, labels, num_classes=10, n_bins=15, norm="max")
    assert cal.ece(logits, labels) == pytest.approx(float(ref_ece), abs=1e-6)
    assert cal.mce(logits, labels) == pytest.approx(float(ref_mce), abs=1e-6)


def test_adaptive_ece_known_value() -> None:
    # Sorted confidences 0.6, 0.7 | 0.8, 0.9 in two equal-mass bins; row 1 (0.7) is wrong.
    # Bin 1: acc 0.5, conf 0.65; bin 2: acc 1.0, conf 0.85 -> ECE = 0.5*0.15 + 0.5*0.15 = 0.15.
    logits = _binary_logits([0.8, 0.7, 0.9, 0.6])
    labels = torch.tensor([0, 1, 0, 0])
    assert cal.adaptive_ece(logits, labels, n_bins=2) == pytest.approx(0.15, abs=1e-9)
    # One bin holds everything: accuracy 0.75, mean confidence 0.75 -> 0.
    assert cal.adaptive_ece(logits, labels, n_bins=1) == pytest.approx(0.0, abs=1e-9)


def test_classwise_ece_known_value_and_torchmetrics() -> None:
    # Every row predicts p = (0.5, 0.3, 0.2); labels are 0, 0, 1, 2 (class frequencies .5, .25, .25).
    # Each class sits in one bin: |0.5-0.5| = 0, |0.25-0.3| = 0.05, |0.25-0.2| = 0.05 -> mean 1/30.
    logits = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64).log().repeat(4, 1)
    labels = torch.tensor([0, 0, 1, 2])
    assert cal.classwise_ece(logits, labels) == pytest.approx(0.1 / 3, abs=1e-9)
    # On random data: mean of per-class binary ECEs from torchmetrics.
    logits, labels = _random_case(7, c=5)
    probs = logits.softmax(dim=1)
    ref = np.mean(
        [float(binary_calibration_error(probs[:, c].contiguous(), (labels == c).long(), n_bins=15)) for c in range(5)]
    )
    assert cal.classwise_ece(logits, labels) == pytest.approx(ref, abs=1e-6)


def test_nll_brier_confidence_accuracy_known_values() -> None:
    c = 4
    uniform = torch.zeros(3, c)
    labels = torch.tensor([0, 1, 2])
    assert cal.nll(uniform, labels) == pytest.approx(math.log(c))
    assert cal.brier(uniform, labels) == pytest.approx(1 - 1 / c)  # (1-1/c)^2 + (c-1)/c^2
    assert cal.mean_confidence(uniform, labels) == pytest.approx(1 / c)
    # Two-class p = (0.8, 0.2): right -> NLL -log 0.8, Brier 2*0.2^2; wrong -> -log 0.2, 2*0.8^2.
    logits = _binary_logits([0.8, 0.8])
    labels = torch.tensor([0, 1])
    assert cal.nll(logits, labels) == pytest.approx(-(math.log(0.8) + math.log(0.2)) / 2)
    assert cal.brier(logits, labels) == pytest.approx((2 * 0.04 + 2 * 0.64) / 2)
    assert cal.accuracy(logits, labels) == pytest.approx(0.5)
    assert cal.mean_confidence(logits, labels) == pytest.approx(0.8)


def test_fit_temperature_recovers_known_temperature() -> None:
    # Labels ~ softmax(z), so z is calibrated; the model reports z * 2.5, hence T = 2.5 undoes it.
    z, y = _calibrated_case(0, n=20_000)
    assert cal.fit_temperature(z * 2.5, y) == pytest.approx(2.5, abs=0.05)
    assert cal.fit_temperature(z / 2.0, y) == pytest.approx(0.5, abs=0.02)
    assert cal.fit_temperature(z * 2.5, y) == cal.fit_temperature(z * 2.5, y)  # deterministic


@pytest.mark.parametrize("seed,scale", [(0, 1.0), (1, 1.0), (2, 0.4), (3, 1.7), (4, 3.0)])
def test_temperature_scaling_does_not_hurt_on_its_fit_split(seed: int, scale: float) -> None:
    """NLL can only go down (T=1 is in the search range). ECE is not the objective, so on an
    already calibrated split it may wobble by sampling noise; it must never get materially
    worse, and it must improve a lot on a clearly mis-scaled model."""
    z, y = _calibrated_case(seed, n=5000)
    logits = z * scale
    t = cal.fit_temperature(logits, y)
    assert cal.nll(logits / t, y) <= cal.nll(logits, y) + 1e-9
    before, after = cal.ece(logits, y), cal.ece(logits / t, y)
    assert after <= before + 0.01
    if abs(math.log(scale)) > 0.3:
        assert after < before / 2


def test_fit_temperature_edge_of_range_is_returned() -> None:
    # All right with huge margins: NLL keeps falling as T -> 0, so the lower bound comes back.
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    assert cal.fit_temperature(logits, torch.tensor([0, 1])) == pytest.approx(cal.T_MIN)


def test_reliability_bins_counts_and_shape() -> None:
    logits, labels = _random_case(3, n=1234, scale=30.0)  # includes confidences of exactly 1.0
    bins = cal.reliability_bins(logits, labels, n_bins=15)
    assert list(bins.columns) == ["bin", "lower", "upper", "count", "accuracy", "confidence"]
    assert len(bins) == 15 and bins["count"].sum() == 1234
    empty = bins["count"] == 0
    assert bins.loc[empty, ["accuracy", "confidence"]].isna().all().all()
    assert bins.loc[~empty, "confidence"].between(bins.loc[~empty, "lower"], bins.loc[~empty, "upper"]).all()
    # Count-weighted |acc - conf| over the bins equals ECE when no confidence is exactly 1.0.
    logits, labels = _random_case(4, n=1000)
    b = cal.reliability_bins(logits, labels).dropna()
    assert (b["count"] * (b["accuracy"] - b["confidence"]).abs()).sum() / 1000 == pytest.approx(
        cal.ece(logits, labels), abs=1e-6
    )


def test_calibration_rows_schema() -> None:
    logits, labels = _random_case(5, n=300)
    rows = cal.calibration_rows(logits, labels, temperature=1.7)
    metrics = [r["metric"] for r in rows]
    assert set(cal.METRICS) <= set(metrics)
    assert {f"{m}-ts" for m in cal.METRICS} <= set(metrics)
    assert "temperature" in metrics and len(rows) == 2 * len(cal.METRICS) + 1
    schema_tail = [c for c in COLUMNS if c not in ("run", "dataset", "arch", "method", "seed")]
    for r in rows:
        assert list(r) == schema_tail and r["n"] == 300 and r["suite"] == "calibration" and r["test"] == "clean"
        assert isinstance(r["value"], float) and math.isfinite(r["value"])
    assert len(cal.calibration_rows(logits, labels)) == len(cal.METRICS)


def test_holdout_split_deterministic_and_disjoint() -> None:
    train, hold = holdout_split(1000, fraction=0.1, seed=3)
    assert len(hold) == 100 and len(train) == 900
    assert np.array_equal(np.sort(np.concatenate([train, hold])), np.arange(1000))
    again = holdout_split(1000, fraction=0.1, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(hold, again[1])
    assert not np.array_equal(hold, holdout_split(1000, fraction=0.1, seed=4)[1])
    with pytest.raises(UserError):
        holdout_split(1000, fraction=1.0)
    with pytest.raises(UserError):
        holdout_split(1)
