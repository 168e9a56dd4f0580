"""Report arithmetic on constructed tables: mCE / relative mCE against ERM, paired bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustbench_mm.report import corruption_errors, paired_bootstrap


def _summary(rows):
    df = pd.DataFrame(rows, columns=["method", "suite", "test", "severity", "metric", "mean"])
    return df.assign(dataset="digits", arch="cnn", std=0.0, seeds=3, n=100)[
        ["dataset", "arch", "method", "suite", "test", "severity", "metric", "mean", "std", "seeds", "n"]
    ]


def test_mce_and_relative_mce_against_erm():
    rows = []
    # clean error: erm 0.10, other 0.05. Corruption "fog": erm errors 0.2, 0.4; other 0.1, 0.2.
    # Corruption "flat": costs ERM nothing beyond clean -> excluded from the relative mean.
    for method, clean, fog, flat in (("erm", 0.90, (0.8, 0.6), (0.9, 0.9)), ("other", 0.95, (0.9, 0.8), (0.9, 0.9))):
        rows.append((method, "clean", "clean", 0.0, "accuracy", clean))
        for level, acc in enumerate(fog, 1):
            rows.append((method, "corruption", "fog", level, "accuracy", acc))
        for level, acc in enumerate(flat, 1):
            rows.append((method, "corruption", "flat", level, "accuracy", acc))
    out = corruption_errors(_summary(rows)).set_index(["method", "metric"])
    # CE(fog) = 0.3 / 0.6 = 0.5, CE(flat) = 0.2 / 0.2 = 1 -> mCE 0.75
    assert out.loc[("other", "mce-vs-erm"), "mean"] == pytest.approx(0.75)
    # relative CE(fog) = (0.3 - 2*0.05) / (0.6 - 2*0.10) = 0.5; flat excluded
    assert out.loc[("other", "relative-mce-vs-erm"), "mean"] == pytest.approx(0.5)
    assert out.loc[("other", "relative-mce-vs-erm"), "n"] == 1
    assert out.loc[("erm", "mce-vs-erm"), "mean"] == pytest.approx(1.0)


def test_paired_bootstrap_ci_contains_the_difference_and_shrinks_with_agreement():
    rng = np.random.default_rng(0)
    a = rng.random((3, 400)) < 0.8
    b = rng.random((3, 400)) < 0.7
    diff, low, high = paired_bootstrap(a, b)
    assert low < diff < high and diff == pytest.approx(a.mean() - b.mean())
    same = paired_bootstrap(a, a)
    assert same == (0.0, 0.0, 0.0)
