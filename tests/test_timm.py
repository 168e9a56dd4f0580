"""timm models (optional extra) get mix points from their feature_info, train with every method,
and the README's timm example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from robustbench_mm.methods import hard_target_loss, mixed_loss
from robustbench_mm.models import Mix, create_model

timm = pytest.importorskip("timm")
README = Path(__file__).resolve().parents[1] / "README.md"
TINY = "test_byobnet"  # timm's own tiny test network, built without weights (no network)


def _model():
    torch.manual_seed(0)
    return create_model(f"timm:{TINY}", 10, 1, 8, [0.5], [0.25])


def test_mix_points_are_timms_feature_info_modules():
    model = _model()
    expected = [info["module"] for info in timm.create_model(TINY, pretrained=False).feature_info]
    assert list(model.mix_modules) == expected and model.mix_layers == list(range(len(expected) + 1))
    assert model.net.get_classifier().out_features == 10
    x = torch.rand(4, 1, 8, 8)
    states = model.eval().hidden_states(x)
    assert model.state_names()[-1] == "penultimate" and len(states) == len(model.state_names())
    assert torch.equal(model.net.get_classifier()(states[-1]), model(x))


def test_lambda_one_is_erm_and_mixing_changes_the_stage_it_names():
    model = _model().train()
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8)
    torch.manual_seed(1)
    erm = hard_target_loss(model(x), y)
    for layer in model.mix_layers:
        torch.manual_seed(1)
        mix = Mix(layer, 1.0)
        assert torch.equal(mixed_loss(model(x, mix=mix), y, mix), erm)
    # λ = 0.5 at layer 2: the next stage receives the blend of the plain state with its partner
    model.eval()
    plain = model.hidden_states(x)[2]
    received = {}
    following = model.net.get_submodule(model.mix_modules[2])  # fed by mix_modules[1] directly
    handle = following.register_forward_pre_hook(lambda module, inputs: received.setdefault("h", inputs[0]))
    model(x, mix=Mix(2, 0.5))
    handle.remove()
    assert torch.equal(received["h"], torch.lerp(plain.flip(0), plain, 0.5))
    assert not torch.equal(received["h"], plain)


def test_the_readme_timm_example_runs_as_written(tmp_path, monkeypatch, capsys):
    text = README.read_text(encoding="utf-8")
    section = text.split("## Your own model", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```py\n(.*?)```", section, flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    metrics = namespace["evaluation"].metrics
    assert set(metrics["suite"]) == {"clean", "representation"}
    assert (tmp_path / "runs" / f"digits-timm_{TINY}-manifold-mixup-s0" / "model.pt").exists()
    assert "accuracy" in capsys.readouterr().out
