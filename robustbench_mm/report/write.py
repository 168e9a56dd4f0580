"""Writing a report: report.csv, report.md (and report.html) and the figures, from run directories."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from ..document import to_html, to_markdown
from ..storage import atomic_write_text, ensure_writable_dir
from .collect import collect
from .document import build_document, headline
from .tables import report_table, write_report_csv


def write_report(
    run_dirs: Sequence[str | Path], out_dir: str | Path, formats: Sequence[str] = ("md",), seconds: float | None = None, plots: bool = True
) -> pd.DataFrame:
    """Collect the runs and write report.csv, report.md (and report.html), plus figures."""
    runs = collect(run_dirs)
    out_dir = ensure_writable_dir(out_dir)
    table = report_table(runs)
    figures: list[Path] = []
    if plots:
        from ..plots import render_all

        figures = render_all(runs.metrics, runs.reliability, out_dir, runs.metrics["dataset"].iloc[0], runs.metrics["arch"].iloc[0])
    write_report_csv(table, out_dir / "report.csv")
    blocks = build_document(runs, table, [Path(f) for f in figures], out_dir, seconds if seconds is not None else runs.train_seconds or None)
    if "md" in formats:
        atomic_write_text(out_dir / "report.md", to_markdown(blocks))
    if "html" in formats:
        title = f"robustbench_mm report — {runs.metrics['dataset'].iloc[0]}"
        atomic_write_text(out_dir / "report.html", to_html(blocks, out_dir, title))
    return table


def headline_markdown(run_dirs: Sequence[str | Path]) -> str:
    from ..document import markdown_table

    runs = collect(run_dirs)
    head, notes = headline(report_table(runs))
    return "\n".join([markdown_table(head), *notes])
