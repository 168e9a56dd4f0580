"""Our robust accuracies beside the original AutoAttack's, on the same models and the same examples.

For each run directory, on the examples ``mmbench evaluate`` uses (the class-stratified
``--n-test`` subset drawn with the evaluation seed), per L∞ radius of the threat model:

* ``ours``: the default worst case (``adversarial / worst-case``: FGSM, PGD, Square, then APGD-CE
  and APGD-T with 100 iterations on the examples still standing, monotone in ε);
* ``ref CE+T``: the original AutoAttack (``pyautoattack``, Croce & Hein's code) with
  ``version='custom', attacks=['apgd-ce', 'apgd-t']``: its first two stages, 100 iterations,
  min(9, classes - 1) targets;
* ``ours AA``: ``--attacks autoattack`` (the original standard version, through our driver);
* ``ref AA``: the original standard AutoAttack called directly (APGD-CE, APGD-T, FAB-T, Square
  5,000 queries), with its own seed;
* ``missed``: examples we call robust that the reference breaks (goal: at most 1% of the examples).

Run (CPU, one thread)::

    for m in erm mixup manifold-mixup pgd-at; do mmbench train --method $m --out-dir /tmp/aa/runs; done
    OMP_NUM_THREADS=1 python benchmarks/compare_autoattack_reference.py /tmp/aa/runs/* \\
        [--n-test 120] [--aa-eps 0.1] --out benchmarks/autoattack_reference.md
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

import robustbench_mm as rb
from robustbench_mm.data.datasets import to_float
from robustbench_mm.settings import EvalConfig


def _reference(model, x, y, eps: float, attacks: list[str] | None, num_classes: int, seed: int) -> np.ndarray:
    """Bool per example: correct under the original AutoAttack (``attacks`` None: standard)."""
    from pyautoattack import AutoAttack

    logging.getLogger("auto-attack").setLevel(logging.ERROR)
    kw = {"version": "standard"} if attacks is None else {"version": "custom", "attacks": attacks}
    atk = AutoAttack(model, eps=eps, norm="Linf", seed=seed, device="cpu", **kw)
    atk.apgd_targeted.n_target_classes = atk.fab.n_target_classes = min(9, num_classes - 1)
    atk.verbose = False
    x_adv, _ = atk.run_standard_evaluation(x, y, batch_size=len(x))
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).numpy()


def compare(run: Path, seed: int, n_test: int | None, aa_radii: list[float] | None) -> list[dict]:
    model = rb.load_model(run)
    t0 = time.perf_counter()
    ours = rb.evaluate_run(run, ["clean", "adversarial"], EvalConfig(n_test=n_test), write=False)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    aa = EvalConfig(attacks=["autoattack"], n_test=n_test, eps=aa_radii)
    ours_aa = rb.evaluate_run(run, ["clean", "adversarial"], aa, write=False)
    t_ours_aa = time.perf_counter() - t0
    data = rb.load_dataset(ours.metrics["dataset"].iloc[0])
    idx = torch.as_tensor(ours.indices) if ours.indices is not None else torch.arange(len(data.test_y))
    x, y = to_float(data.test_x[idx]).float(), data.test_y[idx].long()
    num_classes = len(data.classes)
    method = ours.metrics["method"].iloc[0]
    rows = []
    radii = sorted(float(k[2]) for k in ours.per_example if k[:2] == ("adversarial", "worst-case"))
    for eps in radii:
        mine = ours.per_example[("adversarial", "worst-case", eps)]
        mine_aa = ours_aa.per_example.get(("adversarial", "autoattack", eps))
        t0 = time.perf_counter()
        ref = _reference(model, x, y, eps, ["apgd-ce", "apgd-t"], num_classes, seed)
        t_ref = time.perf_counter() - t0
        ref_aa = None if mine_aa is None else _reference(model, x, y, eps, None, num_classes, seed)
        rows.append(
            {
                "method": method,
                "eps": eps,
                "n": len(y),
                "ours": mine.mean(),
                "ref": ref.mean(),
                "missed": int((mine & ~ref).sum()),
                "ours_aa": None if mine_aa is None else mine_aa.mean(),
                "ref_aa": None if ref_aa is None else ref_aa.mean(),
                "missed_aa": None if mine_aa is None else int((mine_aa & ~ref_aa).sum()),
                "t_ref": t_ref,
            }
        )
        print(rows[-1], flush=True)
    for r in rows:
        r["t_ours"], r["t_ours_aa"] = t_ours, t_ours_aa
    return rows


def markdown(rows: list[dict], command: str) -> str:
    lines = [
        "# The default worst case and `--attacks autoattack` beside the original AutoAttack",
        "",
        "Made by `benchmarks/compare_autoattack_reference.py` (see its docstring):",
        "",
        f"    {command}",
        "",
        "Models from `mmbench train --method M` with their dataset's defaults; the evaluation subset `--n-test`;",
        "accuracies in %. *ref CE+T*: the original AutoAttack (`pyautoattack` "
        f"{_version()}) with `attacks=['apgd-ce', 'apgd-t']`, 100 iterations, 9 targets; *ref AA*: its "
        "standard version. *missed*: examples we call robust that the reference breaks "
        "(goal: at most 1% of the examples).",
        "",
        "| method | ε | n | ours (worst case) | ref CE+T | Δ | missed | ours `autoattack` | ref AA | Δ | missed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        aa = (
            f"{100 * r['ours_aa']:.1f} | {100 * r['ref_aa']:.1f} | {100 * (r['ours_aa'] - r['ref_aa']):+.1f} | "
            f"{r['missed_aa']}"
            if r["ours_aa"] is not None
            else "not run | | |"
        )
        lines.append(
            f"| {r['method']} | {r['eps']:g} | {r['n']} | {100 * r['ours']:.1f} | {100 * r['ref']:.1f} | "
            f"{100 * (r['ours'] - r['ref']):+.1f} | {r['missed']} | {aa} |"
        )
    with_aa = [r for r in rows if r["ours_aa"] is not None]
    worst = max((r["missed"] / r["n"] for r in rows), default=0.0)
    worst_aa = max((r["missed_aa"] / r["n"] for r in with_aa), default=0.0)
    gap = max((abs(r["ours"] - r["ref"]) for r in rows), default=0.0)
    gap_aa = max((abs(r["ours_aa"] - r["ref_aa"]) for r in with_aa), default=0.0)
    lines += [
        "",
        f"Largest share missed: {100 * worst:.1f}% (default worst case), {100 * worst_aa:.1f}% (`autoattack`); "
        f"largest |Δ|: {100 * gap:.1f} and {100 * gap_aa:.1f} points.",
        "",
        "Evaluation time per model, `clean` + `adversarial` suites (s): "
        + ", ".join(
            f"{r['method']} default {r['t_ours']:.0f}, autoattack {r['t_ours_aa']:.0f}"
            for r in rows[:: max(1, len({x["eps"] for x in rows}))]
        ),
        "",
    ]
    return "\n".join(lines)


def _version() -> str:
    import pyautoattack

    return pyautoattack.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--seed", type=int, default=0, help="the reference's seed")
    parser.add_argument("--n-test", type=int, default=None, help="test examples (default: the dataset's)")
    parser.add_argument(
        "--aa-eps", type=float, nargs="*", default=None, help="radii for the standard AutoAttack (default: all)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [r for run in args.runs for r in compare(run, args.seed, args.n_test, args.aa_eps)]
    text = markdown(rows, "OMP_NUM_THREADS=1 python " + " ".join(sys.argv))
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
