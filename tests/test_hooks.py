"""Mix points through forward hooks: torchvision models (and any module) mix like built-in ones."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_mm.core.errors import UserError
from robustbench_mm.methods import hard_target_loss, mixed_loss
from robustbench_mm.models import HookedNet, Mix, create_model


def _resnet18(classes: int = 10, channels: int = 1, mix_modules=None) -> HookedNet:
    torch.manual_seed(0)
    return create_model("torchvision:resnet18", classes, channels, 16, [0.5] * channels, [0.25] * channels, mix_modules)


def test_torchvision_resnet_gets_its_stages_as_mix_points_and_normalizes_inside():
    model = _resnet18().eval()
    assert model.mix_modules == ("layer1", "layer2", "layer3", "layer4")
    assert model.mix_layers == [0, 1, 2, 3, 4]
    assert model.net.fc.out_features == 10
    x = torch.rand(3, 1, 16, 16)
    # [0, 1] grey images: normalized with the dataset's mean/std, then fed as three equal channels
    by_hand = model.net(((x - 0.5) / 0.25).repeat(1, 3, 1, 1))
    assert torch.equal(model(x), by_hand)
    names = model.state_names()
    states = model.hidden_states(x)
    assert names == ["layer0", "layer1", "layer2", "layer3", "layer4", "penultimate"]
    assert [tuple(h.shape[1:2]) for h in states] == [(3,), (64,), (128,), (256,), (512,), (512,)]
    assert torch.equal(model.net.fc(states[-1]), by_hand)


@pytest.mark.parametrize("layer", [0, 2, 4])
def test_lambda_one_gives_the_erm_loss_bit_for_bit(layer):
    model = _resnet18().train()
    x, y = torch.rand(8, 1, 16, 16), torch.arange(8) % 10
    torch.manual_seed(1)
    erm = hard_target_loss(model(x), y)
    torch.manual_seed(1)
    mix = Mix(layer, 1.0)
    mixed = mixed_loss(model(x, mix=mix), y, mix)
    assert torch.equal(erm, mixed)


def test_mixing_after_a_named_module_equals_mixing_by_hand():
    model = _resnet18(mix_modules=["layer2", "layer3.0.bn1"]).train()
    net = model.net
    x = torch.rand(6, 1, 16, 16)
    perm = torch.tensor([3, 0, 5, 1, 2, 4])
    hooked = model(x, mix=Mix(1, 0.3, perm))
    h = ((x - 0.5) / 0.25).repeat(1, 3, 1, 1)
    h = net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(h))))))
    h = torch.lerp(h[perm], h, 0.3)
    h = net.layer4(net.layer3(h))
    assert torch.equal(hooked, net.fc(torch.flatten(net.avgpool(h), 1)))
    # a mix point deep inside a block: the hook replaces that submodule's output
    hooked = model(x, mix=Mix(2, 0.6))
    block = net.layer3[0]
    h = net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(((x - 0.5) / 0.25).repeat(1, 3, 1, 1)))))))
    inner = block.bn1(block.conv1(h))
    inner = torch.lerp(inner.flip(0), inner, 0.6)
    out = block.bn2(block.conv2(block.relu(inner))) + block.downsample(h)
    h = net.layer4(net.layer3[1](block.relu(out)))
    assert torch.equal(hooked, net.fc(torch.flatten(net.avgpool(h), 1)))


def test_builtin_preactresnet18_and_its_hook_mixed_twin_give_the_same_loss():
    torch.manual_seed(0)
    builtin = create_model("preactresnet18", 10, 3, 8, [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]).train()
    # the same modules (so the same weights), mixed through hooks instead of the built-in stages
    twin = HookedNet(
        nn.Sequential(*builtin.stages, builtin.head), ["0", "1", "2", "3"], [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    )
    x, y = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 5])
    for layer, lam in ((0, 0.7), (1, 0.35), (2, 0.5), (3, 0.9)):
        mix = Mix(layer, lam, torch.tensor([5, 4, 3, 0, 1, 2]))
        ours = mixed_loss(builtin(x, mix=mix), y, mix)
        theirs = mixed_loss(twin(x, mix=mix), y, mix)
        assert torch.equal(ours, theirs), layer
    assert twin.mix_layers == builtin.mix_layers
    assert torch.equal(twin.hidden_states(x)[2], builtin.hidden_states(x)[2])


def test_a_module_called_twice_is_mixed_once_and_the_mix_does_not_leak():
    shared = nn.Linear(4, 4)
    net = nn.Sequential(nn.Flatten(), shared, nn.ReLU(), shared, nn.Linear(4, 2))
    model = HookedNet(net, ["1"], [0.0], [1.0], head="4")
    x = torch.rand(4, 1, 2, 2)
    mixed = model(x, mix=Mix(1, 0.25))
    h = shared(x.flatten(1))
    h = torch.lerp(h.flip(0), h, 0.25)
    assert torch.equal(mixed, net[4](shared(F.relu(h))))
    assert torch.equal(model(x), net(x))  # the next forward pass is plain


def test_unknown_mix_modules_and_models_are_one_line_errors():
    with pytest.raises(
        UserError, match="no module named 'layer9' in ResNet .*top-level modules: conv1, bn1, relu, maxpool, layer1"
    ):
        _resnet18(mix_modules=["layer9"])
    with pytest.raises(UserError, match="unknown torchvision model"):
        create_model("torchvision:resnet9000", 10, 3, 16)
    with pytest.raises(UserError, match="--mix-modules applies to torchvision:NAME and timm:NAME"):
        create_model("cnn", 10, 1, 8, mix_modules=["0"])
    with pytest.raises(UserError, match="no known stages.*--mix-modules"):
        create_model("torchvision:mobilenet_v3_small", 10, 3, 16)
    model = create_model("torchvision:mobilenet_v3_small", 10, 3, 32, mix_modules=["features.3"])
    assert model.mix_layers == [0, 1] and model.head_name == "classifier.3"


def test_model_pt_round_trip_keeps_the_weights_and_the_mix_modules(tmp_path):
    from robustbench_mm.store.checkpoint import load_model, save_model

    model = _resnet18(mix_modules=["layer1", "layer3"]).eval()
    meta = {
        "arch": "torchvision:resnet18",
        "dataset": "digits",
        "classes": [str(k) for k in range(10)],
        "in_channels": 1,
        "image_size": 16,
        "mean": [0.5],
        "std": [0.25],
        "method": "manifold-mixup",
        "seed": 0,
        "mix_modules": ["layer1", "layer3"],
    }
    save_model(tmp_path / "model.pt", model, meta)
    loaded, loaded_meta = load_model(tmp_path / "model.pt")
    x = torch.rand(2, 1, 16, 16)
    assert loaded.mix_modules == ("layer1", "layer3") and loaded_meta["mix_modules"] == ["layer1", "layer3"]
    assert torch.equal(loaded(x), model(x))
    bad = dict(meta, mix_modules=["layer7"])
    save_model(tmp_path / "bad.pt", model, bad)
    with pytest.raises(UserError, match="no module named 'layer7'"):
        load_model(tmp_path / "bad.pt")


def test_mmbench_trains_and_evaluates_a_torchvision_resnet_with_named_mix_modules(tmp_path, capsys):
    import pandas as pd

    from robustbench_mm.cli import main
    from robustbench_mm.store.checkpoint import read_model_file

    out = tmp_path / "runs"
    flags = ["train", "--dataset", "digits", "--arch", "torchvision:resnet18", "--method", "manifold-mixup"]
    flags += [
        "--mix-modules",
        "layer1,layer2",
        "--epochs",
        "1",
        "--batch-size",
        "128",
        "--out-dir",
        str(out),
        "--quiet",
    ]
    assert main(flags) == 0
    run = out / "digits-torchvision_resnet18-manifold-mixup-s0"
    assert read_model_file(run / "model.pt")["mix_modules"] == ["layer1", "layer2"]
    assert main(["evaluate", str(run), "--suites", "clean,representation", "--quiet"]) == 0
    metrics = pd.read_csv(run / "eval" / "metrics.csv")
    assert {"clean", "representation"} <= set(metrics["suite"])
    capsys.readouterr()
    bad = ["train", "--dataset", "digits", "--mix-modules", "layer1", "--out-dir", str(tmp_path / "other"), "--quiet"]
    assert main(bad) == 2
    assert "mix_modules applies to torchvision:NAME and timm:NAME models, not cnn" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
