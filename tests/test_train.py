"""Training: accuracy on digits, run directory contents, reproducibility, resume after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from robustbench_mm.core.errors import UserError
from robustbench_mm.settings import TrainConfig
from robustbench_mm.store.checkpoint import load_model
from robustbench_mm.store.rundir import RunDir
from robustbench_mm.training.loop import train
from robustbench_mm.training.schedules import lr_factor


@pytest.mark.parametrize("method", ["erm", "mixup", "manifold-mixup"])
def test_default_digits_training_reaches_97_percent(trained_runs, method):
    run_dir = trained_runs[method]
    assert run_dir.name == f"digits-cnn-{method}-s0"
    model, meta = load_model(run_dir / "model.pt")
    assert meta["test_accuracy"] >= 0.97, meta["test_accuracy"]
    assert meta["arch"] == "cnn" and meta["method"] == method and meta["dataset"] == "digits"
    log = pd.read_csv(run_dir / "train_log.csv")
    assert list(log.columns) == ["epoch", "loss", "train_accuracy", "lr", "seconds"]
    assert len(log) == 30 and log["loss"].iloc[-1] < log["loss"].iloc[0]
    cfg = RunDir(run_dir).read_config()
    assert cfg.epochs == 30 and cfg.arch == "cnn" and cfg.method == method
    if method != "erm":
        assert cfg.method_options["alpha"] == {"mixup": 1.0, "manifold-mixup": 2.0}[method]
    else:
        assert cfg.method_options == {}


def test_same_seed_gives_bit_identical_model_file(tmp_path, digits):
    files = []
    for name in ("a", "b"):
        cfg = TrainConfig(method="manifold-mixup", epochs=2)
        files.append(
            train(cfg, out_dir=str(tmp_path / name), progress=False, data=digits, log=lambda s: None).run_dir
            / "model.pt"
        )
    assert files[0].read_bytes() == files[1].read_bytes()
    other = train(
        TrainConfig(method="manifold-mixup", epochs=2, seed=1),
        out_dir=str(tmp_path / "c"),
        progress=False,
        data=digits,
        log=lambda s: None,
    )
    assert (other.run_dir / "model.pt").read_bytes() != files[0].read_bytes()


def test_existing_run_is_reused_or_refused_but_never_overwritten_without_force(tmp_path, digits):
    cfg = TrainConfig(epochs=1)
    run = train(cfg, out_dir=str(tmp_path), progress=False, data=digits, log=lambda s: None).run_dir
    before = (run / "model.pt").read_bytes()
    again = train(cfg, out_dir=str(tmp_path), progress=False, data=digits, log=lambda s: None)  # the same settings
    assert again.state == "finished" and again.seconds == 0.0  # reused, not retrained
    with pytest.raises(UserError, match=r"holds a run with other settings \(lr\); pass --force"):
        train(TrainConfig(epochs=1, lr=0.01), out_dir=str(tmp_path), progress=False, data=digits, log=lambda s: None)
    assert (run / "model.pt").read_bytes() == before
    train(
        TrainConfig(epochs=1, lr=0.01),
        out_dir=str(tmp_path),
        force=True,
        progress=False,
        data=digits,
        log=lambda s: None,
    )
    assert (run / "model.pt").read_bytes() != before


@pytest.mark.parametrize("dataset,steps", [("digits", 20), ("mnist", 56), ("imagefolder-32-colour", 175)])
def test_one_epoch_with_the_default_schedule_trains_at_the_full_rate_for_most_of_it(dataset, steps):
    """--epochs 1 with each profile's default schedule: at the full lr for at least 60% of the
    steps and never below a tenth before the last quarter (the old step schedule: lr/10 throughout)."""
    cfg = TrainConfig(dataset=dataset, epochs=1).resolved("cnn", dataset)
    factors = [lr_factor(cfg.schedule, s, steps, steps, cfg.milestones) for s in range(steps)]
    assert sum(f == 1.0 for f in factors) >= 0.6 * steps
    assert min(factors[: int(0.75 * steps)]) >= 0.1


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # small models: one thread is faster and steadier


def _train_cmd(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "robustbench_mm",
        "train",
        "--method",
        "manifold-mixup",
        "--epochs",
        "8",
        "--batch-size",
        "16",
        "--out-dir",
        str(out),
        "--quiet",
    ]


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    """Kill training mid-run with SIGKILL, resume, and get the uninterrupted run's exact model."""
    reference = subprocess.run(_train_cmd(tmp_path / "ref"), capture_output=True, text=True, check=True, env=ENV)
    ref_dir = Path(reference.stdout.strip().splitlines()[-1])

    killed_out = tmp_path / "killed"
    process = subprocess.Popen(_train_cmd(killed_out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    log = killed_out / ref_dir.name / "train_log.csv"
    deadline = time.time() + 120
    while time.time() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= 3:  # header + 2 epochs done
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    run_dir = killed_out / ref_dir.name
    assert not (run_dir / "model.pt").exists(), "the run finished before it could be killed"
    epochs_done = torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"]
    assert 2 <= epochs_done < 8

    resumed = subprocess.run(
        _train_cmd(killed_out), capture_output=True, text=True, env=ENV
    )  # the same command continues
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run_dir} after epoch {epochs_done}" in resumed.stderr
    assert (run_dir / "model.pt").read_bytes() == (ref_dir / "model.pt").read_bytes()
    assert len(pd.read_csv(run_dir / "train_log.csv")) == 8


def test_resume_with_different_settings_is_refused(tmp_path, digits):
    train(TrainConfig(epochs=1), out_dir=str(tmp_path), progress=False, data=digits, log=lambda s: None)
    with pytest.raises(UserError, match=r"holds a run with other settings \(lr\); pass --force"):
        train(TrainConfig(epochs=1, lr=0.5), out_dir=str(tmp_path), progress=False, data=digits, log=lambda s: None)


def test_force_keeps_the_old_run_until_the_new_one_is_complete(tmp_path, digits, monkeypatch):
    from robustbench_mm.training import loop as train_module

    cfg = TrainConfig(epochs=1, lr=0.01)
    first = train(cfg, out_dir=str(tmp_path), progress=False, data=digits, log=lambda s: None)
    old_model = (first.run_dir / "model.pt").read_bytes()

    real_step = train_module.train_step
    calls = []

    def interrupted(*args, **kwargs):  # Ctrl-C during the first epoch of the replacement
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out_dir=str(tmp_path), force=True, progress=False, data=digits, log=lambda s: None)
    backup = first.run_dir / ".replaced"
    assert (backup / "model.pt").read_bytes() == old_model  # nothing lost
    assert not (first.run_dir / "model.pt").exists()

    monkeypatch.setattr(train_module, "train_step", real_step)
    train(
        cfg, out_dir=str(tmp_path), force=True, progress=False, data=digits, log=lambda s: None
    )  # a second --force keeps the backup...
    assert (first.run_dir / "model.pt").exists() and not backup.exists()  # ...until the new run is complete


def test_train_without_a_terminal_prints_a_line_per_epoch(tmp_path, capsys):
    """A log file or CI sees every epoch as a line (a bar is for terminals; pytest's stderr is not one)."""
    from robustbench_mm.cli import main

    assert main(["train", "--epochs", "2", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "epoch 1/2: loss " in err and "epoch 2/2: loss " in err and "\r" not in err
    assert main(["train", "--epochs", "2", "--out", str(tmp_path / "q"), "--quiet"]) == 0
    assert "epoch 1/2" not in capsys.readouterr().err
