"""Reports over many runs: pandas pivots of the results table, mean ± std over seeds, and the
difference to ERM with a paired-bootstrap 95% confidence interval over test examples.

``report.csv`` is tidy (one row per method/suite/test/severity/metric) and byte-identical
for identical inputs; ``report.md`` (and ``report.html``) read top-down as a document.
"""

from robustbench_mm.report.cells import headline, headline_eps
from robustbench_mm.report.collect import RunSet, collect
from robustbench_mm.report.document import Report, assess, build_document
from robustbench_mm.report.tables import (
    KEYS,
    corruption_errors,
    differences_to_erm,
    paired_bootstrap,
    report_table,
    summarize,
)
from robustbench_mm.report.write import headline_markdown, headline_text, write_report

__all__ = [
    "KEYS",
    "Report",
    "RunSet",
    "assess",
    "build_document",
    "collect",
    "corruption_errors",
    "differences_to_erm",
    "headline",
    "headline_eps",
    "headline_markdown",
    "headline_text",
    "paired_bootstrap",
    "report_table",
    "summarize",
    "write_report",
]
