"""Reports over many runs: pandas pivots of the results table, mean ± std over seeds, and the
difference to ERM with a paired-bootstrap 95% confidence interval over test examples.

``report.csv`` is tidy (one row per method/suite/test/severity/metric) and byte-identical
for identical inputs; ``report.md`` (and ``report.html``) read top-down as a document.
"""

from .collect import RunSet, collect
from .document import build_document, headline, headline_eps
from .tables import KEYS, corruption_errors, differences_to_erm, paired_bootstrap, report_table, summarize
from .write import headline_markdown, write_report

__all__ = [
    "KEYS", "RunSet", "build_document", "collect", "corruption_errors", "differences_to_erm", "headline",
    "headline_eps", "headline_markdown", "paired_bootstrap", "report_table", "summarize", "write_report",
]
