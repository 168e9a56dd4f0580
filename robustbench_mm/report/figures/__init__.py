"""Figures from the results table: reliability diagrams, accuracy vs ε and vs severity, a summary
page, and the paper's lenses (singular-value spectra, confidence between classes, outlier AUROC).

Everything is a pandas operation over the one results schema (``results.COLUMNS``) plus, for
reliability diagrams, the per-run reliability bins (``calibration.reliability_bins`` with the run
identity added). Conventions shared by every figure (:mod:`.shared`):

- Many runs are summarised per method as mean ± 1 std over seeds (the band / error bar), so a
  reader sees at once whether a difference between methods exceeds the seed-to-seed noise.
- Accuracies are stored as fractions in [0, 1] and drawn in percent.
- A method keeps its registered colour and place (ERM first) in every figure.
- Figures are built with ``matplotlib.figure.Figure`` directly, never through pyplot's global
  figure manager: nothing stays open, and rendering is safe inside a long-lived process. The
  user's backend is left alone (a notebook keeps its own): ``savefig`` to PNG renders with the
  Agg canvas whatever the backend, so no display is needed.
- Every PNG is written atomically (temp file in the same directory, then ``os.replace``), so a
  report page never links a half-written image.

Modules by job: :mod:`.shared` (shared helpers), :mod:`.reliability`, :mod:`.curves`,
:mod:`.summary`, :mod:`.lenses`, :mod:`.render` (:func:`render_all`).
"""

from robustbench_mm.report.figures.curves import accuracy_vs_eps, accuracy_vs_severity
from robustbench_mm.report.figures.lenses import (
    SPECTRUM_COLUMNS,
    auroc_figure,
    interpolation_figure,
    layer_order,
    plot_auroc,
    plot_interpolation,
    plot_spectra,
    spectra_figure,
)
from robustbench_mm.report.figures.reliability import (
    BIN_COLUMNS,
    bins_ece,
    pool_bins,
    reliability_diagram,
    reliability_figure,
)
from robustbench_mm.report.figures.render import FIGURES, render_all
from robustbench_mm.report.figures.shared import (
    DPI,
    PCT,
    RESULT_COLUMNS,
    method_colors,
    method_order,
    save_png,
    seed_stats,
    severity_label,
)
from robustbench_mm.report.figures.summary import summary_figure

__all__ = [
    "FIGURES",
    "BIN_COLUMNS",
    "DPI",
    "PCT",
    "RESULT_COLUMNS",
    "SPECTRUM_COLUMNS",
    "accuracy_vs_eps",
    "accuracy_vs_severity",
    "auroc_figure",
    "bins_ece",
    "interpolation_figure",
    "layer_order",
    "method_colors",
    "method_order",
    "plot_auroc",
    "plot_interpolation",
    "plot_spectra",
    "pool_bins",
    "reliability_diagram",
    "reliability_figure",
    "render_all",
    "save_png",
    "seed_stats",
    "severity_label",
    "spectra_figure",
    "summary_figure",
]
