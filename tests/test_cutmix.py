"""CutMix: a box of the partner image pasted in, targets mixed by the area that stayed."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from robustbench_mm.methods import METHODS, Step, create_method
from robustbench_mm.methods.cutmix import draw_box, paste
from robustbench_mm.models import create_model


def test_registered_with_its_settings():
    method = create_method("cutmix")
    assert "cutmix" in METHODS and method.alpha == 1.0 and method.prob == 1.0
    assert METHODS.get("cutmix").label == "CutMix"


def test_box_is_pasted_from_the_partner_and_nothing_else_changes():
    x = torch.arange(4 * 1 * 6 * 6, dtype=torch.float32).view(4, 1, 6, 6)
    box = (1, 4, 2, 5)
    out = paste(x, box)
    inside = torch.zeros(6, 6, dtype=torch.bool)
    inside[1:4, 2:5] = True
    assert torch.equal(out[:, :, inside], x.flip(0)[:, :, inside])
    assert torch.equal(out[:, :, ~inside], x[:, :, ~inside])


def test_box_area_follows_lambda_and_stays_inside():
    rng = np.random.default_rng(0)
    areas = []
    for lam in np.linspace(0.05, 0.95, 19):
        for _ in range(50):
            top, bottom, left, right = draw_box(float(lam), 32, 32, rng)
            assert 0 <= top <= bottom <= 32 and 0 <= left <= right <= 32
            areas.append(((bottom - top) * (right - left) / 1024, 1 - lam))
    # clipping at the border only shrinks the box: never larger than (1 - λ), on average close to it
    got, want = np.array(areas).T
    assert (got <= want + 2 * 32 / 1024).all()
    assert got.mean() > 0.6 * want.mean()


def test_loss_is_the_area_weighted_cross_entropy():
    torch.manual_seed(0)
    model = create_model("cnn", 10, 1, 8).eval()
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    method = create_method("cutmix")
    loss, logits = method.loss(model, x, y, Step(np.random.default_rng(3), torch.Generator()))
    # replay the same draws: λ, then the box centre
    rng = np.random.default_rng(3)
    lam = float(rng.beta(1.0, 1.0))
    top, bottom, left, right = draw_box(lam, 8, 8, rng)
    kept = 1 - (bottom - top) * (right - left) / 64
    mixed = paste(x, (top, bottom, left, right))
    expected = kept * F.cross_entropy(model(mixed), y) + (1 - kept) * F.cross_entropy(model(mixed), y.flip(0))
    assert torch.allclose(logits, model(mixed)) and torch.allclose(loss, expected, atol=1e-6)


def test_prob_zero_is_erm():
    torch.manual_seed(0)
    model = create_model("cnn", 10, 1, 8).eval()
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    loss, _ = create_method("cutmix", {"prob": 0.0}).loss(
        model, x, y, Step(np.random.default_rng(0), torch.Generator())
    )
    assert torch.equal(loss, F.nll_loss(F.log_softmax(model(x), 1), y))


def test_trains_on_digits(tmp_path, digits):
    from robustbench_mm.settings import TrainConfig
    from robustbench_mm.training.loop import train

    result = train(
        TrainConfig(method="cutmix", epochs=3), out_dir=str(tmp_path), progress=False, data=digits, log=lambda s: None
    )
    assert result.test_accuracy > 0.8
