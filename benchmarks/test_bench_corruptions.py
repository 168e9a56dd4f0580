"""Speed of the batched corruption suite (pytest-benchmark).

Run: ``python -m pytest -q -s benchmarks/test_bench_corruptions.py`` (``-s`` shows the tables;
``--benchmark-disable`` still runs everything once and prints the same figures).

* 19 corruptions at severity 3 on 10,000 CIFAR-sized images (3x32x32), batched (best of
  ``ROUNDS`` rounds per corruption: this shared machine has slow spells of a few seconds),
  against a per-image loop over the same torch code, measured once on ``N_LOOP`` images and
  extrapolated.
* All 19 corruptions x 5 severities on 360 digit-sized images (1x8x8).

Random numbers are drawn by a generator on the images' device (a CPU generator driving CUDA
images would time CPU sampling and host-to-device copies instead).

Threads: ``RB_BENCH_THREADS`` (default 1) for both sides. On a busy 2-core machine OpenMP's
second thread made small-tensor work up to 10x slower, and a per-image loop cannot use it.
Each corruption is run once on two images first, so imports and caches are not timed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest
import torch
import torch.nn.functional as F

from robustbench_mm.corruptions import corrupt, corruption_names

N_BATCH = 10_000
N_LOOP = 200
ROUNDS = 3
SEVERITY = 3
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True, scope="module")
def _threads() -> Iterator[int]:
    before = torch.get_num_threads()
    n = int(os.environ.get("RB_BENCH_THREADS", "1"))
    torch.set_num_threads(n)
    yield n
    torch.set_num_threads(before)


def _images(n: int, c: int, size: int, device: str) -> torch.Tensor:
    """Smooth colour fields with sharp-edged patches: enough structure for every corruption."""
    g = torch.Generator().manual_seed(0)
    x = F.interpolate(torch.rand(n, c, 4, 4, generator=g), size=(size, size), mode="bilinear", align_corners=False)
    x[..., size // 4 : size // 2, size // 4 : size // 2] = torch.rand(n, c, 1, 1, generator=g)
    return x.to(device)


def _seconds(fn: Callable[[], object], device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


@pytest.mark.parametrize("device", DEVICES)
def test_batched_suite_vs_per_image_loop(benchmark, device: str, _threads: int) -> None:
    x = _images(N_BATCH, 3, 32, device)
    names = corruption_names()
    for name in names:  # warm-up: imports, cached filter matrices, CUDA kernels
        corrupt(x[:2], name, SEVERITY, torch.Generator(device).manual_seed(0))

    batched: dict[str, float] = {}

    def run_batched() -> None:
        g = torch.Generator(device).manual_seed(0)
        for name in names:
            t = _seconds(lambda name=name: corrupt(x, name, SEVERITY, g), device)
            batched[name] = min(t, batched.get(name, float("inf")))

    benchmark.pedantic(run_batched, rounds=ROUNDS, iterations=1)

    loop: dict[str, float] = {}
    g = torch.Generator(device).manual_seed(0)
    for name in names:

        def one_by_one(name: str = name) -> None:
            for i in range(N_LOOP):
                corrupt(x[i : i + 1], name, SEVERITY, g)

        loop[name] = _seconds(one_by_one, device) * N_BATCH / N_LOOP  # extrapolated to N_BATCH

    total_b, total_l = sum(batched.values()), sum(loop.values())
    ratio = total_l / total_b
    print(f"\n[{device}, {_threads} thread(s)] 19 corruptions, severity {SEVERITY}, {N_BATCH} images 3x32x32")
    print(f"{'corruption':18s} {'batched s':>10s} {'loop s (extrap.)':>17s} {'ratio':>7s}")
    for name in names:
        print(f"{name:18s} {batched[name]:10.2f} {loop[name]:17.2f} {loop[name] / batched[name]:7.1f}")
    print(f"{'TOTAL':18s} {total_b:10.2f} {total_l:17.2f} {ratio:7.1f}")
    benchmark.extra_info.update(
        {
            "device": device,
            "threads": _threads,
            "images": N_BATCH,
            "loop_images_measured": N_LOOP,
            "batched_s": round(total_b, 3),
            "loop_s_extrapolated": round(total_l, 3),
            "speedup": round(ratio, 2),
            "batched_s_by_corruption": {k: round(v, 4) for k, v in batched.items()},
            "loop_s_by_corruption": {k: round(v, 4) for k, v in loop.items()},
        }
    )


@pytest.mark.parametrize("device", DEVICES)
def test_full_grid_on_digit_sized_images(benchmark, device: str, _threads: int) -> None:
    x = _images(360, 1, 8, device)
    names = corruption_names()
    for name in names:
        corrupt(x[:2], name, 1, torch.Generator(device).manual_seed(0))
    seconds: list[float] = []

    def run_grid() -> None:
        g = torch.Generator(device).manual_seed(0)
        seconds.append(_seconds(lambda: [corrupt(x, n, s, g) for n in names for s in range(1, 6)], device))

    benchmark.pedantic(run_grid, rounds=1, iterations=1)
    print(f"\n[{device}, {_threads} thread(s)] 19 corruptions x 5 severities on 360 images 1x8x8: {seconds[0]:.2f} s")
    benchmark.extra_info.update({"device": device, "threads": _threads, "grid_s": round(seconds[0], 3)})
