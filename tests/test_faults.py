"""Faults around the files: a full disk, a read-only file system, temp files a kill leaves
behind, two processes on one run directory, workers whose parent is killed.

Every process test uses real processes and polls for the outcome (with a generous deadline
only so that a regression fails instead of hanging); no test asserts a duration.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustbench_mm.core import files as storage
from robustbench_mm.core.errors import UserError
from robustbench_mm.core.files import atomic_write_bytes, atomic_write_text, remove_stale_temps, run_lock
from robustbench_mm.core.procs import interruptible_children

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    "OMP_NUM_THREADS": "1",
}
DEADLINE = 60.0  # seconds: a hang guard, not a speed requirement


def _poll(condition, deadline: float = DEADLINE) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=DEADLINE)


# ------------------------------------------------------------------------------ write errors


def _fail_with(code: int):
    def fail(*args, **kwargs):  # as the os module raises them: naming the file, when it has one
        names = [a for a in args if isinstance(a, (str, os.PathLike))][:2]
        raise OSError(code, os.strerror(code), *names)

    return fail


@pytest.mark.parametrize(
    "where, code",
    [
        ("fsync", errno.ENOSPC),
        ("fsync", errno.EDQUOT),
        ("replace", errno.EROFS),
        ("replace", errno.EACCES),
        ("chmod", errno.EPERM),
    ],
)
def test_a_failed_write_names_the_target_and_keeps_the_old_file(tmp_path, monkeypatch, where, code):
    target = tmp_path / "metrics.csv"
    target.write_text("old\n")
    monkeypatch.setattr(storage.os, where, _fail_with(code))
    with pytest.raises(UserError) as info:
        atomic_write_text(target, "new\n")
    assert str(info.value) == f"cannot write {target}: {os.strerror(code)}"
    monkeypatch.undo()
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]  # the temp file is gone too


def test_a_full_disk_mid_write_names_the_target(tmp_path):
    def write(handle):
        handle.write(b"x" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a write() to a full disk does

    with pytest.raises(UserError, match=r"^cannot write .*/model.pt: No space left on device$"):
        storage.atomic_write(tmp_path / "model.pt", write)
    assert list(tmp_path.iterdir()) == []


def test_an_error_about_another_file_is_not_blamed_on_the_target(tmp_path):
    def write(handle):
        open(tmp_path / "missing-input.csv")

    with pytest.raises(FileNotFoundError, match="missing-input.csv"):
        storage.atomic_write(tmp_path / "out.csv", write)
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_directory_names_the_target(tmp_path, monkeypatch):
    monkeypatch.setattr(storage.tempfile, "mkstemp", _fail_with(errno.EROFS))
    with pytest.raises(UserError, match=r"^cannot write .*/report.csv: Read-only file system$"):
        atomic_write_bytes(tmp_path / "report.csv", b"x")


def test_a_full_disk_through_the_cli_is_one_line(tmp_path, monkeypatch, capsys):
    from robustbench_mm.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(storage.os, "fsync", _fail_with(errno.ENOSPC))
    assert main(["show-corruptions", "--out", "pics", "--corruptions", "fog"]) == 2
    err = capsys.readouterr().err
    assert err == "mmbench: error: cannot write pics/corruptions_digits.png: No space left on device\n"
    assert list((tmp_path / "pics").iterdir()) == []


def test_an_interrupted_write_still_raises_itself(tmp_path):
    def write(handle):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        storage.atomic_write(tmp_path / "a.bin", write)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ stale temp files


def test_remove_stale_temps_removes_ours_only(tmp_path):
    ours = [".checkpoint.pt.ab_d1234.tmp", ".metrics.csv.zz9x0yq_.tmp", ".train_log.csv.00000000.tmp"]
    others = [
        ".checkpoint.pt.abc.tmp",
        "checkpoint.pt.abcd1234.tmp",
        ".checkpoint.pt.abcd1234.tmp.keep",
        ".notes.txt.abcd1234.tmp",
        ".checkpoint.pt.ABCD1234.tmp",
        "checkpoint.pt",
        ".lock",
    ]
    for name in ours + others:
        (tmp_path / name).write_text(name)
    (tmp_path / ".model.pt.abcd1234.tmp").mkdir()  # a directory of our pattern: not ours
    outside = tmp_path.parent / f"{tmp_path.name}-target"
    outside.write_text("keep")
    (tmp_path / ".model.pt.efgh5678.tmp").symlink_to(outside)  # a link of our pattern: not ours either
    names = ["checkpoint.pt", "metrics.csv", "train_log.csv", "model.pt"]
    removed = remove_stale_temps(tmp_path, names)
    assert sorted(p.name for p in removed) == sorted(ours)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(others + [".model.pt.abcd1234.tmp", ".model.pt.efgh5678.tmp"])
    assert outside.read_text() == "keep"
    assert remove_stale_temps(tmp_path / "missing", names) == []


def test_a_killed_write_leaves_a_temp_file_that_is_cleaned_up(tmp_path):
    """A real atomic_write SIGKILLed mid-write: the stray is exactly what remove_stale_temps removes."""
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old")
    writer = _python(
        "import sys, time\n"
        "from robustbench_mm.core.files import atomic_write\n"
        "def write(handle):\n"
        "    handle.write(b'half'); handle.flush(); print('writing', flush=True); time.sleep(600)\n"
        "atomic_write(sys.argv[1], write)\n",
        str(target),
    )
    try:
        assert writer.stdout.readline().strip() == "writing", writer.stderr.read()
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=DEADLINE)
    finally:
        _stop(writer)
    strays = [p.name for p in tmp_path.iterdir() if p.name != "checkpoint.pt"]
    assert len(strays) == 1 and strays[0].startswith(".checkpoint.pt."), strays
    assert [p.name for p in remove_stale_temps(tmp_path, ["checkpoint.pt"])] == strays
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"] and target.read_bytes() == b"old"


# ------------------------------------------------------------------------------ the run lock

HOLDER = (
    "import sys, time\n"
    "from robustbench_mm.core.files import run_lock\n"
    "with run_lock(sys.argv[1], 'mmbench train'):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(600)\n"
)
CONTENDER = (
    "import sys\n"
    "from robustbench_mm.core.errors import UserError\n"
    "from robustbench_mm.core.files import run_lock\n"
    "try:\n"
    "    with run_lock(sys.argv[1], 'mmbench evaluate'):\n"
    "        print('acquired')\n"
    "except UserError as exc:\n"
    "    print(exc); sys.exit(2)\n"
)


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = _python(HOLDER, str(run))
    try:
        assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
        contender = subprocess.run(
            [sys.executable, "-c", CONTENDER, str(run)], capture_output=True, text=True, env=ENV, timeout=DEADLINE
        )
        assert contender.returncode == 2, contender.stderr
        assert (
            contender.stdout
            == f"{run} is in use by process {holder.pid} (mmbench train); wait for it to finish or stop it\n"
        )
        with pytest.raises(UserError, match=f"in use by process {holder.pid} "):
            with run_lock(run):
                pass
        holder.send_signal(signal.SIGKILL)  # the kernel drops the flock with its holder
        holder.wait(timeout=DEADLINE)
        assert (run / ".lock").exists()  # a killed holder leaves the file, not the lock
        with run_lock(run, "mmbench evaluate") as lock:
            assert lock.read_text() == f"{os.getpid()}\nmmbench evaluate\n"
        assert not (run / ".lock").exists()
    finally:
        _stop(holder)


def test_run_lock_is_reentrant_and_released_on_errors(tmp_path):
    with run_lock(tmp_path, "outer"):
        with run_lock(tmp_path, "inner") as lock:  # the same process may lock again
            assert lock.read_text().splitlines() == [str(os.getpid()), "outer"]
        assert lock.exists()
        probe = subprocess.run(
            [sys.executable, "-c", CONTENDER, str(tmp_path)], capture_output=True, text=True, env=ENV, timeout=DEADLINE
        )
        assert probe.returncode == 2 and f"process {os.getpid()} (outer)" in probe.stdout
    assert not lock.exists()
    with pytest.raises(ValueError):
        with run_lock(tmp_path):
            raise ValueError("boom")
    probe = subprocess.run(
        [sys.executable, "-c", CONTENDER, str(tmp_path)], capture_output=True, text=True, env=ENV, timeout=DEADLINE
    )
    assert probe.returncode == 0 and probe.stdout == "acquired\n"


def test_run_lock_refuses_a_missing_directory_and_a_planted_link(tmp_path):
    with pytest.raises(UserError, match="run directory not found"):
        with run_lock(tmp_path / "missing"):
            pass
    (tmp_path / ".lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match=r"^cannot lock .*: Too many levels of symbolic links"):
        with run_lock(tmp_path):
            pass
    assert not (tmp_path / "elsewhere").exists()


def test_a_garbled_lock_file_still_gives_one_short_line(tmp_path):
    holder = _python(HOLDER, str(tmp_path))
    try:
        assert holder.stdout.readline().strip() == "locked"
        (tmp_path / ".lock").write_text("not a pid\n" + "x" * 10_000)
        with pytest.raises(UserError, match=r"is in use by another process; wait"):
            with run_lock(tmp_path):
                pass
        (tmp_path / ".lock").write_text("123\n" + "y\x1b[2J" * 1000)
        with pytest.raises(UserError) as info:
            with run_lock(tmp_path):
                pass
        assert "process 123 (y\\x1b[2Jy" in str(info.value) and len(str(info.value)) < 300
    finally:
        _stop(holder)


# ------------------------------------------------------------------------------ orphaned workers

CHILD = (
    "import sys, time\n"
    "from robustbench_mm.core.procs import die_with_parent, watch_parent\n"
    "parent = int(sys.argv[1])\n"
    "print(die_with_parent(parent) if sys.argv[2] == 'auto' else watch_parent(parent, 0.05), flush=True)\n"
    "time.sleep(600)\n"
)
PARENT = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', sys.argv[1], str(os.getpid()), sys.argv[2]], "
    "stdout=subprocess.PIPE, text=True)\n"
    "print(child.pid, child.stdout.readline().strip(), flush=True)\n"
    "time.sleep(600)\n"
)


def _gone(pid: int) -> bool:
    """Dead: no such process, or a zombie nobody has reaped yet (it runs no code)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.parametrize("mechanism", ["auto", "watcher"])
