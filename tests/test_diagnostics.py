"""The adversarial suite end to end (rows, worst case, logits) and the gradient-masking checks:
silent on the three normally trained digits models, loud on deliberately masked ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from robustbench_mm.attacks import diagnostics as diag
from robustbench_mm.core.inference import predict_logits
from robustbench_mm.core.results import COLUMNS, frame
from robustbench_mm.data.threat import DIGITS
from robustbench_mm.evaluation.interface import SUITES, SuiteContext
from robustbench_mm.evaluation.suites.adversarial import eps_grids
from robustbench_mm.settings import EvalConfig

METHODS = ("erm", "mixup", "manifold-mixup")


def _context(model, x, y, config=None, num_classes=10):
    return SuiteContext(
        model=model,
        x=x,
        y=y,
        num_classes=num_classes,
        dataset="digits",
        config=config or EvalConfig(),
        device=torch.device("cpu"),
        clean_logits=predict_logits(model, x),
    )


@pytest.fixture(scope="module")
def outputs(trained_models, digits):
    """The default adversarial suite on each of the three digits models: {method: (ctx, output)}."""
    import robustbench_mm.attacks  # noqa: F401  (registers the suite, as the evaluation runner does)

    out = {}
    for method, model in trained_models.items():
        ctx = _context(model, digits.test_x, digits.test_y)
        out[method] = (ctx, SUITES.get("adversarial").run(ctx))
    return out


# ------------------------------------------------------------------------------------------ the suite


def test_rows_follow_the_schema(outputs):
    for method, (ctx, out) in outputs.items():
        n = len(ctx.y)
        df = frame(out.rows, {"run": method, "dataset": "digits", "arch": "cnn", "method": method, "seed": 0})
        assert list(df.columns) == COLUMNS
        assert set(df["suite"]) == {"adversarial", "diagnostics"}
        assert (df["n"] == n).all()
        assert not df.duplicated(["suite", "test", "severity", "metric"]).any()
        adv = df[df["suite"] == "adversarial"]
        assert set(adv["metric"]) == {"accuracy", "median-eps", "auc"}  # the last two: the curve (test_curve.py)
        adv = adv[adv["metric"] == "accuracy"]
        assert adv["value"].between(0, 1).all()
        assert set(adv["test"]) == {
            "fgsm",
            "pgd-linf",
            "pgd-l2",
            "square",
            "worst-case",
            "worst-case-l2",
            "curve",  # the robustness curve at the grid radii (FMN-L∞ + the worst case)
        }
        for name in ("fgsm", "pgd-linf", "square", "worst-case"):  # every attack at every radius
            assert adv[adv["test"] == name]["severity"].tolist() == pytest.approx(list(DIGITS.linf))
        assert adv[adv["test"] == "pgd-l2"]["severity"].tolist() == pytest.approx(list(DIGITS.l2))
        for r in out.rows:  # a per-example verdict behind every accuracy
            if r["suite"] == "adversarial" and r["metric"] == "accuracy":
                ok = out.per_example[(r["suite"], r["test"], r["severity"])]
                assert ok.dtype == bool and ok.shape == (n,) and ok.mean() == pytest.approx(r["value"])
        diag_rows = df[df["suite"] == "diagnostics"]
        assert set(diag_rows["test"]) == set(diag.CHECKS)
        assert set(diag_rows["metric"]) == {"flag", "value"}
        assert diag_rows[diag_rows["metric"] == "flag"]["value"].isin([0.0, 1.0]).all()
        ((key, logits),) = out.logits.items()  # the weakest PGD-L∞ attack, for calibration under attack
        assert key == ("adversarial", "pgd-linf", min(DIGITS.linf)) and logits.shape == (n, 10)
        assert np.array_equal((logits.argmax(1) == ctx.y).numpy() & ctx.clean_correct, out.per_example[key])


def test_worst_case_never_rises_and_never_beats_an_attack(outputs):
    for method, (ctx, out) in outputs.items():
        acc = {(r["test"], r["severity"]): r["value"] for r in out.rows if r["suite"] == "adversarial"}
        for worst, grid, norm_tests in (
            ("worst-case", DIGITS.linf, {"fgsm", "pgd-linf", "square"}),
            ("worst-case-l2", DIGITS.l2, {"pgd-l2"}),
        ):
            curve = [acc[(worst, e)] for e in grid]
            assert all(b <= a for a, b in zip(curve, curve[1:], strict=False)), (method, worst, curve)
            for (test, eps), value in acc.items():
                if test in norm_tests:
                    assert acc[(worst, eps)] <= value, (method, test, eps)
                    w, ok = out.per_example[("adversarial", worst, eps)], out.per_example[("adversarial", test, eps)]
                    assert not (w & ~ok).any()  # per example too
            assert acc[(worst, grid[0])] <= float(ctx.clean_correct.mean())


def test_grids_come_from_the_datasets_threat_model():
    from robustbench_mm.data.cards import threat_for
    from robustbench_mm.data.threat import COLOUR32, GREY28, threat_for_shape

    linf, l2 = eps_grids(threat_for("cifar10"), EvalConfig())
    assert linf == pytest.approx([1 / 255, 2 / 255, 4 / 255, 8 / 255]) and l2 == [0.25, 0.5]
    assert COLOUR32.show(8 / 255) == "8/255" and COLOUR32.show(0.01) == "0.01"
    assert eps_grids(threat_for("mnist"), EvalConfig()) == ([0.05, 0.1, 0.2, 0.3], [0.5, 1.0, 2.0])
    assert GREY28.headline == 0.3 and GREY28.show(0.3) == "0.3"
    assert eps_grids(DIGITS, EvalConfig()) == (list(DIGITS.linf), list(DIGITS.l2))
    assert eps_grids(DIGITS, EvalConfig(eps=[0.3, 0.1], eps_l2=[2.0])) == ([0.1, 0.3], [2.0])
    assert (
        threat_for_shape(1, 28) is GREY28 and threat_for_shape(3, 32) is COLOUR32 and threat_for_shape(1, 8) is DIGITS
    )


def test_radii_as_metrics_csv_stores_them_still_name_the_headline():
    """metrics.csv keeps 6 significant digits: 0.0313725 is 8/255, and the headline finds it
    (a real CIFAR-10 report quoted 4/255 as "0.01569" before)."""
    import pandas as pd

    from robustbench_mm.data.threat import COLOUR32, headline_radius

    stored = [float(f"{k / 255:.6g}") for k in (1, 2, 4, 8)]
    assert [COLOUR32.show(e) for e in stored] == ["1/255", "2/255", "4/255", "8/255"]
    assert headline_radius(stored, COLOUR32) == stored[-1]
    written = pd.DataFrame({"eps": [8 / 255]}).to_csv(index=False, float_format="%.6g")
    assert COLOUR32.show(float(written.split()[1])) == "8/255"
    assert COLOUR32.show(0.0314) == "0.0314"  # not a grey level: shown as it is
    assert COLOUR32.show(1.0) == "1"  # the unbounded check's radius, not 255/255


def test_digits_grid_spans_robust_to_broken(outputs):
    """The reason for the digits grid: ERM goes from mostly robust to broken under PGD."""
    _, out = outputs["erm"]
    pgd = {r["severity"]: r["value"] for r in out.rows if r["test"] == "pgd-linf"}
    assert pgd[min(pgd)] > 0.9 and pgd[max(pgd)] < 0.05 and 0.2 < pgd[DIGITS.headline] < 0.8


def test_unbounded_attacks_report_accuracy_and_median_norm(trained_models, digits):
    model = trained_models["erm"]
    cfg = EvalConfig(attacks=["deepfool"], eps=[0.1], eps_l2=[0.5], pgd_steps=3)
    ctx = _context(model, digits.test_x[:30], digits.test_y[:30], cfg)
    out = SUITES.get("adversarial").run(ctx)
    rows = {(r["test"], r["metric"]): r for r in out.rows if r["suite"] == "adversarial"}
    assert rows[("deepfool", "accuracy")]["severity"] == 0.0
    med = rows[("deepfool", "median-l2")]["value"]
    assert 0 < med < 5 or math.isinf(med)
    assert ("adversarial", "deepfool", 0.0) in out.per_example


def test_suite_refuses_bad_settings_before_attacking(trained_models, digits):
    from robustbench_mm.core.errors import UserError

    model = trained_models["erm"]
    ctx = _context(model, digits.test_x[:10], digits.test_y[:10], EvalConfig(eps=[2.0]))
    with pytest.raises(UserError, match="--eps-l2"):
        SUITES.get("adversarial").run(ctx)
    ctx = _context(model, digits.test_x[:10], digits.test_y[:10], EvalConfig(attacks=["pgd"]))
    with pytest.raises(UserError, match="unknown attack 'pgd'"):
        SUITES.get("adversarial").run(ctx)


# ------------------------------------------------------------------------------------------ diagnostics


def test_normally_trained_models_are_not_flagged(outputs):
    for method, (_, out) in outputs.items():
        flags = diag.flagged(out.rows)
        assert set(flags) == set(diag.CHECKS)
        assert not any(flags.values()), (method, {k: v for k, v in flags.items() if v})


class _Quantized(nn.Module):
    """Rounds its input to the 17 digits gray levels first: the gradient is zero everywhere."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 16) / 16)


