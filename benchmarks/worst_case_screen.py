"""The worst case's pre-screens, measured: which examples do the APGD stages break, and how far
is each from the boundary by the screen's estimate?

For each run directory, the default adversarial suite runs with the screen switched off (the
APGD-CE and APGD-T stages attack every example still standing at every radius) and records, per
stage call, which examples it broke; FMN (L∞ and L2, 100 iterations) and the first-order distance
(:func:`robustbench_mm.attacks.worstcase.linear_reach`) give each example's estimated distance.
Then every screen is replayed on those records: an example goes to the stages at radius r only if
its estimate is at most factor x r. Reported per screen: the (example, radius) pairs it hands to
the stages, and the breaks of the unscreened run it misses (which the worst case would lose).

Run (one process per model, one torch thread; the records are cached in --cache)::

    OMP_NUM_THREADS=1 python benchmarks/worst_case_screen.py runs/digits-cnn-{erm,mixup,manifold-mixup,pgd-at}-s0 \\
        --cache /tmp/screen --out benchmarks/worst_case_screen.md
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

from robustbench_mm.attacks.registry import ATTACKS

CHILD = r"""
import pickle, sys, time, torch
torch.set_num_threads(1)
import robustbench_mm as rb
import robustbench_mm.evaluation.suites.adversarial as adv
from robustbench_mm.settings import EvalConfig

log = {"stages": [], "correct": {}, "clean": None, "reach": {}}
original_cascade = adv.cascade


def unscreened(correct, clean, grid, stages, attack, reach=None, found=None):
    norm = "l2" if any(s.endswith("-l2") for s in stages) else "linf"
    log["correct"].update(correct)
    log["clean"], log["reach"][norm] = clean, reach

    def recorded(stage, eps, idx):
        cpu = time.process_time()
        result = attack(stage, eps, idx)
        log["stages"].append((stage, eps, idx.numpy().copy(), result.correct.numpy().copy(), time.process_time() - cpu))
        return result

    return original_cascade(correct, clean, grid, stages, recorded, None, None)


def distances(run, names, clean):
    for name in ("fmn-l2", "fmn-linf"):
        res = run(name, 0.0, steps=100)
        distance = res.l2 if name == "fmn-l2" else res.linf
        log[name.replace("-", "_")] = (res.correct.numpy().copy(), distance.numpy().copy())
    return {}  # no FMN screen: the suite computes the first-order distance, recorded above


adv.cascade = unscreened
adv.min_norm.distances = distances
rb.evaluate_run(sys.argv[1], config=EvalConfig(suites=["adversarial"]), write=False)
pickle.dump(log, open(sys.argv[2], "wb"))
"""

SCREENS = [("FMN", 1.5), ("FMN", 1.75), ("FMN", 2.0), ("first-order", 1.5), ("first-order", 2.0)]


def _record(run: Path, cache: Path) -> dict:
    path = cache / f"{run.name}.pkl"
    if not path.exists():
        env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
        subprocess.run([sys.executable, "-c", CHILD, str(run), str(path)], env=env, check=True)
    with open(path, "rb") as f:
        return pickle.load(f)


def _fmn_distance(log: dict, norm: str) -> np.ndarray:
    ok, dist = log[f"fmn_{norm}"]
    d = np.where(ok, np.inf, dist.astype(np.float64))
    d[~log["clean"]] = 0.0
    return d


def replay(log: dict, norm: str, estimate: np.ndarray, factor: float, counts_as_attack: bool) -> tuple[int, int]:
    """(pairs handed to the stages, unscreened breaks missed) for one screen."""
    clean = log["clean"]
    stages = [s for s in log["stages"] if s[0].endswith("-l2") == (norm == "l2")]
    base = {k: v for k, v in log["correct"].items() if ATTACKS.get(k[0]).norm == norm}
    alive, handed, missed = clean.copy(), 0, 0
    for eps in sorted({s[1] for s in stages}):
        for (_, e), ok in base.items():
            if e == eps:
                alive &= ok
        if counts_as_attack:
            alive &= ~(estimate <= eps)
        truth = alive.copy()
        for _, e, idx, ok, _ in stages:
            if e == eps:
                truth[idx[~ok]] = False
        near = alive & (estimate <= factor * eps)
        handed += int(near.sum())
        missed += int((alive & ~truth & ~near).sum())
        alive = np.where(near, truth, alive)
    return handed, missed


def ratios(log: dict, norm: str, estimate: np.ndarray) -> np.ndarray:
    """Estimate / radius for every example a stage broke (at the radius it broke it)."""
    out = []
    for stage, eps, idx, ok, _ in log["stages"]:
        if stage.endswith("-l2") == (norm == "l2"):
            out += list(estimate[idx[~ok]] / eps)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    lines = [
        "# The worst case's pre-screens, measured",
        "",
        "Made by `benchmarks/worst_case_screen.py` (see its docstring) on the digits models of the default",
        "`mmbench run` (plus PGD-AT), 360 evaluation examples each. *pairs*: (example, radius) pairs the",
        "screen hands to APGD-CE + APGD-T (unscreened: every survivor at every radius); *missed*: examples",
        "the unscreened stages broke that the screen would lose; *max ratio*: the largest estimate / radius",
        "of an example the stages broke. An FMN screen also counts FMN's own adversarial examples.",
        "",
        "| model | norm | unscreened pairs | stage breaks | FMN finds nothing | max ratio FMN | max ratio "
        "first-order | " + " | ".join(f"{k} ×{f} pairs / missed" for k, f in SCREENS) + " |",
        "|---|---|---|---|---|---|---|" + "---|" * len(SCREENS),
    ]
    for run in args.runs:
        log = _record(run, args.cache)
        for norm in ("linf", "l2"):
            fmn, linear = _fmn_distance(log, norm), log["reach"][norm].astype(np.float64)
            unscreened = sum(len(s[2]) for s in log["stages"] if s[0] == ("apgd-ce-l2" if norm == "l2" else "apgd-ce"))
            r_fmn, r_lin = ratios(log, norm, fmn), ratios(log, norm, linear)
            cells = []
            for kind, factor in SCREENS:
                estimate = fmn if kind == "FMN" else linear
                handed, missed = replay(log, norm, estimate, factor, kind == "FMN")
                cells.append(f"{handed} / {missed}")
            finite = r_fmn[np.isfinite(r_fmn)]
            lines.append(
                f"| {run.name} | {norm} | {unscreened} | {len(r_lin)} | "
                f"{int((np.isinf(fmn) & log['clean']).sum())} | "
                f"{finite.max() if len(finite) else float('nan'):.2f}"
                f"{' (+inf: FMN failed)' if len(finite) < len(r_fmn) else ''} | "
                f"{r_lin.max() if len(r_lin) else float('nan'):.2f} | " + " | ".join(cells) + " |"
            )
    lines += [
        "",
        "The suite's factors: FMN ×1.75 for L∞ (above the largest ratio measured, 1.44) and first-order",
        "×2.0 for L2 (largest 1.67). FMN-L2 is not used to screen: at 100 iterations it finds no adversarial",
        "example for many digits examples the L2 stages break, and adv-lib's FMN does no better (the test",
        "`test_fmn_l2_finds_perturbations_as_small_as_adv_lib` holds ours to at least as many found and a",
        "median as small). Fewer pairs save less than their share of time: the pairs the screen keeps",
        "are the examples near the boundary that survive APGD-CE, and each costs APGD-T's 9 x 100 steps.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
