"""Every GPU figure the project promises, in one call (sized for under 6 minutes on an H100).

    python benchmarks/gpu/run_all.py --out DIR            # on a CUDA machine
    python benchmarks/gpu/run_all.py --device cpu --tiny  # smoke test anywhere

Measures, on CIFAR-shaped input (3x32x32) with PreActResNet18:
  1. training throughput of erm / mixup / manifold-mixup, fp32 and bf16 + channels_last,
     through the real training step (``training.step.train_step``) with data resident on the device
     as uint8 and crop/flip done there; Manifold Mixup's overhead with flip pairing (ours)
     and with a random-permutation gather (the plain way); optionally torch.compile;
  2. PGD-10 robust-accuracy evaluation, ours vs torchattacks (``bench_pgd.measure_pgd``);
  3. deformation throughput (the paper grid, batched on the device);
  4. a short CIFAR-shaped benchmark end to end through ``mmbench run``.
Writes results.json and summary.md into --out. Timing: CUDA events after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cifar10_data import synthetic_imagefolder  # noqa: E402

from robustbench_mm.data.datasets import CIFAR10_STATS, apply_crop_flip, draw_crop_flip, to_float  # noqa: E402
from robustbench_mm.methods import Step, create_method  # noqa: E402
from robustbench_mm.models import create_model  # noqa: E402
from robustbench_mm.settings import TrainConfig  # noqa: E402
from robustbench_mm.training.step import make_optimizer, train_step  # noqa: E402


class Timer:
    """Wall time of a region on the device: CUDA events, or perf_counter on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1000
        else:
            self.seconds = time.perf_counter() - self.t0