class _Saturated(nn.Module):
    """Scales the logits by 1e4: float32 softmax saturates and cross-entropy gradients vanish."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x) * 1e4


@pytest.mark.parametrize("mask", [_Quantized, _Saturated])
def test_masked_models_are_flagged(trained_models, digits, mask):
    model = mask(trained_models["erm"]).eval()
    x, y = digits.test_x[:120], digits.test_y[:120]
    out = SUITES.get("adversarial").run(_context(model, x, y))
    flags = diag.flagged(out.rows)
    values = {r["test"]: r["value"] for r in out.rows if r["suite"] == "diagnostics" and r["metric"] == "value"}
    assert flags["zero-gradients"] and values["zero-gradients"] > 0.5
    assert flags["unbounded-not-zero"] and values["unbounded-not-zero"] > 0.05, (flags, values)


def test_check_functions():
    assert diag._max_rise([0.9, 0.5, 0.6, 0.1]) == pytest.approx(0.1)
    assert diag._max_rise([0.9, 0.5, 0.1]) < 0
    n = 360
    tol = diag.tolerance(n)
    two, three = 2 / n, 3 / n  # the tolerance is max(2 examples, 0.5%): 2 is noise, 3 is not
    acc = {("fgsm", 0.1): 0.5, ("pgd-linf", 0.1): 0.5 + two}
    assert diag.flagged(diag.fgsm_beats_pgd(acc, n)) == {"fgsm-beats-pgd": False}
    acc[("pgd-linf", 0.1)] = 0.5 + three
    assert diag.flagged(diag.fgsm_beats_pgd(acc, n)) == {"fgsm-beats-pgd": True}
    assert diag.flagged(diag.non_monotone_eps({"pgd-linf": [0.9, 0.5, 0.5 + three]}, n))["non-monotone-eps"]
    assert not diag.flagged(diag.non_monotone_steps(0.1, [0.5, 0.5 + two], n))["non-monotone-steps"]
    assert diag.flagged(diag.non_monotone_steps(0.1, [0.5, 0.5 + three], n))["non-monotone-steps"]
    assert diag.flagged(diag.blackbox_beats_whitebox(0.1, 0.3, 0.5, n))["blackbox-beats-whitebox"]
    assert not diag.flagged(diag.unbounded_not_zero(0.0, n))["unbounded-not-zero"]
    assert diag.flagged(diag.zero_gradients(0.02, n))["zero-gradients"]
    assert two < tol < three


def test_default_worst_case_runs_apgd_at_every_radius_on_the_survivors(outputs):
    """APGD-CE and APGD-T (100 iterations) run at every radius where an example still stands, each
    only on the examples every cheaper attack and every smaller radius left standing."""
    for ctx, out in outputs.values():
        stages = out.tables["worst-case-stages"]
        acc = {(r["test"], r["severity"]): r["value"] for r in out.rows if r["suite"] == "adversarial"}
        n = len(ctx.y)
        for norm, grid, test in (("linf", DIGITS.linf, "worst-case"), ("l2", DIGITS.l2, "worst-case-l2")):
            mine = stages[stages["norm"] == norm]
            previous = float(ctx.clean_correct.mean())
            for eps in grid:
                ran = mine[mine["severity"] == eps]
                if acc[(test, eps)] > 0:  # someone still stood after the stages, so both ran
                    assert list(ran["attack"]) == (
                        ["apgd-ce", "apgd-t"] if norm == "linf" else ["apgd-ce-l2", "apgd-t-l2"]
                    )
                if len(ran):  # survivors only: never more than stood at the smaller radius
                    assert ran["attacked"].iloc[0] <= round(previous * n)
                    assert (ran["attacked"].diff().dropna() <= 0).all()
                previous = acc[(test, eps)]


def test_default_attacks_catch_what_the_cross_entropy_misses(outputs):
    """On the mixup model, APGD-T (targeted DLR) finds many adversarial examples PGD-10 on the
    cross-entropy misses, which is why the default worst case runs it at every radius: without it
    the worst case would overstate mixup's robustness by more than 5 points."""
    ctx, out = outputs["mixup"]
    mid = DIGITS.headline
    acc = {(r["test"], r["severity"]): r["value"] for r in out.rows if r["suite"] == "adversarial"}
    assert min(acc[("pgd-linf", mid)], acc[("fgsm", mid)], acc[("square", mid)]) - acc[("worst-case", mid)] > 0.05


