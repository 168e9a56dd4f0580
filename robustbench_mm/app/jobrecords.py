"""Job records: which cluster job carries out which run, kept beside the run directories.

``<runs_dir>/jobs/<run name>.json`` names the launcher, the job id and its log files; submitit's
own files (the pickled call, the logs) go to ``<runs_dir>/jobs/<job id>/``. ``mmbench status``
reads the records, and a second ``mmbench run`` attaches to a job that is still alive instead of
submitting the run again. A record is a hint, never the truth about a run: the run directory is.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

JOBS = "jobs"


@dataclass
class JobRecord:
    launcher: str  # local | slurm
    job_id: str
    folder: str  # submitit's folder of this job (logs, pickles)
    stdout: str = ""
    stderr: str = ""
    failed: str = ""  # the job's own last word when it raised (one line)


def jobs_dir(runs_dir: str | Path) -> Path:
    return Path(runs_dir) / JOBS


def record_path(runs_dir: str | Path, run_name: str) -> Path:
    return jobs_dir(runs_dir) / f"{run_name}.json"


def write_record(runs_dir: str | Path, run_name: str, record: JobRecord) -> None:
    from robustbench_mm.core.files import atomic_write_text

    path = record_path(runs_dir, run_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(asdict(record), indent=1) + "\n")


def read_record(runs_dir: str | Path, run_name: str) -> JobRecord | None:
    """The run's record, or None (none, or not one of ours: a record is only a hint)."""
    try:
        data = json.loads(record_path(runs_dir, run_name).read_text()[:100_000])
        return JobRecord(**{k: str(v) for k, v in data.items() if k in JobRecord.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


def recorded_runs(runs_dir: str | Path) -> list[str]:
    folder = jobs_dir(runs_dir)
    return sorted(p.name[:-5] for p in folder.glob("*.json")) if folder.is_dir() else []


def last_line(path: str | Path, limit: int = 200) -> str:
    """The last non-empty line of a log file (its tail only is read), bounded; '' if unreadable."""
    from robustbench_mm.core.untrusted import plain

    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return plain(lines[-1], limit) if lines else ""


def pid_alive(job_id: str) -> bool:
    """Whether a local job (its id is its controller's PID) is still running on this machine."""
    if not job_id.isdigit():
        return False
    try:
        os.kill(int(job_id), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        return Path(f"/proc/{job_id}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