def top_ops(one, device, steps: int = 5, rows: int = 12) -> list[dict]:
    """The ops with the most self time (device time on CUDA) over ``steps`` training steps."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for step in range(steps):
            one(step)
        if cuda:
            torch.cuda.synchronize(device)
    events = prof.key_averages()

    def self_us(event) -> float:
        if not cuda:
            return event.self_cpu_time_total
        return getattr(event, "self_device_time_total", getattr(event, "self_cuda_time_total", 0.0))

    top = sorted(events, key=self_us, reverse=True)[:rows]
    return [
        {"op": e.key[:90], "ms_per_step": round(self_us(e) / 1000 / steps, 3), "calls_per_step": e.count / steps}
        for e in top
    ]


def training_throughput(
    device,
    method_name,
    precision,
    batch,
    steps,
    warmup,
    pairing="flip",
    compile_model=False,
    n_images=50_000,
    profile=False,
):
    torch.manual_seed(0)
    model = create_model("preactresnet18", 10, 3, 32, *CIFAR10_STATS).to(device)
    amp = precision == "bf16"
    if amp:
        model = model.to(memory_format=torch.channels_last)
    options = {"pairing": pairing} if method_name != "erm" else {}
    method = create_method(method_name, options)
    method.check_model(model)
    optimizer = make_optimizer(
        model.parameters(),
        TrainConfig(lr=0.1, weight_decay=1e-4, epochs=1, batch_size=512, schedule="trapezoid"),
        device,
    )
    step_model = torch.compile(model) if compile_model else model
    data_x = torch.randint(0, 256, (n_images, 3, 32, 32), dtype=torch.uint8, device=device)
    data_y = torch.randint(0, 10, (n_images,), device=device)
    generator = torch.Generator(device=device).manual_seed(0)  # as the training loop: on the device
    randomness = Step(np.random.default_rng(0), generator, lam_as_tensor=compile_model)
    order = torch.randperm(n_images, generator=torch.Generator().manual_seed(0)).to(device)

    def one(step, method=method):
        start = (step * batch) % (n_images - batch)
        idx = order[start : start + batch]
        x = to_float(data_x[idx])
        offsets, flips = draw_crop_flip(batch, 2, True, generator)
        x = apply_crop_flip(x, 2, offsets, flips)
        if amp:
            x = x.contiguous(memory_format=torch.channels_last)
        return train_step(step_model, method, optimizer, x, data_y[idx], randomness, amp)

    model.train()
    if compile_model:  # one graph per mixing layer: compile them all before the clock starts
        for layer in getattr(method, "mix_layers", []):
            one(0, create_method(method_name, {**options, "mix_layers": [layer]}))
    for step in range(warmup):
        one(step)
    with Timer(device) as timer:
        for step in range(steps):
            one(step)
    row = {
        "method": method_name,
        "precision": precision,
        "pairing": pairing,
        "compiled": compile_model,
        "batch": batch,
        "steps": steps,
        "seconds": timer.seconds,
        "images_per_s": steps * batch / timer.seconds,
        "ms_per_step": 1000 * timer.seconds / steps,
    }
    if profile:  # where Manifold Mixup's extra time goes, for the next person with a GPU
        row["top_ops"] = top_ops(one, device)
    return row


def deformation_throughput(device, n):
    from robustbench_mm.corruptions import deform, deformation_grid

    x = torch.rand(n, 3, 32, 32, device=device)
    generator = torch.Generator().manual_seed(0)
    deform(x[:64], "rotate", 20, generator)
    grid = deformation_grid("paper")
    with Timer(device) as timer:
        for name, severity in grid:
            deform(x, name, severity, generator)
    return {"images": n * len(grid), "seconds": timer.seconds, "images_per_s": n * len(grid) / timer.seconds}


def end_to_end(out: Path, tiny: bool) -> dict:
    data = synthetic_imagefolder(out / "synthetic", 20 if tiny else 500, 10 if tiny else 100, suffix=".png")
    command = [
        sys.executable,
        "-m",
        "robustbench_mm",
        "run",
        "--dataset",
        f"imagefolder:{data}",
        "--arch",
        "preactresnet18",
        "--epochs",
        "1" if tiny else "10",
        "--seeds",
        "0",
        "--out",
        str(out / "e2e_report"),
        "--runs-dir",
        str(out / "e2e_runs"),
        "--suite",
        "clean,adversarial,deformation,corruption,calibration",
        "--force",
        "--eps",
        "0.0039,0.0157,0.0314",
    ]
    started = time.perf_counter()
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": path})
    return {
        "command": " ".join(command[1:]),
        "returncode": done.returncode,
        "seconds": time.perf_counter() - started,
        "stdout_tail": done.stdout[-3000:],
        "stderr_tail": done.stderr[-1500:],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default="gpu_results")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke test on the CPU")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--budget", type=float, default=330.0, help="seconds; optional parts are skipped past it")
    args = parser.parse_args()
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    batch, steps, warmup, n_images = (16, 2, 1, 256) if args.tiny else (512, 40, 15, 50_000)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "training": [],
        "notes": [],
    }

    def save():
        (out / "results.json").write_text(json.dumps(results, indent=2))

    for precision in ("fp32", "bf16"):
        for method in ("erm", "mixup", "manifold-mixup"):
            results["training"].append(
                training_throughput(
                    device,
                    method,
                    precision,
                    batch,
                    steps,
                    warmup,
                    n_images=n_images,
                    profile=precision == "bf16" and method != "mixup",
                )
            )
            print(json.dumps(results["training"][-1]), flush=True)
    results["training"].append(
        training_throughput(
            device, "manifold-mixup", "bf16", batch, steps, warmup, pairing="permute", n_images=n_images
        )
    )
    print(json.dumps(results["training"][-1]), flush=True)
    for method in ("erm", "manifold-mixup"):  # a bigger batch: fewer launches per image
        results["training"].append(
            training_throughput(device, method, "bf16", 2 * batch, steps // 2, warmup, n_images=n_images)
        )
        print(json.dumps(results["training"][-1]), flush=True)
    save()
    try:
        from bench_pgd import measure_pgd

        results["pgd"] = measure_pgd(device=str(device), batch=32 if args.tiny else 1024)
        print(json.dumps(results["pgd"]), flush=True)
    except Exception as exc:  # report, keep measuring the rest
        results["notes"].append(f"pgd benchmark failed: {type(exc).__name__}: {exc}")
    save()
    results["deformation"] = deformation_throughput(device, 64 if args.tiny else 10_000)
    print(json.dumps(results["deformation"]), flush=True)
    save()
    results["end_to_end"] = end_to_end(out, args.tiny)
    print(json.dumps({k: v for k, v in results["end_to_end"].items() if k != "stdout_tail"}), flush=True)
    save()
    if not args.no_compile and time.perf_counter() - started < args.budget:
        for method in ("erm", "manifold-mixup"):
            if time.perf_counter() - started > args.budget:
                results["notes"].append(f"compiled {method} skipped: time budget")
                continue
            try:
                compile_start = time.perf_counter()
                row = training_throughput(
                    device,
                    method,
                    "bf16",
                    batch,
                    steps,
                    warmup + 10,
                    compile_model=True,
                    n_images=n_images,
                    profile=True,
                )
                row["compile_and_warmup_s"] = time.perf_counter() - compile_start - row["seconds"]
                results["training"].append(row)
                print(json.dumps(row), flush=True)
            except Exception as exc:
                results["notes"].append(f"compiled {method} failed: {type(exc).__name__}: {str(exc)[:300]}")
            save()
    results["total_seconds"] = time.perf_counter() - started
    save()
    (out / "summary.md").write_text(summary(results))
    print(summary(results))


def summary(results: dict) -> str:
    lines = [
        f"# GPU benchmark — {results['device']}, torch {results['torch']}, {results['date']}",
        "",
        "| method | precision | pairing | compiled | batch | images/s | ms/step |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["training"]:
        lines.append(
            f"| {r['method']} | {r['precision']} | {r['pairing']} | {r['compiled']} | {r['batch']} "
            f"| {r['images_per_s']:,.0f} | {r['ms_per_step']:.2f} |"
        )
    base_batch = results["training"][0]["batch"] if results["training"] else None

    def rate(method, precision, pairing="flip", compiled=False, batch=None):
        for r in results["training"]:
            if (r["method"], r["precision"], r["pairing"], r["compiled"], r["batch"]) == (
                method,
                precision,
                pairing,
                compiled,
                batch or base_batch,
            ):
                return r["images_per_s"]

    for compiled, batch in ((False, None), (True, None), (False, 2 * (base_batch or 0))):
        erm = rate("erm", "bf16", compiled=compiled, batch=batch)
        mm = rate("manifold-mixup", "bf16", compiled=compiled, batch=batch)
        if erm and mm:
            what = f"bf16{', compiled' if compiled else ''}{f', batch {batch}' if batch else ''}"
            lines.append(f"\nManifold Mixup step time vs ERM ({what}): {100 * (erm / mm - 1):+.1f}%")
    for r in results["training"]:
        if "top_ops" in r:
            lines += [
                "",
                f"Top ops, {r['method']} {r['precision']}{' compiled' if r['compiled'] else ''} "
                f"(ms per step, calls per step): "
                + "; ".join(f"{o['op']} {o['ms_per_step']:.2f} ({o['calls_per_step']:g})" for o in r["top_ops"][:8]),
            ]
    perm = rate("manifold-mixup", "bf16", "permute")
    erm = rate("erm", "bf16")
    if perm and erm:
        lines.append(f"With a random-permutation gather instead of flip pairing: {100 * (erm / perm - 1):+.1f}%")
    if "pgd" in results:
        lines += ["", "PGD-10: " + json.dumps(results["pgd"])]
    if "deformation" in results:
        d = results["deformation"]
        lines.append(f"\nDeformations (paper grid, batched): {d['images_per_s']:,.0f} images/s")
    if "end_to_end" in results:
        e = results["end_to_end"]
        lines += [
            "",
            f"End to end `mmbench run` ({e['seconds']:.1f} s, exit {e['returncode']}):",
            "",
            e["stdout_tail"][-1500:],
        ]
    lines += [f"\n{note}" for note in results["notes"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