def test_a_worker_dies_with_its_killed_parent(mechanism):
    if mechanism == "auto" and not sys.platform.startswith("linux"):
        pytest.skip("prctl is Linux only")
    parent = _python(PARENT, CHILD, mechanism)
    child_pid = None
    try:
        line = parent.stdout.readline().split()
        assert len(line) == 2, parent.stderr.read()
        child_pid, used = int(line[0]), line[1]
        assert used == ("prctl" if mechanism == "auto" else "watcher")
        assert not _gone(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=DEADLINE)
        assert _poll(lambda: _gone(child_pid)), "the worker outlived its parent"
    finally:
        _stop(parent)
        if child_pid is not None and not _gone(child_pid):
            os.kill(child_pid, signal.SIGKILL)


def test_a_worker_whose_parent_already_died_stops_at_once():
    """The parent died between the fork and die_with_parent: the expected parent PID no longer
    matches os.getppid(), so the worker kills itself instead of running on as an orphan."""
    code = (
        "import os\nfrom robustbench_mm.core.procs import die_with_parent\n"
        "die_with_parent(os.getppid() + 1)\nprint('still running')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=DEADLINE)
    assert proc.returncode == -signal.SIGKILL and proc.stdout == ""


# ------------------------------------------------------------------------------ cancellable jobs


def _a_new_program_ignores_sigint() -> bool:
    code = "import signal; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=DEADLINE)
    return {"True": True, "False": False}[done.stdout.strip()]


def test_programs_started_in_the_block_take_sigint_where_this_process_ignores_it(sigint_ignored):
    assert _a_new_program_ignores_sigint()  # what every child inherits outside the block
    with interruptible_children():
        assert not _a_new_program_ignores_sigint()
        os.kill(os.getpid(), signal.SIGINT)  # and this process still ignores it: no KeyboardInterrupt
        time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN and _a_new_program_ignores_sigint()


def test_a_process_that_takes_sigint_keeps_its_handler_in_the_block():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever the test runner was given
    try:
        with interruptible_children():
            handler = signal.getsignal(signal.SIGINT)
            assert handler is signal.default_int_handler and not _a_new_program_ignores_sigint()
    finally:
        signal.signal(signal.SIGINT, previous)
