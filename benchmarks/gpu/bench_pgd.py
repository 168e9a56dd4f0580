"""PGD-10 robust-accuracy evaluation on CUDA: ours (fp32 and bf16) vs torchattacks.PGD (fp32).

    python benchmarks/gpu/bench_pgd.py                         # CUDA, batch 1024, ε = 8/255
    python benchmarks/gpu/bench_pgd.py --device cpu --batch 16 # smoke test anywhere

PreActResNet18 (CIFAR-10 shape, 3x32x32) with random weights on random images. A random network
misclassifies nearly everything against arbitrary labels, so the labels are the model's own
clean predictions: every example starts correct and the attack has real work to do.

Timed per side, after a warm-up run: the attack plus the forward pass that decides robust
accuracy (ours: ``run_attack``, which also checks clean correctness and the ε-ball on every
batch). CUDA events on the GPU, perf_counter on the CPU; the median of ``repeats`` runs.
Our fp32 and torchattacks start from the same random draws (torchattacks' ``uniform_`` on the
global RNG seeded with s, ours ``rand`` on a CPU generator seeded with s), so their accuracies
differ only by the fooled-example rule (ours: any iterate, as AutoAttack; theirs: last iterate).
``ours_fp32_all_rows`` (``only_correct=False``) attacks every example for every step: our
per-step speed without the savings of dropping fooled examples; ``ours_fp32_channels_last`` runs
the same fp32 attack on a channels_last copy of the model. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from robustbench_mm.attacks import AttackSettings, run_attack  # noqa: E402
from robustbench_mm.data.datasets import CIFAR10_STATS  # noqa: E402
from robustbench_mm.models import create_model  # noqa: E402


def _seconds(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        out = fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000, out
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def measure_pgd(
    device: str = "cuda", batch: int = 1024, eps: float = 8 / 255, steps: int = 10, repeats: int = 3, seed: int = 0
) -> dict:
    """Time PGD-``steps`` robust-accuracy evaluation of ``batch`` images; return figures as a dict."""
    import torchattacks

    dev = torch.device(device)
    torch.manual_seed(seed)
    mean, std = CIFAR10_STATS
    model = create_model("preactresnet18", 10, 3, 32, mean, std).to(dev).eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, 32, 32, generator=g).to(dev)
    with torch.no_grad():
        y = model(x).argmax(1)  # every example starts correctly classified
    alpha = 2.5 * eps / steps

    def ours(precision: str, only_correct: bool = True, net: torch.nn.Module = model) -> Callable[[], torch.Tensor]:
        return lambda: run_attack(
            "pgd-linf",
            net,
            x,
            y,
            eps,
            num_classes=10,
            settings=AttackSettings(
                steps=steps,
                step_size=alpha,
                random_start=True,
                batch_size=batch,
                precision=precision,
                only_correct=only_correct,
            ),
            generator=torch.Generator().manual_seed(seed),
        )

    def theirs() -> torch.Tensor:
        torch.manual_seed(seed)  # the same random start as ours
        adv = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)(x, y)
        with torch.no_grad():
            return (model(adv).argmax(1) == y).cpu()

    # ours_fp32_all_rows keeps attacking fooled examples: our per-step speed alone, without the
    # savings of dropping them (which grow as robust accuracy falls)
    sides = {
        "ours_fp32": ours("fp32"),
        "ours_fp32_all_rows": ours("fp32", only_correct=False),
        "torchattacks_fp32": theirs,
    }
    if dev.type == "cuda":
        sides["ours_bf16"] = ours("bf16")
        # the same fp32 attack on a channels_last model: do cuDNN's TF32 NHWC convolutions beat
        # NCHW here? (decides whether the attack copy should switch layout on CUDA too)
        sides["ours_fp32_channels_last"] = ours("fp32", net=copy.deepcopy(model).to(memory_format=torch.channels_last))
    result: dict = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "torchattacks": torchattacks.__version__,
        "model": "preactresnet18 (random weights; labels = its clean predictions)",
        "batch": batch,
        "eps": eps,
        "steps": steps,
        "alpha": alpha,
        "repeats": repeats,
    }
    for name, fn in sides.items():
        _seconds(fn, dev)  # warm-up (cuDNN plans, allocator)
        times, ok = [], None
        for _ in range(repeats):
            t, ok = _seconds(fn, dev)
            times.append(t)
        sec = statistics.median(times)
        result[f"{name}_s"] = round(sec, 5)
        result[f"{name}_images_per_s"] = round(batch / sec, 1)
        result[f"{name}_robust_acc"] = round(float(ok.float().mean()), 4)
    base = result["torchattacks_fp32_s"]
    for name in sides:
        if name != "torchattacks_fp32":
            result[f"speedup_{name}_vs_torchattacks"] = round(base / result[f"{name}_s"], 2)
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--eps", type=float, default=8 / 255)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    print(json.dumps(measure_pgd(args.device, args.batch, args.eps, args.steps, args.repeats)))


if __name__ == "__main__":
    main()
