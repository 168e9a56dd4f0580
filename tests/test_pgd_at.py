"""PGD adversarial training: trains on in-ball PGD examples found in eval mode, and ends up robust."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robustbench_mm.core.errors import UserError
from robustbench_mm.methods import Step, create_method
from robustbench_mm.models import create_model


def test_epsilon_defaults_to_the_datasets_headline_radius(digits):
    method = create_method("pgd-at").resolved(digits)
    assert method.at_eps == pytest.approx(0.1) and method.at_steps == 10
    assert create_method("pgd-at", {"at_eps": 0.05}).resolved(digits).at_eps == 0.05
    with pytest.raises(UserError, match="--at-eps must be <= 1"):
        create_method("pgd-at", {"at_eps": 2.0}, cli=True)


def test_attack_stays_in_the_ball_leaves_batchnorm_alone_and_raises_the_loss():
    torch.manual_seed(0)
    model = create_model("cnn", 10, 1, 8).train()
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    method = create_method("pgd-at", {"at_eps": 0.1})
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    x_adv = method.attack(model, x, y, torch.Generator().manual_seed(0))
    assert model.training  # the caller's mode comes back
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())  # eval mode during the attack
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    model.eval()
    assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)


def test_same_generator_same_attack():
    torch.manual_seed(0)
    model = create_model("cnn", 10, 1, 8)
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    method = create_method("pgd-at", {"at_eps": 0.1})
    a = method.attack(model, x, y, torch.Generator().manual_seed(1))
    b = method.attack(model, x, y, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    loss, _ = method.loss(model, x, y, Step(np.random.default_rng(0), torch.Generator().manual_seed(1)))
    assert torch.isfinite(loss)


def test_pgd_training_is_more_robust_than_erm(tmp_path, digits):
    """Five epochs each: under PGD-10 at the headline radius the PGD-AT model keeps far more."""
    from robustbench_mm.attacks import run_attack
    from robustbench_mm.settings import TrainConfig
    from robustbench_mm.store.checkpoint import load_model
    from robustbench_mm.training.loop import train

    robust = {}
    for method in ("erm", "pgd-at"):
        run = train(
            TrainConfig(method=method, epochs=5), out_dir=str(tmp_path), progress=False, data=digits, log=lambda s: None
        ).run_dir
        model = load_model(run / "model.pt")[0]
        correct = run_attack("pgd-linf", model, digits.test_x, digits.test_y, 0.1, num_classes=10)
        robust[method] = float(correct.float().mean())
    assert robust["pgd-at"] > robust["erm"] + 0.2, robust
