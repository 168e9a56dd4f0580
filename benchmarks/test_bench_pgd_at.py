"""PGD adversarial training vs ERM: one digits epoch each, side by side (target: at most 12x)."""

from __future__ import annotations

from digits_epoch import digits_epoch
from interleaved import interleaved_medians

from robustbench_mm.data.datasets import load_dataset

ROUNDS = 5


def test_pgd_at_epoch_costs_at_most_12_erm_epochs(benchmark):
    data = load_dataset("digits")
    epochs = {name: digits_epoch(name, data) for name in ("erm", "pgd-at")}
    medians = interleaved_medians(epochs, ROUNDS)
    erm, at = medians["erm"], medians["pgd-at"]
    ratio = at / erm
    benchmark.extra_info.update({"erm_epoch_s": erm, "pgd_at_epoch_s": at, "ratio": ratio})
    print(f"\nERM epoch {erm * 1e3:.0f} ms, PGD-AT epoch (10 steps) {at * 1e3:.0f} ms, ratio {ratio:.2f}")
    benchmark.pedantic(epochs["pgd-at"], rounds=1, iterations=1)
    assert ratio <= 12, f"a PGD-AT epoch costs {ratio:.1f} ERM epochs"
