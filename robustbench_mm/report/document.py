"""The report as a document: verdict, setup, headline, differences to ERM, figures, diagnostics,
the paper's own lenses and the details.

Built once as a list of :class:`~robustbench_mm.report.markup.Block` and written as Markdown or HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from robustbench_mm.core.metrics import LOWER, NEITHER
from robustbench_mm.core.metrics import metric as metric_info
from robustbench_mm.evaluation.catalog import all_suites
from robustbench_mm.evaluation.interface import Section
from robustbench_mm.methods import method_sort_key
from robustbench_mm.report.cells import (
    _bold_best,
    _fmt,
    _value,
    detail_table,
    diagnostics_table,
    diff_table,
    headline,
    headline_eps,
    per_test_table,
)
from robustbench_mm.report.collect import RunSet
from robustbench_mm.report.curve_stats import gaps as curve_gaps
from robustbench_mm.report.markup import Block
from robustbench_mm.report.paper_claims import lens_blocks
from robustbench_mm.report.setup import setup_lines
from robustbench_mm.report.verdict import CONFOUNDED, Guard, clean_gaps, guard, verdict_lines


@dataclass
class Report:
    """What a report says, before it is written: the tidy table, the guard and the verdict."""

    runs: RunSet
    table: pd.DataFrame
    guard: Guard
    verdict: list[str] = field(default_factory=list)

    @property
    def threat(self):
        return self.runs.threat


def assess(runs: RunSet, table: pd.DataFrame, floor: float | None = None) -> Report:
    checks = guard(runs, floor)
    show = runs.threat.show if runs.threat is not None else (lambda e: f"{e:.3g}")
    lines = verdict_lines(table, checks, headline_eps(table, runs.threat), show, curve_gaps(runs))
    return Report(runs, table, checks, lines)


def headline_block(report: Report) -> tuple[pd.DataFrame, list[str]]:
    """The headline table with ⚠ on undertrained methods, and its notes."""
    head, notes = headline(report.table, report.threat)
    for i, method in enumerate(head["method"]):
        if method in report.guard.methods:
            head.loc[i, "method"] = f"{method} ⚠"
    for method, reasons in report.guard.methods.items():
        notes.append(
            f"⚠ {method} is undertrained: {'; '.join(dict.fromkeys(reasons))}. Its numbers say little "
            "about the method: train longer (or check the data)."
        )
    return head, notes


def _comparison_notes(report: Report) -> list[str]:
    """Why a difference to ERM may not mean what it seems."""
    notes = []
    for method, gap in clean_gaps(report.table).items():
        if method in report.guard.methods or "erm" in report.guard.methods:
            notes.append(f"{method}: the comparison involves undertrained runs.")
        elif abs(gap) > CONFOUNDED:
            notes.append(
                f"{method}: clean accuracy differs from ERM's by {gap * 100:+.1f} points, so its robust accuracy "
                "is confounded with clean accuracy."
            )
    return notes


def build_document(report: Report, figures: list[Path], out_dir: Path, seconds: float | None) -> list[Block]:
    runs, summary = report.runs, report.table
    dataset, arch = runs.metrics["dataset"].iloc[0], runs.metrics["arch"].iloc[0]
    blocks = [Block("h1", f"Manifold Mixup robustness report — {dataset}, {arch}")]
    if report.verdict:
        blocks.append(
            Block(
                "p", "**Verdict** (each method against ERM; 95% paired-bootstrap CIs over test examples, seeds pooled):"
            )
        )
        blocks.append(Block("p", "\n".join(report.verdict)))
    blocks.append(Block("h2", "Setup"))
    blocks.append(Block("p", "\n".join(setup_lines(runs, summary, seconds))))
    head, notes = headline_block(report)
    blocks.append(Block("h2", "Headline"))
    blocks.append(
        Block(
            "p",
            "Mean ± std over seeds; accuracy and ECE in percent; best value per column in bold. "
            "The worst case is, per example, the worst over every L∞ attack run at that ε: "
            "the robust accuracy to quote.",
        )
    )
    blocks.append(Block("table", table=head))
    blocks += [Block("p", note) for note in notes]
    diffs = diff_table(summary, summary, report.threat)
    if diffs is not None:
        blocks.append(
            Block(
                "h3",
                "Difference to ERM (accuracy and ECE points, 95% paired-bootstrap CI over test examples, seeds pooled)",
            )
        )
        blocks.append(Block("table", table=diffs))
        blocks += [Block("p", note) for note in _comparison_notes(report)]
    if figures:
        blocks.append(Block("h2", "Figures"))
        blocks += [Block("img", path.stem.replace("_", " "), path=str(path.relative_to(out_dir))) for path in figures]
    blocks += _diagnostics_blocks(report)
    blocks += lens_blocks(runs.metrics)
    blocks += _detail_blocks(report)
    return blocks


def _diagnostics_blocks(report: Report) -> list[Block]:
    blocks = [Block("h2", "Gradient-masking diagnostics")]
    diag = diagnostics_table(report.table, report.threat)
    if diag is None:
        return blocks + [Block("p", "No adversarial evaluation was run, so no diagnostics.")]
    blocks.append(
        Block(
            "p",
            "Seeds on which each check fired, following AutoAttack's checks and Carlini et al. (2019), "
            "*On Evaluating Adversarial Robustness*. A fired check (⚠) means the adversarial numbers "
            "of that method may overstate its robustness.",
        )
    )
    return blocks + [Block("table", table=diag)]


def _detail_blocks(report: Report) -> list[Block]:
    """Every table the suites declare (``Suite.sections``), in running order."""
    summary = report.table
    blocks = [Block("h2", "Detailed results")]
    for suite in all_suites():
        for section in suite.sections:
            table = _section_table(summary, suite.name, section, report.threat)
            if table is not None:
                blocks += [Block("h3", section.title), Block("table", table=table)]
    return blocks


def _section_table(summary: pd.DataFrame, suite: str, section: Section, threat) -> pd.DataFrame | None:
    if section.kind == "grid":
        return detail_table(summary, suite, section.metric, threat)
    if section.kind == "per-test":
        return per_test_table(summary, suite, section.metric)
    if section.kind == "metrics":
        return _metrics_table(summary, suite, section.test, section.metrics)
    raise ValueError(f"suite {suite}: unknown section kind {section.kind!r}")  # a suite's bug


def _metrics_table(summary: pd.DataFrame, suite: str, test: str, wanted: tuple[str, ...]) -> pd.DataFrame | None:
    """Methods as rows, the ``wanted`` metrics of one test as columns (those measured)."""
    part = summary[(summary.suite == suite) & (summary.test == test)]
    if part.empty:
        return None
    methods = sorted(part.method.unique(), key=method_sort_key)
    metrics = [m for m in wanted if m in set(part.metric)]
    rows = {"method": methods}
    for metric in metrics:
        cells, values = [], []
        for method in methods:
            r = _value(summary, method, suite, test, metric)
            values.append(np.nan if r is None else r["mean"])
            cells.append("–" if r is None else _fmt(r["mean"], r["std"], metric, int(r["seeds"])))
        direction = metric_info(metric).direction
        if direction != NEITHER and metric != "accuracy":
            _bold_best(cells, values, direction != LOWER)
        rows[metric] = cells
    return pd.DataFrame(rows)
