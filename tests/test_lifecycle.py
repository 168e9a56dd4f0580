"""A run's life: make-like commands, one lock per run, evaluations that accumulate, results that do
not depend on --jobs, and a report that flags undertrained runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from robustbench_mm.cli import main
from robustbench_mm.store.rundir import RunDir

FAST = ["--epochs", "2", "--suite", "clean,calibration"]
ENV_NO_THREAD_HINT = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # torch's own default


def _mmbench(*argv: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "robustbench_mm", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env or {**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_the_same_run_command_twice_reuses_everything(tmp_path):
    argv = ["run", "--methods", "erm", "--seeds", "0", *FAST, "--out", "rep", "--runs-dir", "runs"]
    first = _mmbench(*argv, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    run = tmp_path / "runs" / "digits-cnn-erm-s0"
    model, metrics = (run / "model.pt").stat().st_mtime_ns, (run / "eval" / "metrics.csv").read_bytes()
    report = (tmp_path / "rep" / "report.csv").read_bytes()
    second = _mmbench(*argv, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "up to date, evaluation reused" in second.stderr
    assert (run / "model.pt").stat().st_mtime_ns == model  # not retrained
    assert (run / "eval" / "metrics.csv").read_bytes() == metrics and (
        tmp_path / "rep" / "report.csv"
    ).read_bytes() == report
    changed = _mmbench(*argv[:-4], "--epochs", "3", "--out", "rep", "--runs-dir", "runs", cwd=tmp_path)
    assert changed.returncode == 2 and "holds a run with other settings (epochs)" in changed.stderr


def test_jobs_and_entry_point_do_not_change_a_single_bit(tmp_path):
    """--jobs 1, --jobs 2 and train + evaluate + report, without any thread hint in the
    environment: the same model.pt bytes and the same report.csv bytes."""
    plan = ["--methods", "erm,manifold-mixup", "--seeds", "0", *FAST]
    for jobs in ("1", "2"):
        done = _mmbench(
            "run",
            *plan,
            "--jobs",
            jobs,
            "--out",
            f"rep{jobs}",
            "--runs-dir",
            f"runs{jobs}",
            cwd=tmp_path,
            env=ENV_NO_THREAD_HINT,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    for method in ("erm", "manifold-mixup"):
        done = _mmbench(
            "train",
            "--method",
            method,
            "--epochs",
            "2",
            "--out-dir",
            "runs3",
            "--quiet",
            cwd=tmp_path,
            env=ENV_NO_THREAD_HINT,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    runs3 = sorted(str(p) for p in (tmp_path / "runs3").iterdir())
    assert (
        _mmbench("evaluate", *runs3, "--suite", "clean,calibration", cwd=tmp_path, env=ENV_NO_THREAD_HINT).returncode
        == 0
    )
    assert _mmbench("report", *runs3, "--out", "rep3", cwd=tmp_path, env=ENV_NO_THREAD_HINT).returncode == 0
    for name in ("digits-cnn-erm-s0", "digits-cnn-manifold-mixup-s0"):
        models = {(tmp_path / f"runs{k}" / name / "model.pt").read_bytes() for k in "123"}
        assert len(models) == 1, name
    reports = {(tmp_path / f"rep{k}" / "report.csv").read_bytes() for k in "123"}
    assert len(reports) == 1


def test_a_second_command_on_a_busy_run_is_refused(tmp_path, digits):
    from robustbench_mm.core.files import run_lock

    run = tmp_path / "runs" / "digits-cnn-erm-s0"
    run.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from robustbench_mm.core.files import run_lock\n"
                f"with run_lock({str(run)!r}, 'mmbench train'):\n    print('held', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        done = _mmbench("train", "--epochs", "1", "--out-dir", "runs", cwd=tmp_path)
        assert done.returncode == 2 and f"in use by process {holder.pid}" in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1
    finally:
        holder.kill()
        holder.wait()
    with run_lock(run, "test"):  # the kernel released it with the holder
        pass


def test_evaluations_accumulate_and_fresh_starts_over(trained_runs, tmp_path, capsys):
    import shutil

    run = tmp_path / trained_runs["erm"].name
    shutil.copytree(trained_runs["erm"], run)
    assert main(["evaluate", str(run), "--suite", "clean"]) == 0
    assert main(["evaluate", str(run), "--suite", "calibration"]) == 0
    metrics = RunDir(run).read_metrics()
    assert {"clean", "calibration"} <= set(metrics.suite)
    assert main(["evaluate", str(run), "--suite", "calibration", "--fresh"]) == 0
    assert set(RunDir(run).read_metrics().suite) == {"calibration"}
    # a second evaluation on other test examples would mix two samples: refused
    assert main(["evaluate", str(run), "--suite", "clean", "--n-test", "50"]) == 2
    assert "other test examples" in capsys.readouterr().err


def test_the_worst_case_covers_every_attack_evaluated_so_far(trained_runs, tmp_path):
    import shutil

    run = tmp_path / trained_runs["mixup"].name
    shutil.copytree(trained_runs["mixup"], run)
    base = ["--eps", "0.1", "--eps-l2", "0.5", "--suite", "clean,adversarial"]
    assert main(["evaluate", str(run), *base, "--attacks", "fgsm"]) == 0
    fgsm_only = RunDir(run).evaluation()
    assert main(["evaluate", str(run), *base, "--attacks", "pgd-linf"]) == 0
    both = RunDir(run).evaluation()
    key = ("adversarial", "worst-case", 0.1)
    worst, fgsm, apgd = (
        both.per_example[key],
        both.per_example[("adversarial", "fgsm", 0.1)],
        both.per_example[("adversarial", "pgd-linf", 0.1)],
    )
    assert (worst == (fgsm & apgd)).all()  # recomputed over both evaluations' attacks
    assert worst.sum() < fgsm_only.per_example[key].sum()
    row = both.metrics.query("test == 'worst-case' and severity == 0.1")
    assert len(row) == 1 and row.value.iloc[0] == pytest.approx(worst.mean(), abs=1e-6)  # metrics.csv keeps 6 digits


def test_an_undertrained_run_is_flagged_and_strict_fails(trained_runs, tmp_path, capsys):
    one_step = _mmbench("train", "--epochs", "1", "--batch-size", "1000", "--out-dir", "short", "--quiet", cwd=tmp_path)
    assert one_step.returncode == 0, one_step.stderr[-2000:]
    short = tmp_path / "short" / "digits-cnn-erm-s0"
    assert main(["evaluate", str(short), "--suite", "clean,calibration"]) == 0
    code = main(["report", str(short), "--out", str(tmp_path / "rep"), "--format", "md,html", "--strict", "--no-plots"])
    assert code == 1
    md = (tmp_path / "rep" / "report.md").read_text()
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "| erm ⚠ |" in md and "below the floor 95%" in md
    assert "erm ⚠" in html and "below the floor 95%" in html
    assert main(["report", str(short), "--out", str(tmp_path / "rep2"), "--no-plots"]) == 0  # not strict: a warning


def test_the_report_opens_with_a_verdict_per_method(trained_runs, tmp_path):
    import shutil

    runs = []
    for method in ("erm", "manifold-mixup"):
        runs.append(tmp_path / trained_runs[method].name)
        shutil.copytree(trained_runs[method], runs[-1])
    args = [
        "--suite",
        "clean,adversarial,corruption,calibration",
        "--attacks",
        "pgd-linf",
        "--corruptions",
        "fog",
        "--severities",
        "3",
    ]
    assert main(["evaluate", *map(str, runs), *args]) == 0
    assert main(["report", *map(str, runs), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    verdict = md.split("## Setup")[0]
    assert "**Verdict**" in verdict and "**Manifold Mixup** vs ERM:" in verdict
    for question in (
        "worst-case robust accuracy at ε = 0.1",
        "corruptions (mean accuracy)",
        "calibration (clean ECE)",
        "clean accuracy",
    ):
        assert question in verdict
    table = pd.read_csv(tmp_path / "rep" / "report.csv")
    ece = table.query("method == 'manifold-mixup' and suite == 'calibration' and test == 'clean' and metric == 'ece'")
    means = table.query("suite == 'calibration' and test == 'clean' and metric == 'ece'").set_index("method")["mean"]
    # the bootstrap's point estimate is the difference of the two ECEs the metric rows hold
    assert ece["diff"].iloc[0] == pytest.approx(means["manifold-mixup"] - means["erm"], abs=1e-5)
    assert ece.ci_low.iloc[0] <= ece["diff"].iloc[0] <= ece.ci_high.iloc[0]


def test_progress_lines_report_done_total_and_an_eta(capsys):
    from robustbench_mm.core.progress import Progress

    progress = Progress(3, "runs", "lines")
    progress.update(1, "first done")
    time.sleep(0.01)
    progress.update(1, "second done")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("[1/3] runs: first done;") and "elapsed" in err[0] and "left" in err[0]
    assert err[1].startswith("[2/3] runs: second done;")
    Progress(3, "quiet", "off").update(1)
    assert capsys.readouterr().err == ""


def test_a_finished_run_without_its_checkpoint_is_reused_or_refused(trained_runs, tmp_path, capsys):
    """The tester's case: checkpoint.pt deleted after training. Other settings are refused (the
    model and config stay), the same settings reuse the model as it is."""
    import shutil

    run = tmp_path / "runs" / trained_runs["erm"].name
    shutil.copytree(trained_runs["erm"], run)
    (run / "checkpoint.pt").unlink()
    model, config = (run / "model.pt").read_bytes(), (run / "config.toml").read_bytes()
    assert main(["train", "--epochs", "5", "--lr", "0.01", "--out-dir", str(run.parent)]) == 2
    assert "holds a run with other settings (epochs, lr)" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "--methods",
                "erm",
                "--seeds",
                "0",
                "--epochs",
                "7",
                "--lr",
                "0.02",
                "--runs-dir",
                str(run.parent),
                "--out",
                str(tmp_path / "rep"),
            ]
        )
        == 2
    )
    assert "holds a run with other settings" in capsys.readouterr().err
    assert main(["train", "--out-dir", str(run.parent), "--quiet"]) == 0
    out = capsys.readouterr()
    assert "is up to date" in out.err and "test accuracy: " in out.out and "nan" not in out.out
    assert (run / "model.pt").read_bytes() == model and (run / "config.toml").read_bytes() == config


def test_the_loss_guard_fires_on_a_high_falling_loss_not_on_an_annealed_near_zero_one():
    """A real 4-epoch MNIST ERM log (99.5% clean) halves a near-zero loss while the schedule
    anneals: not undertrained. A loss that falls from 1.2 to 0.9 at the end is."""
    import pandas as pd

    from robustbench_mm.report.verdict import STEEP, loss_fall

    mnist = pd.DataFrame({"loss": [1.00979, 0.093669, 0.044946, 0.023309]})
    assert loss_fall(mnist) == 0.0
    still_learning = pd.DataFrame({"loss": [2.1, 1.6, 1.2, 0.9]})
    assert loss_fall(still_learning) == pytest.approx(0.25) and loss_fall(still_learning) > STEEP
    assert loss_fall(pd.DataFrame({"loss": [1.0, 0.9]})) is None  # too short to judge


def test_the_loss_guard_judges_an_annealed_schedule_at_its_peak_rate():
    """A real 15-epoch CIFAR-10 ERM log (trapezoid, 83.5% clean): the loss is flat at the peak
    rate and falls 21% while the rate anneals to 0: not undertrained. The same schedule with a
    loss still falling steeply at the peak rate is."""
    import pandas as pd

    from robustbench_mm.report.verdict import STEEP, loss_fall

    lr = [0.0025] + [0.2] * 10 + [0.1777, 0.1332, 0.0888, 0.0444]
    flat = [1.512, 0.974, 0.828, 0.756, 0.714, 0.683, 0.661, 0.645, 0.629, 0.608, 0.605, 0.564, 0.513, 0.458, 0.390]
    assert loss_fall(pd.DataFrame({"loss": flat})) > STEEP  # without the rates: the anneal looks like learning
    assert loss_fall(pd.DataFrame({"loss": flat, "lr": lr})) < STEEP
    steep = [3.0, 2.8, 2.6, 2.4, 2.2, 2.0, 1.8, 1.6, 1.4, 1.2, 1.0, 0.9, 0.8, 0.7, 0.6]
    assert loss_fall(pd.DataFrame({"loss": steep, "lr": lr})) > STEEP
    constant_tail = pd.DataFrame({"loss": steep, "lr": [0.1] * 15})  # no anneal: the last tenths, as before
    assert loss_fall(constant_tail) == pytest.approx((0.85 - 0.65) / 0.85)
