"""``mmbench status RUNS_DIR``: one line per run — finished, running, interrupted, failed or not
started — from the run directories and, where a cluster launcher recorded one, the job."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robustbench_mm.app import jobrecords
from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import clip_path, plain

STATES = ("finished", "running", "interrupted", "failed", "not started")
SLURM_FAILED = ("FAILED", "OUT_OF_MEMORY", "NODE_FAIL", "TIMEOUT", "CANCELLED", "BOOT_FAIL", "DEADLINE", "PREEMPTED")


@dataclass
class RunState:
    name: str
    state: str  # one of STATES
    detail: str = ""

    def line(self, width: int) -> str:
        return f"{self.name:<{width}}  {self.state}" + (f"  {self.detail}" if self.detail else "")


def run_states(runs_dir: str | Path) -> list[RunState]:
    """Every run under ``runs_dir`` (a folder holding a run's files, or a job record), sorted by name."""
    from robustbench_mm.store.rundir import RunDir

    root = Path(runs_dir)
    if not root.is_dir():
        raise UserError(f"runs directory not found: {clip_path(root)}")
    names = {p.name for p in root.iterdir() if p.is_dir() and RunDir(p).has_files()}
    names |= set(jobrecords.recorded_runs(root))
    return [_state(root, name) for name in sorted(names)]


def _state(root: Path, name: str) -> RunState:
    from robustbench_mm.store.rundir import RunDir

    run = RunDir(root / name)
    record = jobrecords.read_record(root, name)
    job = f"{record.launcher} job {record.job_id}" if record else ""
    try:
        if run.is_trained and run.evaluation() is not None:
            return RunState(name, "finished")
    except UserError as exc:
        return RunState(name, "failed", f"damaged: {exc}")
    holder = _lock_holder(run.lock_path)
    if holder:
        return RunState(name, "running", f"({holder}{', ' + job if job else ''})")
    alive = _job_alive(record) if record else None
    if alive:
        return RunState(name, "running", f"({job}, {alive})")
    if record is not None and (record.failed or alive == ""):
        why = record.failed or jobrecords.last_line(record.stderr) or "no log"
        return RunState(name, "failed", f"({job}) {plain(why, 200)}")
    started = run.path.is_dir() and (run.is_trained or run.checkpoint_path.exists())
    if started:
        what = "trained, not evaluated" if run.is_trained else "checkpoint kept; the same command resumes it"
        return RunState(name, "interrupted", f"({what}{', ' + job if job else ''})")
    return RunState(name, "not started", f"({job})" if job else "")


def _lock_holder(lock: Path) -> str:
    """'process 1234' when the run's lock file names a live process on this machine, else ''."""
    try:
        pid = lock.read_text(errors="replace")[:64].splitlines()[0].strip()
    except (OSError, IndexError):
        return ""
    return f"process {pid}" if jobrecords.pid_alive(pid) else ""


def _job_alive(record: jobrecords.JobRecord) -> str | None:
    """The job's state when it is alive; '' when the scheduler says it failed; None otherwise."""
    if record.launcher == "local":
        return "running" if jobrecords.pid_alive(record.job_id) else None
    try:
        import submitit

        from robustbench_mm.app.schedulers.cluster import ALIVE, slurm_state

        state = slurm_state(submitit.SlurmJob(record.folder, record.job_id))
    except Exception:  # no submitit, no sacct here: the run directory alone decides
        return None
    if state in ALIVE:
        return state
    return "" if state in SLURM_FAILED else None


def print_status(runs_dir: str | Path) -> int:
    """Print one line per run; 0 when every run finished, 1 otherwise."""
    states = run_states(runs_dir)
    if not states:
        print(f"no runs in {clip_path(runs_dir)}")
        return 1
    width = max(len(s.name) for s in states)
    for s in states:
        print(s.line(width))
    counts = {k: sum(s.state == k for s in states) for k in STATES}
    print(", ".join(f"{v} {k}" for k, v in counts.items() if v))
    return 0 if counts["finished"] == len(states) else 1
