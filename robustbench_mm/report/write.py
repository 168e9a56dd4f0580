"""Writing a report: report.csv, report.md (and report.html) and the figures, from run directories.

The files of one report are published as one unit (:func:`publish.publish_files`), under the
report folder's lock: a reader, or a command killed half-way, never leaves report.csv of one
version beside report.md of another.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from robustbench_mm.core.files import atomic_write_text, ensure_writable_dir, run_lock
from robustbench_mm.report.collect import collect
from robustbench_mm.report.document import Report, assess, build_document, headline_block
from robustbench_mm.report.markup import markdown_table, to_html, to_markdown
from robustbench_mm.report.tables import report_table, write_report_csv
from robustbench_mm.store.publish import publish_files

DOCUMENTS = {"md": "report.md", "html": "report.html"}
CURVE_FILE = "robustness_curve.png"  # report/figures/robustness_curve.py


def write_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    formats: Sequence[str] = ("md",),
    seconds: float | None = None,
    plots: bool = True,
    floor: float | None = None,
) -> Report:
    """Collect the runs and write report.csv, report.md (and report.html), plus figures.

    ``floor``: the clean accuracy below which a run counts as undertrained (default: the
    dataset's). Returns what the report says (table, guard, verdict).
    """
    runs = collect(run_dirs)  # every input is read and checked before anything is written
    report = assess(runs, report_table(runs), floor)
    dataset, arch = runs.metrics["dataset"].iloc[0], runs.metrics["arch"].iloc[0]
    seconds = seconds if seconds is not None else runs.train_seconds or None

    def build(staging: Path) -> None:
        figures: list[Path] = []
        if plots:
            from robustbench_mm.report.figures import render_all

            figures = [Path(f) for f in render_all(runs.metrics, runs.reliability, staging, dataset, arch, runs.tables)]
            figures += _curve_figure(runs, staging, f"{dataset} · {arch}")
        write_report_csv(report.table, staging / "report.csv")
        blocks = build_document(report, figures, staging, seconds)
        if "md" in formats:
            atomic_write_text(staging / DOCUMENTS["md"], to_markdown(blocks))
        if "html" in formats:
            atomic_write_text(
                staging / DOCUMENTS["html"], to_html(blocks, staging, f"robustbench_mm report — {dataset}")
            )

    from robustbench_mm.report.figures import FIGURES

    out_dir = ensure_writable_dir(out_dir)
    with run_lock(out_dir, "mmbench report"):
        publish_files(out_dir, build, owned=(*DOCUMENTS.values(), *FIGURES, CURVE_FILE))
    return report


def _curve_figure(runs, staging: Path, title: str) -> list[Path]:
    """robustness_curve.png when the runs hold per-example ε* (the minimum-norm attack ran)."""
    from robustbench_mm.report.curve_stats import curve_table, headline_of_auc
    from robustbench_mm.report.figures.robustness_curve import robustness_curve

    curves = curve_table(runs)
    return [robustness_curve(curves, staging / CURVE_FILE, title, headline_of_auc(runs))] if len(curves) else []


def headline_text(report: Report) -> str:
    """The verdict and the headline as Markdown, with the notes (what the console prints)."""
    head, notes = headline_block(report)
    verdict = ["Verdict (vs ERM, 95% CIs):", *report.verdict, ""] if report.verdict else []
    return "\n".join([*verdict, markdown_table(head), *notes])


def headline_markdown(run_dirs: Sequence[str | Path]) -> str:
    runs = collect(run_dirs)
    return headline_text(assess(runs, report_table(runs)))