def test_default_worst_case_is_as_strong_as_the_original_autoattack_first_stages(outputs):
    """On the same examples, the original AutoAttack's APGD-CE + APGD-T (Croce & Hein's code,
    100 iterations, 9 targets) breaks almost nothing the default worst case calls robust."""
    pytest.importorskip("pyautoattack")
    from pyautoattack import AutoAttack

    ctx, out = outputs["mixup"]
    eps = DIGITS.headline
    atk = AutoAttack(ctx.model, eps=eps, seed=0, version="custom", attacks=["apgd-ce", "apgd-t"])
    atk.verbose = False
    x_adv, _ = atk.run_standard_evaluation(ctx.x, ctx.y, batch_size=len(ctx.y))
    with torch.no_grad():
        reference = (ctx.model(x_adv).argmax(1) == ctx.y).numpy()
    ours = out.per_example[("adversarial", "worst-case", eps)]
    n = len(ours)
    # robust for us, broken by the original: two random-start attacks differ by a few examples either
    # way (4 of 360 here, none screened out: every example the original breaks at 0.1 has a
    # first-order reach below 1.1 ε), hence 1.5% rather than the benchmark's 1% goal
    assert (ours & ~reference).sum() <= max(3, 0.015 * n)
    assert ours.mean() <= reference.mean() + 0.015


