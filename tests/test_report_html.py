"""The report as a document: Markdown and a self-contained HTML page that a browser renders.

The browser check runs where Debian's Chromium is installed (``apt-get install chromium``)
and is skipped elsewhere; ``scripts/screenshot_report.sh`` does the same by hand.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import matplotlib.image as mpimg
import pytest
from synthetic import synthetic_tables

from robustbench_mm.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    metrics, bins = synthetic_tables()
    root = tmp_path_factory.mktemp("report")
    runs = []
    for run, part in metrics.groupby("run"):
        run_dir = root / "runs" / run
        run_dir.mkdir(parents=True)
        part.to_csv(run_dir / "metrics.csv", index=False)
        bins[bins.run == run].to_csv(run_dir / "reliability.csv", index=False)
        runs.append(run_dir)
    write_report(runs, root / "out", formats=["md", "html"])
    return root / "out"


def test_markdown_reads_top_down_with_relative_figure_links(report_dir):
    md = (report_dir / "report.md").read_text()
    order = [
        md.index(h)
        for h in ("## Setup", "## Headline", "## Figures", "## Gradient-masking diagnostics", "## Detailed results")
    ]
    assert order == sorted(order)
    for name in ("reliability.png", "accuracy_vs_eps.png", "deformation.png", "corruption.png", "summary.png"):
        assert f"]({name})" in md and (report_dir / name).exists()


def test_html_is_self_contained(report_dir):
    html = (report_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5
    assert 'src="http' not in html and "href=" not in html  # nothing to fetch
    assert "<h2>Headline</h2>" in html and "<table>" in html and "<ul>" in html


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_headless_chromium_renders_the_table_and_figures(report_dir, tmp_path):
    shot = tmp_path / "report.png"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tempfile.mkdtemp()}",
        "--window-size=1200,2600",
        f"--screenshot={shot}",
        (report_dir / "report.html").as_uri(),
    ]
    subprocess.run(command, capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 50_000
    image = mpimg.imread(shot)[..., :3]
    assert image.shape[:2] == (2600, 1200)
    # The top third holds the setup and the headline table (dark text on white); the rest holds
    # the figures, whose coloured lines and bars make many saturated pixels.
    top, rest = image[:900], image[900:]
    assert (top.mean(axis=2) < 0.5).mean() > 0.01
    saturation = rest.max(axis=2) - rest.min(axis=2)
    assert (saturation > 0.3).mean() > 0.01
