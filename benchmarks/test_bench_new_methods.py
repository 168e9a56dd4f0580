"""AugMix, Noisy Feature Mixup and TRADES vs ERM and Manifold Mixup: one digits epoch each, side
by side (the cnn, batch 64, one thread). Expected shape: NFM ~ Manifold Mixup ~ ERM (a few extra
element-wise ops at one layer); AugMix ~ 3 ERM epochs of compute (three views in one forward) plus
its augmentation chains; TRADES ~ 12 (10 KL-PGD steps + two training forwards). The measured
table lives in notes/new_methods.md."""

from __future__ import annotations

from digits_epoch import digits_epoch
from interleaved import interleaved_medians

from robustbench_mm.data.datasets import load_dataset

ROUNDS = 3
METHODS = ("erm", "manifold-mixup", "noisy-feature-mixup", "augmix", "pgd-at", "trades")
LIMITS = {"noisy-feature-mixup": 3, "augmix": 15, "trades": 20}  # ERM epochs, with room for a busy machine


def test_new_methods_epoch_cost_against_erm(benchmark):
    data = load_dataset("digits")
    epochs = {name: digits_epoch(name, data) for name in METHODS}
    medians = interleaved_medians(epochs, ROUNDS)
    erm = medians["erm"]
    ratios = {name: seconds / erm for name, seconds in medians.items()}
    benchmark.extra_info.update({f"{name}_epoch_s": s for name, s in medians.items()})
    print()
    for name in METHODS:
        print(f"{name:22s} {medians[name] * 1e3:7.0f} ms/epoch  {ratios[name]:5.2f} x ERM")
    benchmark.pedantic(epochs["noisy-feature-mixup"], rounds=1, iterations=1)
    for name, limit in LIMITS.items():
        assert ratios[name] <= limit, f"a {name} epoch costs {ratios[name]:.1f} ERM epochs"
