"""Evaluation time per model before and after the stronger default worst case, side by side.

"before" is the package at ``--before`` (a git revision: its source is exported to a temporary
folder with ``git archive``), "after" the working tree. Both evaluate the same run directories
with the default suites and settings (``rb.evaluate_run(run, write=False)``), each in its own
process on one torch thread, in turn model by model (interleaved, so drift of a shared machine
affects both alike). Both evaluate a copy of the run's config.toml and weights, model.pt in
format 1 (which revisions before format 2 read; it also carried a few training settings, copied
from config.toml).
Reported: wall seconds, CPU seconds of the process (the fair measure on a
loaded machine: one thread), the adversarial suite's seconds, and the worst case per radius.

Run::

    OMP_NUM_THREADS=1 python benchmarks/cost_default_worst_case.py /tmp/aa/runs/* --before 690d53b \\
        --out benchmarks/default_worst_case_cost.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(1)
import robustbench_mm as rb
from robustbench_mm.settings import EvalConfig
# argv[3]: "default", or "autoattack@EPS" (the adversarial suite with the standard AutoAttack at one radius)
config = EvalConfig() if sys.argv[3] == "default" else EvalConfig(
    suites=["adversarial"], attacks=["autoattack"], eps=[float(sys.argv[3].split("@")[1])])
wall, cpu = time.perf_counter(), time.process_time()
ev = rb.evaluate_run(sys.argv[2], config=config, write=False)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
m = ev.metrics
worst = m[m.test == ("worst-case" if sys.argv[3] == "default" else "autoattack")].sort_values("severity")
print(json.dumps({"wall": wall, "cpu": cpu, "adversarial": ev.suite_seconds.get("adversarial"),
                  "method": m.method.iloc[0], "worst": dict(zip(worst.severity.astype(float), worst.value))}))
"""


def _measure(source: Path, run: Path, what: str = "default") -> dict:
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(run), what], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _format1_copy(run: Path, folder: Path) -> Path:
    """The run's config.toml and weights, model.pt rewritten in format 1 (which revisions before 2 read)."""
    import tomllib
    import torch

    copy = folder / run.name
    copy.mkdir()
    shutil.copy(run / "config.toml", copy / "config.toml")
    settings = tomllib.loads((run / "config.toml").read_text())
    payload = torch.load(run / "model.pt", map_location="cpu", weights_only=False)
    if payload.get("format") == "robustbench_mm.model/2":
        payload["format"] = "robustbench_mm.model/1"
        payload.pop("mix_modules", None)
        payload["holdout_fraction"] = settings["train"]["holdout_fraction"]
        payload["holdout_seed"] = settings["run"]["holdout_seed"]
        payload["epoch"] = settings["train"]["epochs"]
        for key in ("alpha", "mix_layers"):
            if key in settings.get("method", {}):
                payload[key] = settings["method"][key]
    torch.save(payload, copy / "model.pt")
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--before", default="690d53b", help="git revision of the 'before' package")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--autoattack-eps", type=float, default=None, help="also time the standard AutoAttack at this one radius"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.before, "robustbench_mm"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        rows = []
        for run in args.runs:
            # both read the same copy: weights only, no stored evaluation to merge with
            copy = _format1_copy(run, Path(tmp))
            before, after = _measure(Path(tmp), copy), _measure(ROOT, copy)
            standard = _measure(ROOT, copy, f"autoattack@{args.autoattack_eps}") if args.autoattack_eps else None
            rows.append((before, after, standard))
            print(before, after, standard, flush=True)
    lines = [
        "# Evaluation time per model: the default worst case before and after",
        "",
        "Made by `benchmarks/cost_default_worst_case.py` (see its docstring):",
        "",
        f"    OMP_NUM_THREADS=1 python {' '.join(sys.argv)}",
        "",
        f"*before*: revision `{args.before}` (FGSM, PGD-10 at every radius; Square-50 and APGD-T with 10 "
        "iterations at the headline only). *after*: FGSM, PGD-10, Square-50 at every radius, FMN-L∞, then "
        "APGD-CE and APGD-T (100 iterations, 9 targets) at every radius on the examples still standing and "
        "within 1.75x their FMN distance (L2: 2x the first-order distance). *AutoAttack*: the adversarial "
        "suite alone with `--attacks autoattack` (the original standard version: APGD-CE, APGD-T, FAB-T, "
        "Square-5000) at the one radius `--autoattack-eps`. Default suites and the default evaluation subset "
        "of each model's dataset, one torch thread; seconds.",
        "",
        "| method | CPU before | CPU after | ratio | adversarial suite, wall before (shared machine) | after |"
        " AutoAttack at one ε, CPU | worst case before (ε: %) | after | AutoAttack |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for before, after, standard in rows:
        show = lambda r: ", ".join(f"{float(e):g}: {100 * v:.1f}" for e, v in r["worst"].items())  # noqa: E731
        aa = f"{standard['cpu']:.1f}" if standard else "-"
        lines.append(
            f"| {after['method']} | {before['cpu']:.1f} | {after['cpu']:.1f} | {after['cpu'] / before['cpu']:.2f} | "
            f"{before['adversarial']:.1f} | {after['adversarial']:.1f} | {aa} | "
            f"{show(before)} | {show(after)} | {show(standard) if standard else '-'} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
