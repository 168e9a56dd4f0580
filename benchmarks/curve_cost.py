"""What the minimum-norm attack (FMN, attacks/minimum_norm.py) adds to a default evaluation.

The default digits ERM model (``mmbench train``, seed 0), the whole default evaluation on the
digits test split, once with the default FMN-L∞ run and once without it, in interleaved rounds;
CPU seconds of this process (``time.process_time``, one torch thread), so other jobs on a shared
machine change the wall time but not the figure. Run:

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/curve_cost.py [RUN_DIR] [--rounds 2]

Results: benchmarks/curve_cost.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from unittest import mock

import torch

from robustbench_mm.attacks import eps_star as curve
from robustbench_mm.data.datasets import load_dataset
from robustbench_mm.evaluation.runner import evaluate
from robustbench_mm.settings import TrainConfig
from robustbench_mm.store.checkpoint import load_model
from robustbench_mm.store.rundir import RunDir
from robustbench_mm.training.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("digits")
    run_dir = args.run_dir
    if run_dir is None:
        run_dir = train(TrainConfig(method="erm"), out_dir=tempfile.mkdtemp(), progress=False, data=data).run_dir
    model = load_model(RunDir(run_dir).model_path)[0]

    def once(with_fmn: bool) -> tuple[float, float, float]:
        defaults = curve.DEFAULT_MINIMUM_NORM if with_fmn else ()
        with mock.patch.object(curve, "DEFAULT_MINIMUM_NORM", defaults):
            start = time.process_time()
            m = evaluate(model, data)
            seconds = time.process_time() - start
        adv = m[(m.suite == "adversarial") & (m.test == "worst-case") & (m.metric == "accuracy")]
        return seconds, float(adv["value"].iloc[len(adv) // 2]), len(m)

    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for with_fmn in (False, True):
            seconds, worst, rows = once(with_fmn)
            times[with_fmn].append(seconds)
            print(f"fmn={with_fmn}: {seconds:.1f} CPU s, {rows} rows, worst case at the middle radius {worst:.3f}")
    before, after = statistics.median(times[False]), statistics.median(times[True])
    print(
        f"median CPU seconds per default evaluation: without FMN {before:.1f}, with {after:.1f} (x{after / before:.2f})"
    )


if __name__ == "__main__":
    main()
