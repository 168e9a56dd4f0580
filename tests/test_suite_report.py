"""Suites own their place in the report: the headline columns, the detailed tables and the verdict
questions come from what each suite declares (``register_suite(headline=, sections=, verdict=)``),
so a new suite shows up in the report without a line of report code."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from robustbench_mm.data.threat import DIGITS
from robustbench_mm.evaluation.interface import SUITES, Column, Question, Section, Suite, SuiteOutput
from robustbench_mm.report import cells, document, verdict

REPORT_CSV = Path(__file__).parent.parent / "results" / "report.csv"


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    return pd.read_csv(REPORT_CSV)


def test_the_headline_is_the_suites_columns_in_their_order(summary):
    head, _ = cells.headline(summary, DIGITS)
    assert list(head.columns) == [
        "method",
        "Clean acc. (%)",
        "FGSM ε=0.1 (%)",
        "PGD ε=0.1 (%)",
        "Worst case ε=0.1 (%)",
        "Median ε*",
        "Curve area to ε=0.1 (%)",
        "ECE (%)",
        "NLL",
        "ECE after TS (%)",
        "Deformations, mean acc. (%)",
        "Corruptions, mean acc. (%)",
        "mCE vs ERM",
        "Relative mCE vs ERM",
    ]
    # lower is better for ECE (the metric registry says so): the smallest mean is the bold one
    ece = summary.query("suite == 'calibration' and test == 'clean' and metric == 'ece'").set_index("method")["mean"]
    bold = [m for m, cell in zip(head["method"], head["ECE (%)"], strict=True) if cell.startswith("**")]
    assert bold == [ece.idxmin()]


def _new_suite_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """A suite the report has never heard of: 'haze', one test at two severities, plus a diff to ERM."""
    rows = []
    for i, method in enumerate(sorted(summary.method.unique())):
        for severity, value in ((1.0, 0.5 + 0.1 * i), (2.0, 0.4 + 0.1 * i)):
            rows.append(
                {
                    **summary.iloc[0][["dataset", "arch"]].to_dict(),
                    "method": method,
                    "suite": "haze",
                    "test": "fog-lite",
                    "severity": severity,
                    "metric": "accuracy",
                    "mean": value,
                    "std": 0.01,
                    "seeds": 3,
                    "n": 360,
                }
            )
        if method != "erm":
            rows[-1].update({"diff": 0.05, "ci_low": 0.02, "ci_high": 0.08})
    return pd.concat([summary, pd.DataFrame(rows)], ignore_index=True)


def test_a_new_suite_shows_up_in_headline_details_and_verdict(summary, monkeypatch):
    haze = Suite(
        "haze",
        lambda ctx: SuiteOutput(),
        order=45,
        default=False,
        description="a test suite",
        headline=(Column("Haze acc. (%)", "fog-lite", severity=2.0),),
        sections=(Section("Haze: accuracy (%) by severity", "grid"),),
        verdict=(Question("haze (severity 2)", "fog-lite", severity=2.0, rank=35),),
    )
    monkeypatch.setitem(SUITES._entries, "haze", haze)
    table = _new_suite_rows(summary)

    head, _ = cells.headline(table, DIGITS)
    assert list(head.columns)[-2:] == ["Relative mCE vs ERM", "Haze acc. (%)"]  # after corruption's (order 40)
    assert head["Haze acc. (%)"].str.startswith("**").sum() == 1  # the best method, in bold
    assert head["Haze acc. (%)"].str.contains("±").all()  # seeds > 1: mean ± std

    report = SimpleNamespace(table=table, threat=DIGITS)
    blocks = document._detail_blocks(report)
    titles = [b.text for b in blocks if b.kind == "h3"]
    assert "Haze: accuracy (%) by severity" in titles
    grid = blocks[[b.text for b in blocks].index("Haze: accuracy (%) by severity") + 1].table
    assert list(grid.columns) == ["method", "fog-lite 1", "fog-lite 2"]

    lines = verdict.verdict_lines(table, verdict.Guard(None), 0.1, DIGITS.show)
    assert lines and all("haze (severity 2): **better** (+5.0 [+2.0, +8.0] points)" in line for line in lines)
    # ranked between calibration (30) and clean accuracy (40)
    assert all(
        line.index("calibration (clean ECE)") < line.index("haze") < line.index("clean accuracy") for line in lines
    )
    assert np.isfinite(table.query("suite == 'haze'")["mean"]).all()


def test_every_module_of_the_suites_package_is_registered_without_a_line_elsewhere():
    """A new suite is its module in evaluation/suites/: the catalog imports every module there
    (names none), and every module there registers at least one suite."""
    import pkgutil

    from robustbench_mm.evaluation import catalog, suites

    modules = {m.name for m in pkgutil.iter_modules(suites.__path__)}
    source = Path(catalog.__file__).read_text()
    assert modules and not any(name in source for name in modules)
    registering = {SUITES.get(name).run.__module__.rsplit(".", 1)[-1] for name in SUITES.names()}
    assert modules <= registering
