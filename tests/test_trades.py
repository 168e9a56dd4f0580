"""TRADES: clean cross-entropy plus β·KL to the KL-maximising point of the ε-ball."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robustbench_mm.methods import Step, create_method, hard_target_loss
from robustbench_mm.models import create_model


def _model():
    torch.manual_seed(0)
    return create_model("cnn", 10, 1, 8).train()


def test_defaults_follow_the_paper_and_share_pgd_at_settings(digits):
    method = create_method("trades").resolved(digits)
    assert (method.beta, method.at_steps) == (6.0, 10) and method.at_eps == pytest.approx(0.1)
    assert create_method("trades", {"at_eps": 0.05}).resolved(digits).at_eps == 0.05


def test_inner_maximisation_stays_in_the_ball_in_eval_mode_and_raises_the_kl():
    model = _model()
    x = torch.rand(32, 1, 8, 8)
    method = create_method("trades", {"at_eps": 0.1})
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    x_adv = method.attack(model, x, torch.Generator().manual_seed(0))
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.equal(x_adv, method.attack(model, x, torch.Generator().manual_seed(0)))
    model.eval()
    p = F.softmax(model(x), 1)
    start = x + 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    kl = lambda z: F.kl_div(F.log_softmax(model(z), 1), p, reduction="sum")  # noqa: E731
    assert kl(x_adv) > 10 * kl(start.clamp(0, 1))


def test_loss_is_clean_ce_plus_beta_times_batch_mean_kl():
    model = _model()
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 10
    method = create_method("trades", {"at_eps": 0.1, "at_steps": 3})
    # the attack first: it runs in eval mode, on running statistics the loss's forward passes move
    x_adv = method.attack(model, x, torch.Generator().manual_seed(5))
    loss, logits = method.loss(model, x, y, Step(np.random.default_rng(0), torch.Generator().manual_seed(5)))
    clean = model(x)
    kl = F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(clean, 1), reduction="batchmean")
    assert torch.allclose(loss, F.cross_entropy(clean, y) + 6.0 * kl, atol=1e-6)
    assert torch.equal(logits, clean)
    zero = create_method("trades", {"at_eps": 0.1, "beta": 0.0})
    loss0, _ = zero.loss(model, x, y, Step(np.random.default_rng(0), torch.Generator().manual_seed(5)))
    assert torch.equal(loss0, hard_target_loss(model(x), y))


def test_trades_trains_on_digits(tmp_path, digits):
    from robustbench_mm.settings import TrainConfig
    from robustbench_mm.training.loop import train

    cfg = TrainConfig(method="trades", epochs=2, method_options={"at_steps": 5})
    result = train(cfg, out_dir=str(tmp_path), progress=False, data=digits, log=lambda s: None)
    assert result.test_accuracy > 0.5
