"""The suite registry: suites run in their registered order, the defaults come from the
registry, and calibration measures the logits the earlier suites left in ctx.shifted_logits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import robustbench_mm as rb
from robustbench_mm.core.errors import UserError
from robustbench_mm.evaluation import calibration
from robustbench_mm.evaluation import interface as suites
from robustbench_mm.evaluation import runner as evaluation
from robustbench_mm.evaluation.catalog import all_suites, default_suites
from robustbench_mm.evaluation.interface import SuiteContext, SuiteOutput, register_suite
from robustbench_mm.evaluation.runner import check_suites
from robustbench_mm.settings import EvalConfig


class TinyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)


def test_suites_are_ordered_by_their_registered_position():
    assert check_suites(["calibration", "corruption", "clean", "adversarial", "clean"]) == [
        "clean",
        "adversarial",
        "corruption",
        "calibration",
    ]
    orders = {s.name: s.order for s in all_suites()}
    assert orders["calibration"] == max(orders.values())  # it measures what the others leave behind
    with pytest.raises(UserError, match="unknown suite 'robustnes'; valid: adversarial, calibration"):
        check_suites(["clean", "robustnes"])
    with pytest.raises(UserError, match="no suite selected"):
        check_suites([])


def test_the_default_suites_are_the_registrys_and_the_configs():
    assert default_suites() == [
        "clean",
        "adversarial",
        "deformation",
        "corruption",
        "representation",
        "ood",
        "calibration",
    ]
    assert EvalConfig().suites is None  # None: the registry's defaults, resolved when an evaluation starts
    assert evaluation._settings(None, None, {}).suites == default_suites()


def test_calibration_measures_the_logits_of_every_earlier_suite(digits, monkeypatch):
    """A suite registered between the built-in ones runs at its position: it sees the clean
    suite's logits but not calibration's rows, and calibration then scores its logits."""
    monkeypatch.setattr(suites.SUITES, "_entries", dict(suites.SUITES._entries))  # forget it afterwards
    seen: list[set] = []
    shifted = torch.randn(len(digits.test_y), 10, generator=torch.Generator().manual_seed(1)) * 3

    @register_suite("negated", order=50, default=False, description="a test shift")
    def negated(ctx: SuiteContext) -> SuiteOutput:
        seen.append(set(ctx.shifted_logits))
        return SuiteOutput(logits={("negated", "noise", 1.0): shifted})

    assert "negated" not in default_suites()
    df = rb.evaluate(TinyModel(), digits, suites=["calibration", "negated", "clean"])
    assert seen == [{("clean", "clean", 0.0)}]
    cal = df[df.suite == "calibration"]
    assert set(cal.test) == {"clean", "noise"}
    ece = cal[(cal.test == "noise") & (cal.metric == "ece")].value.item()
    assert ece == pytest.approx(calibration.ece(shifted, digits.test_y))
