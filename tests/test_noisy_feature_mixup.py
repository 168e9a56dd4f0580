"""Noisy Feature Mixup: Manifold Mixup plus the official code's noise at the mixed layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustbench_mm.methods import Step, create_method
from robustbench_mm.methods.noisy_feature_mixup import NoisyMix
from robustbench_mm.models import Mix, create_model


def _step(seed: int = 0) -> Step:
    return Step(np.random.default_rng(seed), torch.Generator().manual_seed(seed))


def test_defaults_are_the_papers():
    method = create_method("noisy-feature-mixup")
    assert (method.alpha, method.mix_layers, method.add_noise, method.mult_noise) == (1.0, [0, 1, 2], 0.4, 0.2)


def test_without_noise_it_is_manifold_mixup_bit_for_bit():
    torch.manual_seed(0)
    model = create_model("cnn", 10, 1, 8).train()
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 10
    nfm = create_method("noisy-feature-mixup", {"add_noise": 0.0, "mult_noise": 0.0, "alpha": 2.0})
    mm = create_method("manifold-mixup")
    for seed in range(3):
        (a, _), (b, _) = nfm.loss(model, x, y, _step(seed)), mm.loss(model, x, y, _step(seed))
        assert torch.equal(a, b)


def test_noise_is_the_official_form_at_the_mixed_layer():
    h = torch.rand(64, 32, 4, 4) + 1.0
    plain = Mix(1, 0.7).apply(h)
    mult = NoisyMix(1, 0.7, mult=0.1, generator=torch.Generator().manual_seed(0)).apply(h)
    ratio = mult / plain  # 1 + 0.1 * U(-1, 1), element-wise
    assert 0.9 <= float(ratio.min()) < 0.91 and 1.09 < float(ratio.max()) <= 1.1
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.002)
    add = NoisyMix(1, 0.7, add=0.3, generator=torch.Generator().manual_seed(0)).apply(h) - plain
    assert float(add.std()) == pytest.approx(0.3, rel=0.02) and float(add.mean()) == pytest.approx(0.0, abs=0.01)
    again = NoisyMix(1, 0.7, add=0.3, generator=torch.Generator().manual_seed(0)).apply(h) - plain
    assert torch.equal(add, again)  # the run's generator decides the noise


def test_noise_changes_the_loss_reproducibly_and_trains_on_digits(tmp_path, digits):
    from robustbench_mm.settings import TrainConfig
    from robustbench_mm.training.loop import train

    torch.manual_seed(0)
    model = create_model("cnn", 10, 1, 8).train()
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 10
    nfm, quiet = create_method("noisy-feature-mixup"), create_method("noisy-feature-mixup", {"add_noise": 0.0})
    assert torch.equal(nfm.loss(model, x, y, _step(1))[0], nfm.loss(model, x, y, _step(1))[0])
    assert not torch.equal(nfm.loss(model, x, y, _step(1))[0], quiet.loss(model, x, y, _step(1))[0])
    cfg = TrainConfig(method="noisy-feature-mixup", epochs=3)
    result = train(cfg, out_dir=str(tmp_path), progress=False, data=digits, log=lambda s: None)
    assert result.test_accuracy > 0.8
