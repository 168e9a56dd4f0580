"""The outlier lens: detection metrics equal scikit-learn's, outlier sets, interpolations, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from torch import nn

from robustbench_mm.core.errors import UserError
from robustbench_mm.evaluation.interface import SuiteContext
from robustbench_mm.evaluation.suites.ood import (
    LAMBDAS,
    check_sets,
    detection_metrics,
    energy_score,
    interpolation_confidence,
    msp_score,
    ood_suite,
    outlier_images,
    partners,
    run_ood,
)
from robustbench_mm.settings import EvalConfig


def sklearn_metrics(scores_in: np.ndarray, scores_out: np.ndarray) -> dict[str, float]:
    labels = np.r_[np.ones(len(scores_in)), np.zeros(len(scores_out))]
    scores = np.r_[scores_in, scores_out]
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return {
        "auroc": roc_auc_score(labels, scores),
        "aupr": average_precision_score(labels, scores),
        "fpr95": fpr[np.argmax(tpr >= 0.95)],
    }


@pytest.mark.parametrize("seed", range(6))
def test_detection_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_in, n_out = rng.integers(20, 400, size=2)
    scores_in, scores_out = rng.normal(1.0, 1.0, n_in), rng.normal(0.0, 1.5, n_out)
    if seed % 2:  # many ties, across and within the two sets
        scores_in, scores_out = np.round(scores_in, 1), np.round(scores_out, 1)
    got, want = detection_metrics(scores_in, scores_out), sklearn_metrics(scores_in, scores_out)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


def test_detection_metric_extremes() -> None:
    assert detection_metrics(np.array([3.0, 2.0]), np.array([1.0, 0.0, -1.0])) == {
        "auroc": 1.0,
        "aupr": 1.0,
        "fpr95": 0.0,
    }
    worst = detection_metrics(np.array([0.0, 1.0]), np.array([2.0, 3.0]))
    assert (worst["auroc"], worst["fpr95"]) == (0.0, 1.0)
    with pytest.raises(UserError):
        detection_metrics(np.array([]), np.array([1.0]))


def test_scores() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(msp_score(logits), [0.25, np.exp(2) / (np.exp(2) + 3)], rtol=1e-12)
    np.testing.assert_allclose(energy_score(logits), [np.log(4), np.log(np.exp(2) + 3)], rtol=1e-12)
    # a larger logit (more evidence for some class) means a higher, more in-distribution score
    assert energy_score(logits)[1] > energy_score(logits)[0]


class Uniform(nn.Module):
    """Equal logits for every class: uniform probabilities on every input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x), 10) + 0.0 * x.flatten(1)[:, :1]


def context(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **config) -> SuiteContext:
    with torch.no_grad():
        logits = model.eval()(x)
    return SuiteContext(
        model=model,
        x=x,
        y=y,
        num_classes=10,
        dataset="digits",
        config=EvalConfig(**config),
        device=torch.device("cpu"),
        clean_logits=logits,
    )


def test_uniform_model_gets_auroc_one_half(digits) -> None:
    out = run_ood(context(Uniform(), digits.test_x, digits.test_y), ["uniform", "pixel-shuffle", "digits"])
    values = {(r["test"], r["metric"]): r["value"] for r in out.rows}
    for name in ("uniform", "pixel-shuffle", "digits"):
        assert values[(name, "auroc-msp")] == values[(name, "auroc-energy")] == 0.5
        assert values[(name, "fpr95-msp")] == 1.0  # every outlier passes whatever the threshold
        assert values[(name, "confidence")] == pytest.approx(0.1, abs=1e-12)
    curve = [r["value"] for r in out.rows if r["test"] == "interpolation"]
    assert curve == pytest.approx([0.1] * len(LAMBDAS), abs=1e-12)


def test_synthetic_outliers_are_seeded_and_shaped(digits) -> None:
    x = digits.test_x[:50]
    for name in ("uniform", "gaussian", "pixel-shuffle"):
        a = outlier_images(name, x, torch.Generator().manual_seed(3))
        b = outlier_images(name, x, torch.Generator().manual_seed(3))
        assert torch.equal(a, b) and a.shape == x.shape and a.dtype == torch.float32
        assert a.min() >= 0.0 and a.max() <= 1.0
        assert not torch.equal(a, outlier_images(name, x, torch.Generator().manual_seed(4)))
    gaussian = outlier_images("gaussian", torch.zeros(200, 3, 8, 8), torch.Generator().manual_seed(0))
    assert 0.2 < float((gaussian == 0).float().mean()) < 0.4  # N(0.5, 1) clipped: 31% at each end


