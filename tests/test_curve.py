"""The minimum-norm attack (FMN), per-example ε*, the robustness curve and the verdict on a
saturated headline."""

from __future__ import annotations

import shutil
import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from robustbench_mm.attacks import AttackSettings, attack
from robustbench_mm.attacks.eps_star import area_under_curve, curve_at, curve_rows, eps_star, refresh
from robustbench_mm.attacks.minimum_norm import fmn
from robustbench_mm.core.results import COLUMNS
from robustbench_mm.report import assess, report_table
from robustbench_mm.report.collect import RunSet
from robustbench_mm.report.curve_stats import curve_table, gaps


@pytest.fixture(scope="module")
def linear(digits):
    """A linear classifier of the digits, trained in a few hundred full-batch steps (CPU, < 1 s)."""
    torch.manual_seed(0)
    x, y = digits.train_x.float(), digits.train_y
    model = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _adv_lib_fmn():
    # adv-lib's attacks package imports its visdom logger, which FMN never uses; visdom itself
    # does not build on current setuptools, so a stand-in module lets the package import
    sys.modules.setdefault("visdom", types.ModuleType("visdom"))
    return pytest.importorskip("adv_lib.attacks.fast_minimum_norm").fmn


def test_fmn_linf_matches_adv_lib_on_the_same_inputs(linear, digits):
    reference = _adv_lib_fmn()
    x, y = digits.test_x[:64].float(), digits.test_y[:64]
    mine = fmn(linear, x, y, "linf", steps=30)
    theirs = reference(linear, x, y, norm=float("inf"), steps=30)
    fooled_mine, fooled_theirs = linear(mine).argmax(1) != y, linear(theirs).argmax(1) != y
    assert fooled_mine.sum() >= 60 and torch.equal(fooled_mine, fooled_theirs)
    norms = [(a - x).flatten(1).abs().amax(1)[fooled_mine] for a in (mine, theirs)]
    assert torch.allclose(norms[0], norms[1], atol=1e-4)


def test_fmn_l2_finds_perturbations_as_small_as_adv_lib(linear, digits):
    reference = _adv_lib_fmn()
    x, y = digits.test_x[:64].float(), digits.test_y[:64]
    mine = fmn(linear, x, y, "l2", steps=30)
    theirs = reference(linear, x, y, norm=2, steps=30)
    norms = []
    for adv in (mine, theirs):
        d = (adv - x).flatten(1).norm(dim=1)
        d[linear(adv).argmax(1) == y] = float("inf")
        norms.append(d)
    # adv-lib rescales δ onto the sphere of radius ε, the paper projects onto the ball: the
    # medians agree, and FMN here is never worse on the median
    assert torch.isfinite(norms[0]).sum() >= torch.isfinite(norms[1]).sum()
    assert norms[0].median() <= norms[1].median() * 1.02


def test_fmn_through_the_driver_gives_verified_adversarial_distances(linear, digits):
    x, y = digits.test_x[:80].float(), digits.test_y[:80]
    res = attack("fmn-linf", linear, x, y, 0.0, num_classes=10, settings=AttackSettings(steps=50), keep_adv=True)
    clean = (linear(x).argmax(1) == y).numpy()
    broken = ~res.correct.numpy() & clean
    assert broken.sum() >= 0.95 * clean.sum()  # a minimum-norm attack breaks (nearly) every example
    # ε* is an upper bound because the example at that distance is misclassified by the model
    adv = res.x_adv[torch.from_numpy(broken)]
    assert (linear(adv).argmax(1) != y[torch.from_numpy(broken)]).all()
    distance = (adv - x[torch.from_numpy(broken)]).flatten(1).abs().amax(1)
    assert torch.allclose(distance, res.linf[torch.from_numpy(broken)], atol=1e-6)
    # and it is small: a bounded PGD at the median distance leaves about half the examples standing
    median = float(res.linf[torch.from_numpy(broken)].median())
    pgd = (
        attack("pgd-linf", linear, x, y, median, num_classes=10, settings=AttackSettings(steps=20))
        .correct.float()
        .mean()
    )
    assert 0.2 < pgd < 0.8


def test_eps_star_takes_the_smaller_of_the_grid_and_the_minimum_norm_attack():
    clean = np.array([True, True, True, True, False])
    worst = {0.1: np.array([True, False, True, True, False]), 0.2: np.array([False, False, True, True, False])}
    found = np.array([0.15, 0.3, np.inf, 0.05, np.inf])
    star = eps_star(clean, worst, found)
    np.testing.assert_array_equal(star, [0.15, 0.1, np.inf, 0.05, 0.0])


