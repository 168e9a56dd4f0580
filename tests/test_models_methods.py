"""Every architecture mixes at its documented points; λ = 1 is exactly ERM; pairing is uniform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robustbench_mm.core.errors import UserError
from robustbench_mm.methods import Step, create_method, hard_target_loss, mixed_loss
from robustbench_mm.models import ARCHS, Mix, create_model

SHAPES = {
    "cnn": (1, 8),
    "fast28": (1, 28),
    "fast32": (3, 32),
    "mlp": (1, 8),
    "preactresnet18": (3, 16),
    "preactresnet34": (3, 16),
    "wrn28_10": (3, 16),
}


def test_registry_lists_all_architectures():
    assert ARCHS.names() == sorted(SHAPES)
    with pytest.raises(UserError, match="valid: cnn, fast28, fast32, mlp"):
        create_model("resnet9000", 10, 3, 32)


@pytest.mark.parametrize("arch", sorted(SHAPES))
def test_mix_points_and_normalization(arch):
    channels, size = SHAPES[arch]
    torch.manual_seed(0)
    model = create_model(arch, 10, channels, size, mean=[0.5] * channels, std=[0.25] * channels).eval()
    x = torch.rand(4, channels, size, size)
    plain = model(x)
    assert plain.shape == (4, 10)
    assert model.mix_layers[:3] == [0, 1, 2]
    for layer in model.mix_layers:
        # λ = 1 leaves the forward pass untouched, bit for bit, at every mix point.
        assert torch.equal(model(x, mix=Mix(layer, 1.0)), plain)
    # Mixing at the input with λ = 0.5 equals feeding the averaged normalized image.
    mixed = model(x, mix=Mix(0, 0.5))
    assert torch.allclose(mixed, model(0.5 * x + 0.5 * x.flip(0)), atol=1e-5)
    # The model owns its normalization: buffers, saved in the state dict.
    assert "mean" in model.state_dict() and "std" in model.state_dict()


def test_lambda_one_gives_exactly_the_erm_loss():
    torch.manual_seed(0)
    model = create_model("cnn", 10, 1, 8)
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    erm = create_method("erm")
    erm_loss, _ = erm.loss(model, x, y, Step(np.random.default_rng(0), torch.Generator()))
    for name in ("mixup", "manifold-mixup"):
        method = create_method(name)
        method.check_model(model)
        for layer in method.layers():
            for perm in (None, torch.randperm(16)):
                loss, _ = method.mixed_loss(model, x, y, Mix(layer, 1.0, perm))
                assert torch.equal(loss, erm_loss)
    assert torch.allclose(erm_loss, F.cross_entropy(model(x), y))


def test_mixed_loss_equals_soft_target_cross_entropy():
    logits, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    mix = Mix(0, 0.3)
    targets = 0.3 * F.one_hot(y, 5).float() + 0.7 * F.one_hot(y.flip(0), 5).float()
    expected = -(targets * F.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(mixed_loss(logits, y, mix), expected, atol=1e-6)
    bce = mixed_loss(logits, y, mix, "bce")
    assert torch.allclose(bce, F.binary_cross_entropy(F.softmax(logits, 1), targets), atol=1e-6)
    assert torch.allclose(
        hard_target_loss(logits, y, "bce"), F.binary_cross_entropy(F.softmax(logits, 1), F.one_hot(y, 5).float())
    )


def test_method_defaults_and_validation():
    mm = create_method("manifold-mixup")
    assert mm.alpha == 2.0 and mm.layers() == (0, 1, 2)
    assert create_method("mixup").alpha == 1.0 and create_method("mixup").layers() == (0,)
    with pytest.raises(UserError, match="alpha must be > 0"):
        create_method("mixup", {"alpha": 0.0})
    with pytest.raises(UserError, match="--alpha must be > 0"):
        create_method("mixup", {"alpha": 0.0}, cli=True)
    with pytest.raises(UserError, match="--mix-layers does not apply to method mixup"):
        create_method("mixup", {"mix_layers": [1]}, cli=True)
    with pytest.raises(UserError, match="--alpha does not apply to method erm"):
        create_method("erm", {"alpha": 1.0}, cli=True)
    with pytest.raises(UserError, match=r"mix layer\(s\) \[7\] not available.*valid: 0, 1, 2, 3"):
        create_method("manifold-mixup", {"mix_layers": [7]}).check_model(create_model("cnn", 10, 1, 8))
    with pytest.raises(UserError, match="unknown method 'no-such-method'; valid: augmix, cutmix, erm, "):
        create_method("no-such-method")


def test_lambda_draws_follow_beta_and_layers_are_uniform():
    method = create_method("manifold-mixup")
    step = Step(np.random.default_rng(0), torch.Generator())
    draws = [method.draw(8, step, torch.device("cpu")) for _ in range(6000)]
    lams = np.array([d.lam for d in draws])
    assert abs(lams.mean() - 0.5) < 0.01 and abs(lams.var() - 1 / 20) < 0.005  # Beta(2,2): var = 1/20
    layers = np.bincount([d.layer for d in draws], minlength=3)
    assert layers.min() > 1800  # each of the three layers ~2000 times


def test_flip_pairing_of_a_shuffled_batch_is_uniformly_random():
    """The partner of an example (reversed shuffled batch) is uniform over the other examples.

    Chi-square test of the partner frequencies of example 0 over many epochs, as the training
    loop draws them (randperm, then batches of a fixed size, each paired with its reverse).
    """
    n, batch, epochs = 40, 8, 4000
    generator = torch.Generator().manual_seed(0)
    partners = np.zeros(n, dtype=np.int64)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch):
            chunk = order[start : start + batch]
            position = (chunk == 0).nonzero()
            if len(position):
                partners[int(chunk.flip(0)[position[0, 0]])] += 1
    assert partners[0] == 0  # even batch size: nobody is paired with itself
    observed = partners[1:]
    expected = observed.sum() / (n - 1)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    # 38 degrees of freedom: the 99.9% quantile is about 70.7.
    assert chi2 < 70.7, chi2


def test_flip_mixing_gradient_matches_autograd_of_the_plain_formula():
    h = torch.randn(6, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    plain = h.detach().clone().requires_grad_(True)
    weights = torch.randn(6, 3, 4, 4, dtype=torch.float64)
    (Mix(1, 0.3).apply(h) * weights).sum().backward()
    ((0.3 * plain + 0.7 * plain.flip(0)) * weights).sum().backward()
    assert torch.allclose(h.grad, plain.grad)
    assert torch.autograd.gradcheck(lambda t: Mix(1, 0.3).apply(t), (h.detach().clone().requires_grad_(True),))


@pytest.mark.parametrize("arch", ["cnn", "preactresnet18"])
def test_mixing_compiles_without_graph_breaks(arch):
    """Under torch.compile (CUDA training with --compile), every mixing layer with λ as a tensor
    traces as one graph: the mixing point never splits it (TorchDynamo's own tracer, no codegen)."""
    import torch._dynamo as dynamo

    channels, size = SHAPES[arch]
    model = create_model(arch, 10, channels, size).train()
    method = create_method("manifold-mixup")
    x, y = torch.rand(8, channels, size, size), torch.randint(0, 10, (8,))
    lam = torch.full((), 0.7)
    erm_step = Step(np.random.default_rng(0), torch.Generator())
    for layer in [None, *model.mix_layers[:3]]:
        if layer is None:
            loss = lambda x, y: create_method("erm").loss(model, x, y, erm_step)[0]  # noqa: E731
        else:
            loss = lambda x, y, layer=layer: method.mixed_loss(model, x, y, Mix(layer, lam))[0]  # noqa: E731
        explained = dynamo.explain(loss)(x, y)
        assert explained.graph_break_count == 0, (layer, explained.break_reasons)
        assert explained.graph_count == 1
