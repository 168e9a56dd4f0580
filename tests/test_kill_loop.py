"""SIGKILL at random moments (fixed seed): `run --jobs 2` (the parent alone, or its whole process
group), `evaluate` and `report`; then the same commands again. No process is left behind, a
reader never meets a half-written evaluation or report, and the end result is bit-identical to
an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from robustbench_mm.store.rundir import RunDir

PLAN = ["--methods", "erm,mixup", "--seeds", "0", "--epochs", "2", "--suite", "clean,calibration", "--jobs", "2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _start(argv: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "robustbench_mm", *argv],
        cwd=cwd,
        env=ENV,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _session_alive(sid: int) -> list[int]:
    """PIDs still alive in session ``sid`` (zombies count as gone: nothing reaps them here)."""
    alive = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(status.parent.name))
    return alive


def _wait_gone(sid: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while _session_alive(sid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _session_alive(sid), f"processes left behind: {_session_alive(sid)}"


def _kill(process: subprocess.Popen, after: float, group: bool) -> None:
    try:
        process.wait(timeout=after)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL) if group else process.kill()
    process.wait()
    process.stderr.close()
    _wait_gone(process.pid)


def _check_readable(root: Path) -> None:
    """Whatever a kill left: every published evaluation and report is whole."""
    for run in (root / "runs").glob("*"):
        stored = RunDir(run).evaluation()
        if stored is not None:
            assert len(stored.metrics) > 0 and ("clean", "clean", 0.0) in stored.per_example
            assert int(stored.record["subset"]["n"]) == len(stored.per_example[("clean", "clean", 0.0)])
    report = root / "rep" / "report.csv"
    if report.exists():
        md = (root / "rep" / "report.md").read_text()
        assert "# Manifold Mixup robustness report" in md and md.rstrip().endswith("|")


def test_kill_loop_never_leaves_a_mix_a_loss_or_a_process(tmp_path):
    reference = subprocess.run(
        [sys.executable, "-m", "robustbench_mm", "run", *PLAN, "--out", "rep", "--runs-dir", "runs"],
        cwd=_mkdir(tmp_path / "ref"),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert reference.returncode == 0, reference.stderr[-2000:]
    work = _mkdir(tmp_path / "work")
    rng = random.Random(20261201)
    for attempt in range(4):  # the main job, killed at random moments, parent only or the whole group
        _kill(
            _start(["run", *PLAN, "--out", "rep", "--runs-dir", "runs"], work), rng.uniform(1.0, 4.5), attempt % 2 == 1
        )
        _check_readable(work)
    done = subprocess.run(
        [sys.executable, "-m", "robustbench_mm", "run", *PLAN, "--out", "rep", "--runs-dir", "runs"],
        cwd=work,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    runs = sorted(str(p) for p in (work / "runs").iterdir())
    for argv in (["evaluate", *runs, "--suite", "clean,calibration", "--fresh"], ["report", *runs, "--out", "rep"]):
        _kill(_start(argv, work), rng.uniform(0.5, 3.0), group=True)  # an evaluation or a report, killed
        _check_readable(work)
    done = subprocess.run(
        [sys.executable, "-m", "robustbench_mm", "run", *PLAN, "--out", "rep", "--runs-dir", "runs"],
        cwd=work,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("digits-cnn-erm-s0", "digits-cnn-mixup-s0"):
        assert (work / "runs" / name / "model.pt").read_bytes() == (
            tmp_path / "ref" / "runs" / name / "model.pt"
        ).read_bytes()
    assert (work / "rep" / "report.csv").read_bytes() == (tmp_path / "ref" / "rep" / "report.csv").read_bytes()
    assert not list(work.rglob(".staging")) and not list(work.rglob("*.building"))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
