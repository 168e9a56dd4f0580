"""The worst case per example: monotone in ε, survivors-only APGD stages, and the hook the store
calls to recompute it when evaluations are merged (the store itself knows no attack)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from robustbench_mm.attacks.registry import AttackResult
from robustbench_mm.attacks.worstcase import cascade, derive, linear_reach, worst_case

ROOT = Path(__file__).resolve().parents[1] / "robustbench_mm"


def _result(ok: np.ndarray) -> AttackResult:
    n = len(ok)
    return AttackResult(torch.from_numpy(ok), None, torch.zeros(n), torch.zeros(n))


def test_an_example_broken_at_a_radius_stays_broken_at_every_larger_one():
    clean = np.array([True, True, True, True, False])
    runs = {
        ("fgsm", 0.1): np.array([True, False, True, True, False]),
        ("fgsm", 0.2): np.array([True, True, True, False, False]),  # #1 "recovers": it must not count
        ("pgd", 0.3): np.array([False, True, True, True, False]),
    }
    out = worst_case(runs, clean, [0.1, 0.2, 0.3])
    assert out[0.1].tolist() == [True, False, True, True, False]
    assert out[0.2].tolist() == [True, False, True, False, False]
    assert out[0.3].tolist() == [False, False, True, False, False]


def test_the_stages_attack_only_survivors_from_the_smallest_radius_to_the_largest():
    rng = np.random.default_rng(0)
    n = 200
    clean = rng.random(n) < 0.9
    grid = [0.3, 0.1, 0.2]  # any order in: smallest first out
    cheap = {("pgd", e): clean & (rng.random(n) > e) for e in grid}
    breaks_at = rng.uniform(0.05, 0.5, n)  # each example's radius for APGD
    calls = []

    def attack(name, eps, idx):
        calls.append((name, eps, idx.numpy().copy()))
        return _result(breaks_at[idx.numpy()] > eps + (0.01 if name == "apgd-t" else 0.0))

    alive, log = cascade(cheap, clean, grid, ["apgd-ce", "apgd-t"], attack)
    assert [c[:2] for c in calls] == [(s, e) for e in sorted(grid) for s in ("apgd-ce", "apgd-t")]
    standing = clean.copy()
    for name, eps, idx in calls:
        if name == "apgd-ce":
            standing &= cheap[("pgd", eps)]
        assert np.array_equal(idx, np.flatnonzero(standing))  # exactly the survivors, nobody else
        standing[idx] &= breaks_at[idx] > eps + (0.01 if name == "apgd-t" else 0.0)
    curve = [alive[e].sum() for e in sorted(grid)]
    assert curve == sorted(curve, reverse=True) and not (alive[0.3] & ~alive[0.2]).any()
    assert np.array_equal(alive[0.3], standing)
    assert [entry["attacked"] for entry in log] == [len(c[2]) for c in calls]


def test_merging_keeps_the_stages_of_an_earlier_default_evaluation():
    """An earlier default evaluation's worst case holds its APGD stages (they have no rows of their
    own); a later ``--attacks autoattack`` evaluation adds to it and takes nothing away."""
    clean = np.array([True, True, True, True])
    stored = {
        ("clean", "clean", 0.0): clean,
        ("adversarial", "fgsm", 0.1): np.array([True, True, True, False]),
        ("adversarial", "worst-case", 0.1): np.array([True, False, True, False]),  # APGD broke #1
        ("adversarial", "pgd-l2", 0.5): np.array([True, True, False, True]),
        ("adversarial", "worst-case-l2", 0.5): np.array([True, True, False, True]),
    }
    new = {
        ("adversarial", "autoattack", 0.1): np.array([False, True, True, True]),
        ("adversarial", "autoattack", 0.2): np.array([True, True, False, True]),
        ("adversarial", "worst-case", 0.1): np.array([False, True, True, True]),
        ("adversarial", "worst-case", 0.2): np.array([False, True, False, True]),
    }
    out = derive(stored, new)
    assert set(out) == {
        ("adversarial", "worst-case", 0.1),
        ("adversarial", "worst-case", 0.2),
        ("adversarial", "worst-case-l2", 0.5),
    }
    assert out[("adversarial", "worst-case", 0.1)].tolist() == [False, False, True, False]
    assert out[("adversarial", "worst-case", 0.2)].tolist() == [False, False, False, False]
    assert out[("adversarial", "worst-case-l2", 0.5)].tolist() == [True, True, False, True]


def test_the_store_imports_no_suite_and_no_attack():
    for path in (ROOT / "store").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert not name.startswith(("robustbench_mm.attacks", "robustbench_mm.evaluation")), (path.name, name)


def test_the_report_names_autoattack_and_its_fixed_settings():
    from robustbench_mm.core.results import row
    from robustbench_mm.data.threat import DIGITS
    from robustbench_mm.report.collect import RunSet
    from robustbench_mm.report.setup import setup_lines
    from robustbench_mm.report.tables import summarize

    identity = {"run": "r", "dataset": "digits", "arch": "cnn", "method": "erm", "seed": 0}
    rows = [{**identity, **row("adversarial", t, 0.1, "accuracy", 0.5, 10)} for t in ("autoattack", "worst-case")]
    metrics = pd.DataFrame(rows)
    text = "\n".join(setup_lines(RunSet(metrics, threat=DIGITS), summarize(metrics), None))
    assert "autoattack at ε 0.1" in text
    assert "FAB-T (9 targets), Square (5,000 queries), 100 iterations" in text and "not from --pgd-steps" in text


def test_the_pre_screen_spares_only_examples_far_from_every_boundary():
    clean = np.ones(6, dtype=bool)
    reach = np.array([0.01, 0.05, 0.3, 0.5, 0.19, 0.21])  # first-order distance to the boundary
    seen = []

    def attack(name, eps, idx):
        seen.append((eps, idx.tolist()))
        return _result(np.ones(len(idx), dtype=bool))

    alive, log = cascade({}, clean, [0.1], ["apgd-ce"], attack, reach)
    assert seen == [(0.1, [0, 1, 4])]  # reach <= 2 ε
    assert alive[0.1].all() and log[0]["screened"] == 3


def test_linear_reach_is_the_distance_to_the_boundary_of_a_linear_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    x, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    w, b = model[1].weight.detach(), model[1].bias.detach()
    z = x.flatten(1) @ w.T + b
    for norm, p in (("linf", 1), ("l2", 2)):
        got = linear_reach(model, x, y, norm)
        for i in range(5):
            others = [t for t in range(3) if t != int(y[i])]
            want = min(float(z[i, y[i]] - z[i, t]) / float((w[y[i]] - w[t]).norm(p=p)) for t in others)
            assert got[i] == pytest.approx(max(want, 0.0), rel=1e-5, abs=1e-6)