def test_pixel_shuffle_keeps_each_images_pixels() -> None:
    x = torch.rand(20, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    shuffled = outlier_images("pixel-shuffle", x, torch.Generator().manual_seed(1))
    pixels = lambda t: t.permute(0, 2, 3, 1).reshape(20, 25, 3)  # noqa: E731  (one row per pixel, channels together)
    for before, after in zip(pixels(x), pixels(shuffled), strict=True):
        # the same set of (r, g, b) pixels, in another order
        assert sorted(map(tuple, before.tolist())) == sorted(map(tuple, after.tolist()))
        assert not torch.equal(before, after)


def write_folder(root: Path, size: int, mode: str) -> str:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                shape = (size, size) if mode == "L" else (size, size, 3)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / split / cls / f"{i}.png")
    return f"imagefolder:{root}"


def test_dataset_outliers_resize_or_refuse(digits, tmp_path: Path) -> None:
    larger = write_folder(tmp_path / "rgb16", 16, "RGB")
    like = torch.rand(10, 3, 8, 8)  # a 3-channel 8x8 test set
    images = outlier_images(larger, like, torch.Generator().manual_seed(0))
    assert images.shape == (6, 3, 8, 8) and images.min() >= 0 and images.max() <= 1
    # colour images for a 1-channel model: refused rather than converted; a grey folder is read as grey
    with pytest.raises(UserError, match="3-channel images, the model takes 1-channel ones"):
        outlier_images(write_folder(tmp_path / "rgb8", 8, "RGB"), digits.test_x, torch.Generator().manual_seed(0))
    grey = outlier_images(write_folder(tmp_path / "grey8", 8, "L"), digits.test_x, torch.Generator().manual_seed(0))
    assert grey.shape[1:] == (1, 8, 8)
    sample = outlier_images("digits", digits.test_x[:40], torch.Generator().manual_seed(0))
    assert sample.shape == (40, 1, 8, 8)  # at most as many outliers as test images


def test_unknown_set_is_one_line_before_any_work() -> None:
    with pytest.raises(
        UserError,
        match=r"unknown outlier set 'nope'; valid: uniform, gaussian, pixel-shuffle, .*svhn.*imagefolder:<path>",
    ):
        check_sets(["uniform", "nope"])
    with pytest.raises(UserError) as info:
        check_sets(["x" * 5000])
    assert len(str(info.value)) < 400 and "\n" not in str(info.value)
    with pytest.raises(UserError):
        check_sets([])
    assert check_sets(["svhn", "imagefolder:/somewhere", "uniform", "uniform"]) == [
        "svhn",
        "imagefolder:/somewhere",
        "uniform",
    ]


def test_partners_are_of_another_class_and_seeded() -> None:
    y = torch.tensor([0, 0, 0, 0, 0, 0, 1, 2])
    p = partners(y, torch.Generator().manual_seed(0))
    assert torch.all(y[p] != y)
    assert torch.equal(p, partners(y, torch.Generator().manual_seed(0)))
    with pytest.raises(UserError, match="two classes"):
        partners(torch.zeros(5, dtype=torch.long), torch.Generator())


def test_interpolation_endpoints_are_the_clean_images(digits, trained_models) -> None:
    model = trained_models["erm"]
    x, y = digits.test_x[:100], digits.test_y[:100]
    p = partners(y, torch.Generator().manual_seed(0))
    curve = interpolation_confidence(model, x, p, lambdas=(0.0, 1.0))
    with torch.no_grad():
        conf = model(x).softmax(1).max(1).values.double()
    assert curve[1.0] == pytest.approx(float(conf.mean()), rel=1e-6)
    assert curve[0.0] == pytest.approx(float(conf[p].mean()), rel=1e-6)


def test_suite_rows(digits, trained_models) -> None:
    ctx = context(trained_models["manifold-mixup"], digits.test_x, digits.test_y)
    out = ood_suite(ctx)
    tests = {r["test"] for r in out.rows}
    assert tests == {"uniform", "gaussian", "pixel-shuffle", "interpolation"}
    metrics = {r["metric"] for r in out.rows if r["test"] == "uniform"}
    assert metrics == {f"{m}-{s}" for m in ("auroc", "aupr", "fpr95") for s in ("msp", "energy")} | {"confidence"}
    curve = sorted((r["severity"], r["value"]) for r in out.rows if r["test"] == "interpolation")
    assert [lam for lam, _ in curve] == list(LAMBDAS)
    for r in out.rows:
        assert 0.0 <= r["value"] <= 1.0 and r["suite"] == "ood" and r["n"] == len(digits.test_y)
    assert out.rows == ood_suite(ctx).rows  # seeded: the same numbers twice
