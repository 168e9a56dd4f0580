"""The paper's lenses: what they cost.

- ``render_boundaries`` (the paper's Fig. 1: three small nets trained, one PNG): target under
  30 s of wall time on a 2-core CPU with one torch thread.
- The representation and ood suites on the digits test set with the default ``cnn``, each as a
  multiple of one clean pass over the test set (``predict_logits``), measured side by side:
  the ood suite makes 3 outlier passes and 11 interpolation passes (at most about 14 expected),
  the representation suite one pass plus the spectra.
"""

from __future__ import annotations

import time

import torch

from robustbench_mm.core.inference import predict_logits
from robustbench_mm.data.datasets import load_dataset, to_float
from robustbench_mm.evaluation.interface import SuiteContext
from robustbench_mm.evaluation.suites.ood import ood_suite
from robustbench_mm.evaluation.suites.representation import representation_suite
from robustbench_mm.models import create_model
from robustbench_mm.report.figures.boundaries import render_boundaries
from robustbench_mm.settings import EvalConfig


def test_render_boundaries_wall_time(benchmark, tmp_path):
    path = benchmark.pedantic(render_boundaries, args=(tmp_path / "boundaries.png",), rounds=1, iterations=1)
    seconds = benchmark.stats.stats.max
    benchmark.extra_info["seconds"] = round(seconds, 2)
    assert path.exists()
    assert seconds < 30.0, f"render_boundaries took {seconds:.1f} s (target: under 30 s)"


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def test_lens_suites_against_one_clean_pass(benchmark):
    data = load_dataset("digits")
    torch.manual_seed(0)
    model = create_model("cnn", data.num_classes, data.in_channels, data.image_size, data.mean, data.std).eval()
    x, y = to_float(data.test_x), data.test_y
    logits = predict_logits(model, x)
    ctx = SuiteContext(
        model=model,
        x=x,
        y=y,
        num_classes=data.num_classes,
        dataset="digits",
        config=EvalConfig(),
        device=torch.device("cpu"),
        clean_logits=logits,
    )

    def measure() -> dict[str, float]:
        clean = _best(lambda: predict_logits(model, x))
        return {
            "clean_s": clean,
            "representation_ratio": _best(lambda: representation_suite(ctx)) / clean,
            "ood_ratio": _best(lambda: ood_suite(ctx)) / clean,
        }

    result = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update({k: round(v, 3) for k, v in result.items()})
    assert result["ood_ratio"] < 30  # 14 passes of the test set plus the scoring
