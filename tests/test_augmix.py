"""AugMix: mixed augmentation chains (none of them a tested corruption) and the JS consistency loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robustbench_mm.methods import Step, create_method
from robustbench_mm.methods.augmix import OPS, jensen_shannon
from robustbench_mm.models import create_model


def test_operations_are_the_papers_and_none_is_an_evaluated_corruption():
    from robustbench_mm.corruptions import CORRUPTIONS

    assert sorted(OPS) == sorted(
        [
            "autocontrast",
            "equalize",
            "posterize",
            "rotate",
            "solarize",
            "shear_x",
            "shear_y",
            "translate_x",
            "translate_y",
        ]
    )
    for name in CORRUPTIONS.names():
        assert not any(word in name for word in ("autocontrast", "equalize", "posterize", "solarize", "shear"))
        assert name not in OPS
    method = create_method("augmix")
    assert (method.augmix_width, method.augmix_depth, method.augmix_severity, method.jsd_weight) == (3, -1, 3.0, 12.0)


@pytest.mark.parametrize("op", sorted(OPS))
def test_each_operation_keeps_shape_and_range_and_changes_images(op):
    x = torch.rand(8, 3, 32, 32)
    changed = 0
    for seed in range(5):  # a small magnitude can round to 0 pixels or degrees: most draws change the images
        out = OPS[op](x, np.random.default_rng(seed), 3.0)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
        changed += not torch.equal(out, x)
    assert changed >= 3


def test_a_view_is_a_convex_mix_of_the_image_and_its_chains_and_repeats_with_the_seed():
    method = create_method("augmix", {"augmix_ops": ["autocontrast"], "augmix_depth": 1})
    x = torch.rand(6, 1, 8, 8) * 0.5 + 0.25
    view = method.augment(x, np.random.default_rng(3))
    # one deterministic operation: every chain is autocontrast(x), so the view is m·x + (1 - m)·that
    rng = np.random.default_rng(3)
    rng.dirichlet([1.0] * 3, size=6)
    m = torch.from_numpy(rng.beta(1.0, 1.0, size=6)).float().view(6, 1, 1, 1)
    expected = m * x + (1 - m) * OPS["autocontrast"](x, rng, 3.0)
    assert torch.allclose(view, expected, atol=1e-6)
    full = create_method("augmix")
    assert torch.equal(full.augment(x, np.random.default_rng(1)), full.augment(x, np.random.default_rng(1)))
    assert not torch.equal(full.augment(x, np.random.default_rng(1)), full.augment(x, np.random.default_rng(2)))


def test_jensen_shannon_matches_the_reference_formula_and_vanishes_on_agreement():
    torch.manual_seed(0)
    z = [torch.randn(5, 10) for _ in range(3)]
    p = [F.softmax(v, 1) for v in z]
    mixture = ((p[0] + p[1] + p[2]) / 3).clamp(1e-7, 1).log()
    reference = sum(F.kl_div(mixture, q, reduction="batchmean") for q in p) / 3
    assert torch.allclose(jensen_shannon(z), reference)
    assert float(jensen_shannon([z[0]] * 3)) == pytest.approx(0.0, abs=1e-6)


def test_loss_is_clean_ce_plus_twelve_js_and_trains_on_digits(tmp_path, digits):
    from robustbench_mm.settings import TrainConfig
    from robustbench_mm.training.loop import train

    torch.manual_seed(0)
    model = create_model("cnn", 10, 1, 8).eval()
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8)
    method = create_method("augmix")
    loss, logits = method.loss(model, x, y, Step(np.random.default_rng(0), torch.Generator()))
    rng = np.random.default_rng(0)
    views = [method.augment(x, rng) for _ in range(2)]
    z = [model(v) for v in (x, *views)]
    assert torch.allclose(loss, F.cross_entropy(z[0], y) + 12 * jensen_shannon(z), atol=1e-5)
    assert torch.allclose(logits, z[0], atol=1e-6)
    result = train(
        TrainConfig(method="augmix", epochs=2), out_dir=str(tmp_path), progress=False, data=digits, log=lambda s: None
    )
    assert result.test_accuracy > 0.8
