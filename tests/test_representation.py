"""The representation lens: exact spectra on matrices of known rank, real models, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from robustbench_mm.core.errors import UserError
from robustbench_mm.evaluation.interface import SuiteContext
from robustbench_mm.evaluation.suites.representation import (
    METRICS,
    class_spectra,
    collect_hidden_states,
    effective_rank,
    layer_names,
    normalised_spectrum,
    representation_rows,
    representation_suite,
    singular_values,
    spectrum_metrics,
    top_share,
    variance_count,
)
from robustbench_mm.models import MixableNet, create_model
from robustbench_mm.settings import EvalConfig


def known_matrix(n: int, d: int, sigma: list[float], seed: int = 0) -> torch.Tensor:
    """A centred n x d matrix (columns sum to 0) with exactly the singular values ``sigma``."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, len(sigma), generator=g, dtype=torch.float64)
    u, _ = torch.linalg.qr(a - a.mean(0))  # orthonormal columns orthogonal to the ones vector
    v, _ = torch.linalg.qr(torch.randn(d, len(sigma), generator=g, dtype=torch.float64))
    return (u * torch.tensor(sigma, dtype=torch.float64)) @ v.T + torch.randn(d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("n,d", [(200, 12), (15, 300)], ids=["feature-gram", "example-gram"])
def test_singular_values_exact_on_known_rank(n: int, d: int) -> None:
    sigma = [5.0, 3.0, 2.0, 1.0, 0.5]
    values = singular_values(known_matrix(n, d, sigma))  # with a non-zero class mean: centring removes it
    assert len(values) == min(n, d)
    np.testing.assert_allclose(values[:5], sigma, rtol=1e-9)
    assert np.all(values[5:] == 0.0)  # rounding noise is cut, not counted as variance


@pytest.mark.parametrize("n,d", [(200, 12), (15, 300)])
def test_metrics_exact_on_known_rank(n: int, d: int) -> None:
    # r equal singular values: effective rank exactly r, all counts r (r - 1 hold < 90% of r)
    m = spectrum_metrics(singular_values(known_matrix(n, d, [2.0] * 4)))
    assert m["effective-rank"] == pytest.approx(4.0, abs=1e-9)
    assert (m["sv90"], m["sv99"]) == (4.0, 4.0)
    assert m["top-sv-share"] == pytest.approx(0.25, abs=1e-12)
    # variance 9 : 4 : 1 = 64.3%, 92.9%, 100% cumulative -> 2 values for 90%, 3 for 99%
    m = spectrum_metrics(singular_values(known_matrix(n, d, [3.0, 2.0, 1.0])))
    p = np.array([3.0, 2.0, 1.0]) / 6.0
    assert m["effective-rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), abs=1e-9)
    assert (m["sv90"], m["sv99"]) == (2.0, 3.0)
    assert m["top-sv-share"] == pytest.approx(9 / 14, abs=1e-12)


def test_metric_edge_cases() -> None:
    assert variance_count(np.array([3.0, 1.0]), 0.9) == 1  # exactly 90%: one value suffices
    assert variance_count(np.array([1.0, 3.0]), 0.9) == 1  # order does not matter
    assert effective_rank(np.array([7.0, 0.0, 0.0])) == 1.0
    zero = np.zeros(3)  # no variance: counted as rank one
    assert (effective_rank(zero), variance_count(zero, 0.99), top_share(zero)) == (1.0, 1, 1.0)
    np.testing.assert_allclose(normalised_spectrum([np.array([3.0, 1.0]), np.array([2.0])]), [0.875, 0.125])


def bottleneck_net(constant: bool) -> MixableNet:
    """A 2-D bottleneck whose hidden state is constant (zero weights) or not."""
    torch.manual_seed(0)
    bottleneck = nn.Linear(8, 2)
    if constant:
        nn.init.zeros_(bottleneck.weight)
    stages = [nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.Tanh()), bottleneck]
    return MixableNet(stages, nn.Linear(2, 3), mean=(0.5,), std=(0.25,))


def test_constant_2d_hidden_states_have_effective_rank_one() -> None:
    x = torch.rand(90, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(90) % 3
    spectra = class_spectra(bottleneck_net(constant=True), x, y, 3)
    assert list(spectra) == ["layer0", "layer1", "penultimate"]
    rows, _ = representation_rows(spectra, 90)
    got = {r["metric"]: r["value"] for r in rows if r["test"] == "penultimate"}
    assert got == {"effective-rank": 1.0, "sv90": 1.0, "sv99": 1.0, "top-sv-share": 1.0}
    varied = class_spectra(bottleneck_net(constant=False), x, y, 3)["penultimate"]
    assert all(effective_rank(v) > 1.0 for v in varied)


def test_hidden_states_match_forward_and_restore_mode() -> None:
    model = create_model("cnn", num_classes=10, in_channels=1, image_size=8)
    model.train()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    states = collect_hidden_states(model, x, batch_size=4)
    assert model.training  # eval during collection, the caller's mode afterwards
    assert list(states) == layer_names(model) == ["layer0", "layer1", "layer2", "penultimate"]
    assert [s.shape[1] for s in states.values()] == [64, 32 * 64, 64 * 16, 128]
    model.eval()
    torch.testing.assert_close(model.head(states["penultimate"]), model(x), rtol=0, atol=1e-6)


def test_batched_spectra_equal_whole_class(digits, trained_models) -> None:
    model = trained_models["manifold-mixup"]
    x, y = digits.test_x[:120], digits.test_y[:120]
    batched = class_spectra(model, x, y, 10, batch_size=5)  # many batches per class
    states = collect_hidden_states(model, x)
    for layer, per_class in batched.items():
        whole = [singular_values(states[layer][y == c].double()) for c in range(10)]
        for got, want in zip(per_class, whole, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * want[0])


def _context(model: nn.Module, data, **config) -> SuiteContext:
    x, y = data.test_x, data.test_y
    with torch.no_grad():
        logits = model(x)
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


def test_suite_rows_and_spectra(digits, trained_models) -> None:
    out = representation_suite(_context(trained_models["erm"], digits))
    assert {(r["suite"], r["severity"]) for r in out.rows} == {("representation", 0.0)}
    assert {(r["test"], r["metric"]) for r in out.rows} == {
        (layer, m) for layer in ["layer0", "layer1", "layer2", "penultimate"] for m in METRICS
    }
    assert {r["n"] for r in out.rows} == {len(digits.test_y)}
    for r in out.rows:
        if r["metric"] == "top-sv-share":
            assert 0 < r["value"] <= 1
        else:  # at most min(n_c, d) directions: the smallest class has 35 test images
            assert 1 <= r["value"] <= 35
    sums = out.tables["spectra"].groupby("layer")["value"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0)  # each is a mean of distributions


def test_suite_refuses_a_model_without_mix_points(digits) -> None:
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(UserError, match="needs a model with mix points.*Sequential has none"):
        representation_suite(_context(plain, digits))