def test_default_attacks_skip_what_the_dataset_cannot_support(trained_models, digits):
    """APGD-T needs 4 classes: on a 3-class problem the default set leaves it out (asked for by
    name, it is refused)."""
    import robustbench_mm.attacks  # noqa: F401

    class FirstThree(torch.nn.Module):  # a 3-class model: the digits CNN's logits of 0, 1, 2
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)[:, :3]

    keep = digits.test_y < 3
    model = FirstThree(trained_models["erm"]).eval()
    ctx = _context(model, digits.test_x[keep][:60], digits.test_y[keep][:60], num_classes=3)
    out = SUITES.get("adversarial").run(ctx)
    assert "pgd-linf" in {r["test"] for r in out.rows}
    assert set(out.tables["worst-case-stages"]["attack"]) <= {"apgd-ce", "apgd-ce-l2"}


def test_fgsm_overshooting_at_a_large_radius_is_not_called_masking():
    """A real MNIST mixup model: FGSM 8.2% at 0.2 and 8.8% at 0.3 (one long step overshoots), PGD
    monotone. The monotonicity check judges the multi-step attacks only, and still fires on them."""
    from robustbench_mm.evaluation.suites.adversarial import monotonicity_curves

    acc = {
        ("fgsm", 0.1): 0.368,
        ("fgsm", 0.2): 0.082,
        ("fgsm", 0.3): 0.088,
        ("pgd-linf", 0.1): 0.029,
        ("pgd-linf", 0.2): 0.0,
        ("pgd-linf", 0.3): 0.0,
    }
    curves = monotonicity_curves(acc)
    assert curves == {"pgd-linf": [0.029, 0.0, 0.0]}
    assert not diag.flagged(diag.non_monotone_eps(curves, 1000))["non-monotone-eps"]
    acc[("pgd-linf", 0.3)] = 0.02  # a multi-step attack that gets weaker with ε: still flagged
    assert diag.flagged(diag.non_monotone_eps(monotonicity_curves(acc), 1000))["non-monotone-eps"]