def test_curve_area_is_the_integral_of_the_curve_and_rows_are_monotone():
    rng = np.random.default_rng(0)
    star = np.concatenate([rng.exponential(0.1, 300), np.zeros(20), np.full(10, np.inf)])
    grid = np.linspace(0, 0.3, 30001)
    numeric = np.trapezoid(curve_at(star, grid), grid) / 0.3
    assert area_under_curve(star, 0.3) == pytest.approx(numeric, abs=1e-3)
    rows, per_example = curve_rows(star, [0.05, 0.1, 0.3], 0.3, "linf")
    acc = [r["value"] for r in rows if r["metric"] == "accuracy"]
    assert acc == sorted(acc, reverse=True) and acc[0] == pytest.approx((star > 0.05).mean())
    median = next(r["value"] for r in rows if r["metric"] == "median-eps")
    assert median == pytest.approx(np.median(star))
    assert per_example[("adversarial", "eps-star", 0.0)].dtype == np.float32


def test_refresh_recombines_a_new_worst_case_with_the_stored_distances():
    clean = np.ones(4, dtype=bool)
    stored = {
        ("clean", "clean", 0.0): clean,
        ("adversarial", "fmn-linf", 0.0): np.array([0.3, 0.3, 0.05, np.inf], dtype=np.float32),
        ("adversarial", "worst-case", 0.1): np.array([True, False, False, True]),
        ("adversarial", "worst-case", 0.2): np.array([False, False, False, True]),
    }
    rows, per_example = refresh(stored, 0.2)
    np.testing.assert_allclose(per_example[("adversarial", "eps-star", 0.0)], [0.2, 0.1, 0.05, np.inf])
    auc = next(r for r in rows if r["metric"] == "auc")
    assert auc["severity"] == 0.2 and auc["value"] == pytest.approx((0.2 + 0.1 + 0.05 + 0.2) / 4 / 0.2)


def test_the_suite_reports_a_curve_never_above_the_worst_case(linear, digits):
    from robustbench_mm.evaluation.runner import evaluate_details

    ev = evaluate_details(linear, digits, ["adversarial"], n_test=60, attacks=["pgd-linf", "fmn-linf"])
    m = ev.metrics
    curve = m[(m.test == "curve") & (m.metric == "accuracy")].set_index("severity")["value"]
    worst = m[(m.test == "worst-case") & (m.metric == "accuracy")].set_index("severity")["value"]
    assert len(curve) == len(worst) == 5
    assert (curve <= worst + 1e-9).all() and curve.is_monotonic_decreasing
    assert m[(m.test == "curve") & (m.metric == "median-eps")]["value"].iloc[0] > 0
    star = ev.per_example[("adversarial", "eps-star", 0.0)]
    assert star.shape == (60,) and np.isfinite(star).mean() > 0.9


def _saturated_runs(n: int = 200) -> RunSet:
    """ERM and mixup, two seeds each: both at 0% at the headline 0.3, mixup's ε* twice ERM's."""
    rng = np.random.default_rng(1)
    rows, per_example = [], {}
    for method, scale in (("erm", 0.05), ("mixup", 0.10)):
        for seed in (0, 1):
            run = f"{method}-s{seed}"
            star = np.minimum(rng.exponential(scale, n), 0.29).astype(np.float32)
            identity = {"run": run, "dataset": "mnist", "arch": "cnn", "method": method, "seed": seed}
            values = [("clean", "clean", 0.0, "accuracy", 0.99), ("adversarial", "worst-case", 0.3, "accuracy", 0.0)]
            values += [("adversarial", "curve", e, "accuracy", float((star > e).mean())) for e in (0.1, 0.3)]
            values += [("adversarial", "curve", 0.0, "median-eps", float(np.median(star)))]
            values += [("adversarial", "curve", 0.3, "auc", float(area_under_curve(star, 0.3)))]
            values += [("adversarial", "pgd-linf", e, "accuracy", 0.0) for e in (0.1, 0.3)]
            rows += [{**identity, **dict(zip(COLUMNS[5:10], v, strict=True)), "n": n} for v in values]
            per_example[run] = {
                ("clean", "clean", 0.0): np.ones(n, dtype=bool),
                ("adversarial", "worst-case", 0.3): np.zeros(n, dtype=bool),
                ("adversarial", "eps-star", 0.0): star,
            }
    return RunSet(pd.DataFrame(rows, columns=COLUMNS), per_example)


