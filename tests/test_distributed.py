"""torchrun + DistributedDataParallel on the CPU (gloo): 2 processes match 1 process."""

from __future__ import annotations

import subprocess
import sys

import torch

from robustbench_mm.config import TrainConfig
from robustbench_mm.train import train

ARGS = ["--arch", "mlp", "--method", "erm", "--epochs", "2", "--batch-size", "64", "--device", "cpu", "--quiet"]


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path, digits):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "robustbench_mm", "train", *ARGS, "--out-dir", str(tmp_path / "ddp")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    ddp_run = tmp_path / "ddp" / "digits-mlp-erm-s0"
    assert (ddp_run / "model.pt").exists()
    # Only rank 0 wrote: one run directory, one config, one log with one row per epoch.
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["digits-mlp-erm-s0"]
    assert "processes = 2" in (ddp_run / "config.toml").read_text()

    single = train(TrainConfig(arch="mlp", method="erm", epochs=2, batch_size=64, device="cpu", out_dir=str(tmp_path / "one")),
                   progress=False, data=digits, log=lambda s: None)
    a = torch.load(ddp_run / "model.pt", weights_only=True)
    b = torch.load(single.run_dir / "model.pt", weights_only=True)
    for key, value in b["state_dict"].items():
        assert torch.allclose(a["state_dict"][key], value, atol=1e-5, rtol=1e-4), key
    assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 1 / 360 + 1e-9
