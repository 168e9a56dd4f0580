"""Every figure whose data is present, for one (dataset, architecture), into one folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robustbench_mm.report.figures.curves import accuracy_vs_eps, accuracy_vs_severity
from robustbench_mm.report.figures.lenses import plot_auroc, plot_interpolation, plot_spectra
from robustbench_mm.report.figures.reliability import reliability_diagram
from robustbench_mm.report.figures.shared import RESULT_COLUMNS, accuracy_rows, require
from robustbench_mm.report.figures.summary import summary_figure

FIGURES = (
    "reliability.png",
    "accuracy_vs_eps.png",
    "deformation.png",
    "corruption.png",
    "summary.png",
    "spectra.png",
    "interpolation.png",
    "outliers.png",
)  # every file render_all may write (a report owns them)


def _only(df: pd.DataFrame | None, dataset: str, arch: str) -> pd.DataFrame | None:
    """Rows of one (dataset, arch) when the table says which; a plot mixes neither."""
    if df is None:
        return None
    if "dataset" in df.columns:
        df = df[df["dataset"].astype(str) == str(dataset)]
    if "arch" in df.columns:
        df = df[df["arch"].astype(str) == str(arch)]
    return df


def render_all(
    results_df: pd.DataFrame,
    bins_df: pd.DataFrame | None,
    out_dir: str | Path,
    dataset: str,
    arch: str,
    tables: dict[str, pd.DataFrame] | None = None,
) -> list[Path]:
    """Render every plot whose data is present into ``out_dir``; return the written paths.

    Files: reliability.png, accuracy_vs_eps.png, deformation.png, corruption.png, summary.png,
    and for the paper's lenses spectra.png (``tables["spectra"]``), interpolation.png and
    outliers.png.
    """
    results_df = _only(require(results_df, RESULT_COLUMNS, "results"), dataset, arch)
    bins_df = _only(bins_df, dataset, arch)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{dataset} · {arch}"
    written: list[Path] = []
    if bins_df is not None and not bins_df.empty:
        written.append(reliability_diagram(bins_df, out_dir / "reliability.png", title))
    if not accuracy_rows(results_df, "adversarial").empty:
        written.append(accuracy_vs_eps(results_df, out_dir / "accuracy_vs_eps.png", title))
    for suite in ("deformation", "corruption"):
        if not accuracy_rows(results_df, suite).empty:
            written.append(accuracy_vs_severity(results_df, out_dir / f"{suite}.png", title, suite=suite))
    has_lens = (
        any(not accuracy_rows(results_df, s).empty for s in ("adversarial", "deformation"))
        or (results_df["suite"] == "calibration").any()
        or (bins_df is not None and not bins_df.empty)
    )
    if has_lens:
        written.append(summary_figure(results_df, bins_df, out_dir / "summary.png", title))
    spectra = (tables or {}).get("spectra")
    if spectra is not None and not spectra.empty:
        written.append(plot_spectra(spectra, out_dir / "spectra.png", title))
    if (results_df["suite"] == "ood").any():
        written.append(plot_interpolation(results_df, out_dir / "interpolation.png", title))
        written.append(plot_auroc(results_df, out_dir / "outliers.png", title))
    return written
