"""torchrun on the CPU (gloo): 2 processes match 1 process, for training (DistributedDataParallel)
and for evaluation (the attacks' batches sharded, results gathered)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import torch

from robustbench_mm.settings import TrainConfig
from robustbench_mm.training.loop import train

ARGS = ["--arch", "mlp", "--method", "erm", "--epochs", "2", "--batch-size", "64", "--device", "cpu", "--quiet"]


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path, digits):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "robustbench_mm",
        "train",
        *ARGS,
        "--out-dir",
        str(tmp_path / "ddp"),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ddp_run = tmp_path / "ddp" / "digits-mlp-erm-s0"
    assert (ddp_run / "model.pt").exists()
    # Only rank 0 wrote: one run directory, one config, one log with one row per epoch.
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["digits-mlp-erm-s0"]
    assert "processes = 2" in (ddp_run / "config.toml").read_text()

    single = train(
        TrainConfig(arch="mlp", method="erm", epochs=2, batch_size=64, device="cpu"),
        out_dir=str(tmp_path / "one"),
        progress=False,
        data=digits,
        log=lambda s: None,
    )
    a = torch.load(ddp_run / "model.pt", weights_only=True)
    b = torch.load(single.run_dir / "model.pt", weights_only=True)
    for key, value in b["state_dict"].items():
        assert torch.allclose(a["state_dict"][key], value, atol=1e-5, rtol=1e-4), key
    assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 1 / 360 + 1e-9


def test_two_gloo_processes_evaluate_exactly_like_one(tmp_path, trained_runs, digits):
    """`torchrun -m robustbench_mm evaluate`: each process attacks every other batch (4 batches
    of 100), yet metrics and per-example results equal a single process's, bit for bit; rank 0
    alone writes."""
    from robustbench_mm.evaluation.runner import evaluate_run
    from robustbench_mm.settings import EvalConfig

    single, sharded = tmp_path / "single", tmp_path / "sharded"
    for target in (single, sharded):
        shutil.copytree(trained_runs["manifold-mixup"], target)
    settings = dict(suites=["clean", "adversarial"], batch_size=100, device="cpu")
    evaluate_run(single, config=EvalConfig(**settings), data=digits)

    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "robustbench_mm",
        "evaluate",
        str(sharded),
        "--suites",
        "clean,adversarial",
        "--eval-batch-size",
        "100",
        "--device",
        "cpu",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("wrote ") == 1 and "2 processes" in done.stdout  # rank 0 reports, once

    a, b = pd.read_csv(single / "eval" / "metrics.csv"), pd.read_csv(sharded / "eval" / "metrics.csv")
    assert len(a) > 20 and (a["test"] == "square").any() and (a["suite"] == "diagnostics").any()
    pd.testing.assert_frame_equal(a.drop(columns="run"), b.drop(columns="run"))
    pa, pb = np.load(single / "eval" / "per_example.npz"), np.load(sharded / "eval" / "per_example.npz")
    assert sorted(pa.files) == sorted(pb.files)
    for key in pa.files:
        assert np.array_equal(pa[key], pb[key]), key


def test_bad_input_under_torchrun_is_said_once(tmp_path, trained_runs):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "robustbench_mm",
        "evaluate",
        str(trained_runs["erm"]),
        "--suites",
        "clean",
        "--eps",
        ",",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode != 0
    assert done.stderr.count("mmbench: error: --eps is empty") == 1, done.stderr[-2000:]
