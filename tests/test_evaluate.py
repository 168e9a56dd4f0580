"""The evaluation API and `mmbench evaluate/report/run` end to end on real digits models."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch
from torch import nn

import robustbench_mm as rb
from robustbench_mm.cli import main
from robustbench_mm.core.results import COLUMNS
from robustbench_mm.evaluation.runner import evaluate_run
from robustbench_mm.store.rundir import RunDir

FAST = ["--attacks", "fgsm,pgd-linf", "--eps", "0.05,0.1", "--eps-l2", "0.5", "--pgd-steps", "5"]


class UserModel(nn.Module):
    """A user's own model: not one of ours, no mix points, normalizes inside."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.net((x - 0.3) / 0.4)


def test_evaluate_any_module_returns_the_results_schema(digits):
    df = rb.evaluate(UserModel(), digits, suites=["clean", "deformation", "calibration"])
    assert list(df.columns) == COLUMNS
    assert set(df.suite) == {"clean", "deformation", "calibration"}
    assert set(df.query("suite == 'deformation'").test) == {"rotate", "shear", "zoom-in", "zoom-out", "mean"}
    assert ((df.query("metric == 'accuracy'").value >= 0) & (df.query("metric == 'accuracy'").value <= 1)).all()
    assert (df.n == 360).all()


def test_evaluation_restores_model_mode(trained_models, digits):
    model = trained_models["erm"]
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rb.evaluate(model, digits, suites=["clean", "deformation"])
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # BatchNorm statistics did not move
    model.eval()


def test_evaluate_run_writes_metrics_per_example_and_bins(trained_runs, digits, tmp_path):
    run = tmp_path / trained_runs["mixup"].name
    shutil.copytree(trained_runs["mixup"], run)
    evaluation = evaluate_run(run, suites=["clean", "deformation", "calibration"], data=digits)
    metrics = pd.read_csv(run / "eval" / "metrics.csv")
    assert list(metrics.columns) == COLUMNS and len(metrics) == len(evaluation.metrics)
    assert set(metrics.method) == {"mixup"} and set(metrics.run) == {run.name}
    per_example = RunDir(run).evaluation().per_example
    clean = per_example[("clean", "clean", 0.0)]
    assert clean.dtype == bool and clean.shape == (360,)
    assert clean.mean() == pytest.approx(metrics.query("suite == 'clean'").value.iloc[0], abs=1e-6)
    bins = pd.read_csv(run / "eval" / "reliability.csv")
    assert bins["count"].sum() == 360 and len(bins) == 15
    # Calibration under shift and after temperature scaling, with the fitted temperature.
    cal = metrics.query("suite == 'calibration'")
    assert {"ece", "ece-ts", "nll-ts", "temperature"} <= set(cal.metric)
    assert {"clean", "rotate", "zoom-out"} <= set(cal.test)
    assert cal.query("metric == 'temperature'").value.gt(0).all()


def test_cli_evaluate_report_and_reproducible_report_csv(trained_runs, tmp_path, capsys):
    runs = []
    for source in trained_runs.values():
        runs.append(tmp_path / source.name)
        shutil.copytree(source, runs[-1])
    assert main(["evaluate", *map(str, runs), "--suite", "clean,adversarial,deformation,calibration", *FAST]) == 0
    printed = capsys.readouterr().out
    assert "| method |" in printed and "wrote" in printed
    assert main(["report", *map(str, runs), "--out", str(tmp_path / "a"), "--format", "md,html"]) == 0
    assert main(["report", *map(str, runs), "--out", str(tmp_path / "b"), "--no-plots"]) == 0
    a, b = (tmp_path / "a" / "report.csv").read_bytes(), (tmp_path / "b" / "report.csv").read_bytes()
    assert a == b
    report = pd.read_csv(tmp_path / "a" / "report.csv")
    assert {"mean", "std", "seeds", "diff", "ci_low", "ci_high"} <= set(report.columns)
    diffs = report.dropna(subset=["diff"])
    assert set(diffs.method) == {"mixup", "manifold-mixup"}
    assert (diffs.ci_low <= diffs["diff"] + 1e-12).all() and (diffs["diff"] <= diffs.ci_high + 1e-12).all()
    md = (tmp_path / "a" / "report.md").read_text()
    assert "## Headline" in md and "**" in md and "Difference to ERM" in md and "![" in md
    html = (tmp_path / "a" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html and "<table>" in html


def test_show_corruptions_writes_a_grid_png(tmp_path, capsys):
    assert main(["show-corruptions", "--dataset", "digits", "--out", str(tmp_path), "--images", "2"]) == 0
    path = tmp_path / "corruptions_digits.png"
    assert capsys.readouterr().out.strip() == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000


def test_run_plan_prints_one_self_contained_command_per_run(capsys):
    assert main(["run", "--plan", "--seeds", "0,1", "--methods", "erm,manifold-mixup"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    assert all(line.startswith("mmbench train ") and " && mmbench evaluate runs/digits-cnn-" in line for line in lines)
    assert sum("--method manifold-mixup" in line for line in lines) == 2


def test_presets_are_listed_and_flags_override_them(capsys):
    assert main(["list", "--presets"]) == 0
    listed = capsys.readouterr().out
    assert "table1-cifar10-preactresnet18" in listed and "table4-cifar100-deformations" in listed
    assert main(["run", "--plan", "--preset", "table7-cifar10-fgsm", "--epochs", "5", "--seeds", "0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3  # erm, mixup, manifold-mixup
    assert all("--dataset cifar10" in ln and "--arch preactresnet18" in ln and "--epochs 5" in ln for ln in lines)
    assert all("--milestones 2,3" in line for line in lines)  # the preset's 400/800 of 1,200, scaled to 5 epochs
    assert all("--attacks fgsm,pgd-linf,square --eps 0.01,0.03" in line for line in lines)  # the preset's evaluation
    assert not any("--alpha" in line for line in lines)  # the preset's α are the methods' own defaults
    assert all("--mix-loss bce" in line for line in lines)  # the official code's loss, for every method
    assert (
        main(["run", "--plan", "--preset", "table7-cifar10-fgsm", "--epochs", "5", "--seeds", "0", "--mix-loss", "ce"])
        == 0
    )
    assert "--mix-loss" not in capsys.readouterr().out  # a flag overrides the preset (ce is the default)


def test_a_plan_line_runs_in_sh_with_spaces_in_the_path(tmp_path, capsys):
    """The printed line is a working POSIX shell command, also for a runs folder with a space."""
    import os
    import subprocess
    import sys

    runs = tmp_path / "my runs"
    assert (
        main(
            [
                "run",
                "--plan",
                "--methods",
                "erm",
                "--seeds",
                "0",
                "--epochs",
                "1",
                "--suites",
                "clean",
                "--runs-dir",
                str(runs),
            ]
        )
        == 0
    )
    (line,) = capsys.readouterr().out.strip().splitlines()
    env = {
        **os.environ,
        "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-1000:]
    assert (runs / "digits-cnn-erm-s0" / "eval" / "metrics.csv").exists()
