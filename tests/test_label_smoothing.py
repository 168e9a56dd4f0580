"""Label smoothing: ERM against (1 − ε)·onehot + ε/K, the same loss as PyTorch's own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robustbench_mm.core.errors import UserError
from robustbench_mm.methods import METHODS, Step, create_method
from robustbench_mm.models import create_model


def _batch():
    torch.manual_seed(0)
    return create_model("cnn", 10, 1, 8).eval(), torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_loss_matches_torch_label_smoothing(eps):
    model, x, y = _batch()
    method = create_method("label-smoothing", {"smoothing": eps})
    loss, logits = method.loss(model, x, y, Step(np.random.default_rng(0), torch.Generator()))
    assert torch.allclose(loss, F.cross_entropy(logits, y, label_smoothing=eps), atol=1e-6)


def test_defaults_and_validation():
    assert create_method("label-smoothing").smoothing == 0.1
    assert METHODS.get("label-smoothing").label == "label smoothing"
    with pytest.raises(UserError, match="--smoothing must be < 1"):
        create_method("label-smoothing", {"smoothing": 1.0}, cli=True)


def test_trains_on_digits(tmp_path, digits):
    from robustbench_mm.settings import TrainConfig
    from robustbench_mm.training.loop import train

    result = train(
        TrainConfig(method="label-smoothing", epochs=3),
        out_dir=str(tmp_path),
        progress=False,
        data=digits,
        log=lambda s: None,
    )
    assert result.test_accuracy > 0.9
