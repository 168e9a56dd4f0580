"""The scheduler layer: every launcher gives the same report bytes; submitit jobs (its local
executor: the Slurm code path on one machine) survive a requeue and a kill; mmbench status."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustbench_mm.app import jobrecords
from robustbench_mm.app.pipeline import run_benchmark
from robustbench_mm.app.status import run_states
from robustbench_mm.core.errors import UserError
from robustbench_mm.settings import EvalConfig, RunPlan, TrainConfig

PLAN = ["--methods", "erm,manifold-mixup", "--seeds", "0,1", "--epochs", "2", "--suite", "clean,calibration"]


def _mmbench(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "robustbench_mm", *argv], cwd=cwd, capture_output=True, text=True, timeout=900, env=env
    )


def test_local_and_overlapped_launchers_give_the_report_bytes_of_jobs_1_and_status_says_finished(tmp_path):
    pytest.importorskip("submitit")
    for launcher in (["--jobs", "1"], ["--launcher", "local"], ["--launcher", "overlapped"]):
        name = launcher[-1]
        done = _mmbench("run", *PLAN, *launcher, "--out", f"rep-{name}", "--runs-dir", f"runs-{name}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
    reports = {name: (tmp_path / f"rep-{name}" / "report.csv").read_bytes() for name in ("1", "local", "overlapped")}
    assert reports["1"] == reports["local"] == reports["overlapped"]
    records = jobrecords.recorded_runs(tmp_path / "runs-local")
    assert len(records) == 4 and all(
        jobrecords.read_record(tmp_path / "runs-local", r).launcher == "local" for r in records
    )
    status = _mmbench("status", "runs-local", cwd=tmp_path)
    lines = status.stdout.strip().splitlines()
    assert status.returncode == 0 and lines[-1] == "4 finished", status.stdout
    assert sorted(line.split() for line in lines[:-1]) == [[name, "finished"] for name in sorted(records)]


def _settings(tmp_path: Path, epochs: int, **plan) -> tuple[RunPlan, TrainConfig, EvalConfig]:
    runs = str(tmp_path / "runs")
    return (
        RunPlan(methods=["erm"], seeds=[0, 1], runs_dir=runs, out=str(tmp_path / "rep"), **plan),
        TrainConfig(epochs=epochs),
        EvalConfig(suites=["clean"]),
    )


def _wait_for(condition, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _holder(run: Path) -> int | None:
    """The PID of the job process training ``run`` (it holds the run's lock)."""
    try:
        return int((run / ".lock").read_text().splitlines()[0])
    except (OSError, IndexError, ValueError):
        return None


def test_submitit_jobs_requeue_and_a_killed_job_completes_without_retraining_what_finished(
    tmp_path, capsys, sigint_ignored
):
    """Submitted from a process that ignores SIGINT, as a background CI runner starts the tests:
    the local jobs must take the cancel's SIGINT all the same (they once inherited the ignoring)."""
    pytest.importorskip("submitit")
    plan, train, evaluate = _settings(tmp_path, epochs=12, launcher="local", wait=False)
    assert run_benchmark(plan, train, evaluate) == 0  # submitted; returns at once
    runs = tmp_path / "runs"
    s0, s1 = runs / "digits-cnn-erm-s0", runs / "digits-cnn-erm-s1"
    # preemption / time limit (what Slurm sends): the job checkpoints, is requeued and resumes
    _wait_for(lambda: (s0 / "checkpoint.pt").exists() and _holder(s0), "a checkpoint of seed 0")
    os.kill(_holder(s0), signal.SIGUSR2)
    # a killed job: the run is left interrupted, with its checkpoint
    _wait_for(lambda: (s1 / "checkpoint.pt").exists(), "a checkpoint of seed 1")
    record = jobrecords.read_record(runs, s1.name)
    os.kill(int(record.job_id), signal.SIGINT)  # what `scancel --signal=INT` / job.cancel() does
    _wait_for(lambda: not jobrecords.pid_alive(record.job_id), "the cancelled job to end")
    _wait_for(lambda: {s.name: s.state for s in run_states(runs)}[s0.name] == "finished", "seed 0 to finish")
    states = {s.name: s for s in run_states(runs)}
    assert states[s1.name].state == "interrupted" and "checkpoint kept" in states[s1.name].detail
    assert "resum" in Path(jobrecords.read_record(runs, s0.name).stderr).read_text()  # the requeued job resumed
    assert not (s1 / "model.pt").exists()
    model = (s0 / "model.pt").stat().st_mtime_ns

    capsys.readouterr()
    assert run_benchmark(dataclasses.replace(plan, wait=True), train, evaluate) == 0
    err = capsys.readouterr().err
    assert "1 submitted" in err and "1 finished before" in err, err
    assert f"{s0.name} up to date, evaluation reused" in err and f"{s1.name} resumed" in err, err
    assert (s0 / "model.pt").stat().st_mtime_ns == model  # not retrained, not resubmitted
    assert (tmp_path / "rep" / "report.csv").exists()
    assert [s.state for s in run_states(runs)] == ["finished", "finished"]


def test_overlapped_budget_stops_cleanly_and_the_same_command_resumes(tmp_path, capsys):
    plan, train, evaluate = _settings(tmp_path, epochs=2, launcher="overlapped")
    runs = tmp_path / "runs"
    first = dataclasses.replace(plan, seeds=[0])
    assert run_benchmark(first, train, evaluate) == 0
    reference = (tmp_path / "rep" / "report.csv").read_bytes()
    # a budget too small for a second training: seed 0 is reused, seed 1 stops at the limit
    slow = dataclasses.replace(train, epochs=400)
    with pytest.raises(UserError, match="other settings"):  # (a run of other settings is still refused)
        run_benchmark(dataclasses.replace(plan, budget_minutes=0.05), slow, evaluate)
    capsys.readouterr()
    assert run_benchmark(dataclasses.replace(plan, budget_minutes=0.05), train, evaluate) == 1
    err = capsys.readouterr().err
    assert "digits-cnn-erm-s0 up to date" in err, err
    # stopped in flight, or skipped when reusing seed 0 already took the budget on a busy machine
    assert re.search("not finished: digits-cnn-erm-s1 (stopped|skipped): the budget ran out", err), err
    assert (tmp_path / "rep" / "report.csv").read_bytes() == reference  # the report covers what finished
    # stopped while training (no model.pt) or while evaluating (the trained model, no evaluation)
    assert [s.state for s in run_states(runs)][1] != "finished"
    assert run_benchmark(plan, train, evaluate) == 0  # no budget: seed 1 completes, trained here, evaluated there
    assert [s.state for s in run_states(runs)] == ["finished", "finished"]


def test_launcher_options_are_checked_and_a_missing_submitit_names_the_extra(monkeypatch, tmp_path):
    with pytest.raises(UserError, match="--slurm-partition does not apply to launcher processes"):
        RunPlan(slurm_partition="gpu").validate(cli=True)
    with pytest.raises(UserError, match="--budget-minutes does not apply to launcher slurm"):
        RunPlan(launcher="slurm", budget_minutes=5).validate(cli=True)
    with pytest.raises(UserError, match="--no-wait does not apply"):
        RunPlan(wait=False).validate(cli=True)
    from robustbench_mm.app.schedulers import cluster

    if shutil.which("srun") is None:  # not on a cluster: one line, and nothing submitted
        with pytest.raises(UserError, match="--launcher slurm: .*srun.*--launcher local"):
            cluster.SubmititScheduler(RunPlan(launcher="slurm", runs_dir=str(tmp_path)))
        assert not (tmp_path / "jobs").exists() or not any((tmp_path / "jobs").iterdir())
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    with pytest.raises(UserError, match=r"pip install 'robustbench-mm\[slurm\]'") as info:
        cluster.import_submitit()
    assert "\n" not in str(info.value)


def test_status_names_each_state_and_exits_0_only_when_all_finished(tmp_path):
    plan, train, evaluate = _settings(tmp_path, epochs=1)
    assert run_benchmark(dataclasses.replace(plan, seeds=[0]), train, evaluate) == 0
    runs = tmp_path / "runs"
    done = runs / "digits-cnn-erm-s0"
    (runs / "half").mkdir()
    shutil.copyfile(done / "config.toml", runs / "half" / "config.toml")
    shutil.copyfile(done / "model.pt", runs / "half" / "checkpoint.pt")  # any checkpoint file will do here
    failed = jobrecords.JobRecord("local", "999999999", str(runs / "jobs"), stderr=str(runs / "jobs" / "x.err"))
    jobrecords.write_record(runs, "broken", failed)
    (runs / "jobs" / "x.err").write_text("Traceback ...\nValueError: out of memory\n")
    jobrecords.write_record(runs, "queued", jobrecords.JobRecord("local", str(os.getpid()), str(runs / "jobs")))
    states = {s.name: (s.state, s.detail) for s in run_states(runs)}
    assert states[done.name] == ("finished", "")
    assert states["half"][0] == "interrupted"
    assert states["queued"][0] == "running"  # its job (this very process) is alive
    assert states["broken"][0] == "not started"  # its job is gone and it never wrote a file
    failed.failed = "ValueError: out of memory"
    jobrecords.write_record(runs, "broken", failed)
    assert run_states(runs)[0].state == "failed" and "out of memory" in run_states(runs)[0].detail
    out = subprocess.run(
        [sys.executable, "-m", "robustbench_mm", "status", str(runs)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert out.returncode == 1 and "1 finished, 1 running, 1 interrupted, 1 failed" in out.stdout, out.stdout
    assert _mmbench("status", str(tmp_path / "nowhere"), cwd=tmp_path).returncode == 2