def test_a_saturated_headline_is_judged_on_the_curve():
    runs = _saturated_runs()
    report = assess(runs, report_table(runs))
    line = next(v for v in report.verdict if "input mixup** vs ERM" in v)
    assert "saturated (every method below 2%)" in line and "judged on the robustness curve" in line
    assert "median ε*: **better**" in line and "area under the curve to ε = 0.3: **better**" in line
    gap = gaps(runs)["mixup"]
    assert "largest difference at ε = " in line and 0 < gap.eps < 0.29 and gap.low > 0
    table = report.table.query("method == 'mixup' and test == 'curve' and metric == 'median-eps'").iloc[0]
    assert table.ci_low <= table["diff"] <= table.ci_high and table.ci_low > 0


def test_the_headline_shows_the_curve_beside_the_worst_case():
    from robustbench_mm.report import headline

    runs = _saturated_runs()
    head, _ = headline(report_table(runs))
    assert "Median ε*" in head.columns and "Curve area to ε=0.3 (%)" in head.columns
    assert head.set_index("method").loc["mixup", "Median ε*"].startswith("**")  # mixup's is the best


def test_the_curve_figure_draws_each_method_with_its_band(tmp_path):
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    from robustbench_mm.methods import method_color
    from robustbench_mm.report.figures.robustness_curve import robustness_curve

    runs = _saturated_runs()
    curves = curve_table(runs)
    assert (curves.low <= curves["mean"] + 1e-12).all() and (curves["mean"] <= curves.high + 1e-12).all()
    for _, part in curves.groupby("method"):
        assert part.sort_values("eps")["mean"].is_monotonic_decreasing
    pixels = imread(robustness_curve(curves, tmp_path / "c.png", "test", 0.3))[..., :3]
    for method in ("erm", "mixup"):
        rgb = np.array(to_rgb(method_color(method)))
        assert (np.abs(pixels - rgb).max(axis=-1) < 0.02).sum() > 200  # its line is drawn


def test_a_report_of_real_runs_has_the_curve(trained_runs, tmp_path):
    from robustbench_mm.cli import main

    runs = []
    for method in ("erm", "mixup"):
        runs.append(tmp_path / trained_runs[method].name)
        shutil.copytree(trained_runs[method], runs[-1])
    args = ["--suite", "clean,adversarial", "--attacks", "fgsm,pgd-linf,fmn-linf", "--n-test", "60"]
    assert main(["evaluate", *map(str, runs), *args, "--eps", "0.05,0.3", "--quiet"]) == 0
    assert main(["report", *map(str, runs), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert (tmp_path / "rep" / "robustness_curve.png").exists() and "robustness curve" in md
    assert "Median ε*" in md.split("## Headline")[1]
    verdict = md.split("## Setup")[0]
    assert "saturated (every method below 2%)" in verdict and "median ε*" in verdict


def test_a_merged_evaluation_recomputes_the_curve_over_the_new_worst_case():
    from robustbench_mm.attacks.eps_star import refresh_metrics
    from robustbench_mm.core.results import frame, row

    per_example = {
        ("clean", "clean", 0.0): np.ones(4, dtype=bool),
        ("adversarial", "fmn-linf", 0.0): np.array([0.3, 0.3, 0.05, np.inf], dtype=np.float32),
        ("adversarial", "worst-case", 0.1): np.array([True, False, False, True]),  # a stronger attack, merged in
        ("adversarial", "curve", 0.1): np.array([True, True, False, True]),  # stale: before the merge
    }
    stale = [row("adversarial", "curve", 0.1, "accuracy", 0.75, 4), row("adversarial", "curve", 0.1, "auc", 0.9, 4)]
    identity = {"run": "r", "dataset": "digits", "arch": "cnn", "method": "erm", "seed": 0}
    metrics = refresh_metrics(frame(stale, identity), per_example)
    values = metrics.set_index(["test", "severity", "metric"])["value"]
    assert values[("curve", 0.1, "accuracy")] == pytest.approx(0.5)  # the second example now falls at 0.1
    assert values[("curve", 0.1, "auc")] == pytest.approx((0.1 + 0.1 + 0.05 + 0.1) / 4 / 0.1)
    assert per_example[("adversarial", "curve", 0.1)].tolist() == [True, False, False, True]
