"""``--launcher slurm`` and ``--launcher local``: one submitit job per run.

submitit (the standard Python client for Slurm) pickles the call :class:`RunTask` and runs it in
a job: on Slurm, the runs of one command form a job array; locally, each is a process on this
machine that outlives the command — the same code path, which is how the tests run it. At its
time limit or on preemption Slurm signals the job; submitit then calls :meth:`RunTask.checkpoint`
and requeues it, and the requeued job resumes from the run's last checkpoint (bit-identical,
as every resume). A finished run is never submitted again, and a run whose job is still alive
(a second command on the same runs directory) is attached to, not submitted twice.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from typing import Any

from robustbench_mm.app import jobrecords
from robustbench_mm.app.runone import Outcome, RunResult, RunSpec, is_complete, train_and_evaluate
from robustbench_mm.app.schedulers import Scheduler
from robustbench_mm.core.errors import UserError
from robustbench_mm.core.procs import interruptible_children
from robustbench_mm.core.untrusted import plain
from robustbench_mm.settings import RunPlan

POLL_S = {"local": 0.5, "slurm": 15.0}  # sacct is a shared service: ask it rarely
ALIVE = ("RUNNING", "PENDING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED", "REQUEUE_HOLD")


def import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise UserError("the slurm and local launchers need submitit: pip install 'robustbench-mm[slurm]'") from None
    return submitit


class RunTask:
    """What a job runs: one run, trained (or resumed) and evaluated. Checkpointable: at a time
    limit or a preemption submitit asks it how to go on, and the answer is the same run, which
    resumes from its checkpoint (``--force`` applies once: a requeued job must not start over)."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec

    def __call__(self) -> RunResult:
        spec = self.spec
        try:
            return train_and_evaluate(spec.cfg, spec.evaluate, spec.runs_dir, spec.force, True, None)
        except BaseException as exc:  # said in the record too: status shows it without reading pickles
            record = jobrecords.read_record(spec.runs_dir, spec.name)
            if record is not None and not isinstance(exc, (KeyboardInterrupt, SystemExit)):
                record.failed = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                jobrecords.write_record(spec.runs_dir, spec.name, record)
            raise

    def checkpoint(self) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(RunTask(dataclasses.replace(self.spec, force=False)))


def slurm_state(job: Any) -> str:
    """The first word of a Slurm job's state (``CANCELLED by 123`` -> ``CANCELLED``); UNKNOWN if none."""
    return (str(job.state).upper().split() or ["UNKNOWN"])[0]


class SubmititScheduler(Scheduler):
    detached = True

    def __init__(self, plan: RunPlan) -> None:
        self.submitit = import_submitit()
        self.name = plan.launcher
        self.plan = plan
        self.folder = jobrecords.jobs_dir(plan.runs_dir)  # submitit names its files by job id
        self.pending: dict[str, tuple[RunSpec, Any]] = {}  # run name -> (spec, job)
        self.ready: list[Outcome] = []  # reused runs: their outcome is known at once
        self.submitted: list[str] = []
        self.attached: list[str] = []
        self._executor = self.executor()  # fails now, before anything is written, where there is no Slurm

    def executor(self) -> Any:
        plan = self.plan
        try:
            executor = self.submitit.AutoExecutor(folder=self.folder, cluster=plan.launcher)
        except RuntimeError as exc:  # submitit's "Could not detect srun": not on a Slurm cluster
            raise UserError(
                f"--launcher {plan.launcher}: {str(exc)[:200]} (--launcher local runs the jobs here)"
            ) from None
        params: dict[str, Any] = {"timeout_min": plan.timeout_min, "name": "mmbench"}
        params["cpus_per_task"] = plan.cpus_per_run or 1
        params["gpus_per_node"] = plan.gpus_per_run or 0
        if plan.mem_gb is not None:
            params["mem_gb"] = plan.mem_gb
        if plan.launcher == "slurm" and plan.slurm_partition:
            params["slurm_partition"] = plan.slurm_partition
        executor.update_parameters(**params)
        return executor

    def submit(self, specs: Sequence[RunSpec]) -> None:
        fresh = []
        for spec in specs:
            if is_complete(spec):
                self.ready.append(_reuse(spec))
                continue
            job = self._alive_job(spec)
            if job is not None:
                self.pending[spec.name] = (spec, job)
                self.attached.append(spec.name)
            else:
                fresh.append(spec)
        if not fresh:
            return
        executor = self._executor
        jobs = []
        # (local jobs are processes started here: cancellable whatever this process's SIGINT is)
        with interruptible_children(), executor.batch():  # one job array on Slurm
            for spec in fresh:
                jobs.append(executor.submit(RunTask(spec)))
        for spec, job in zip(fresh, jobs, strict=True):
            self.pending[spec.name] = (spec, job)
            self.submitted.append(spec.name)
            paths = job.paths
            record = jobrecords.JobRecord(
                self.name, str(job.job_id), str(paths.folder), str(paths.stdout), str(paths.stderr)
            )
            jobrecords.write_record(spec.runs_dir, spec.name, record)

    def _alive_job(self, spec: RunSpec) -> Any:
        """The job a previous command submitted for this run, if it is still alive."""
        record = jobrecords.read_record(spec.runs_dir, spec.name)
        if record is None or record.launcher != self.name or record.failed:
            return None
        if self.name == "local":
            if not jobrecords.pid_alive(record.job_id):
                return None
            from submitit.local.local import LocalJob

            return _Attached(LocalJob(record.folder, record.job_id), record.job_id)
        job = self.submitit.SlurmJob(record.folder, record.job_id)
        return job if slurm_state(job) in ALIVE else None

    def outcomes(self) -> Iterator[Outcome]:
        yield from self.ready
        while self.pending:
            for name, (spec, job) in list(self.pending.items()):
                if job.done():
                    del self.pending[name]
                    yield _collect(spec, job)
            if self.pending:
                time.sleep(POLL_S[self.name])

    def summary(self) -> str:
        parts = [f"{len(self.submitted)} submitted"] if self.submitted else []
        parts += [f"{len(self.attached)} attached (already running)"] if self.attached else []
        parts += [f"{len(self.ready)} finished before"] if self.ready else []
        logs = jobrecords.jobs_dir(self.plan.runs_dir)
        return f"{self.name} jobs: " + ", ".join(parts or ["none"]) + f"; logs in {logs}"


class _Attached:
    """A local job started by an earlier command: alive while its controller process is."""

    def __init__(self, job: Any, pid: str) -> None:
        self.job, self.pid = job, pid

    def done(self) -> bool:
        return not jobrecords.pid_alive(self.pid)

    def result(self) -> Any:
        return self.job.result()


def _reuse(spec: RunSpec) -> Outcome:
    """A finished run's outcome, from this process (it only reads the run)."""
    result = train_and_evaluate(spec.cfg, spec.evaluate, spec.runs_dir, False, False, None)
    return Outcome.finished_with(spec, result)


def _collect(spec: RunSpec, job: Any) -> Outcome:
    try:
        result = job.result()
    except Exception as exc:  # the job failed (its traceback is in its log) or vanished
        record = jobrecords.read_record(spec.runs_dir, spec.name)
        lines = str(exc).strip().splitlines()
        why = (record.failed if record else "") or (lines[-1] if lines else type(exc).__name__)
        return Outcome(spec, "failed", error=plain(why, 300))
    return Outcome.finished_with(spec, result)


def waiting_hint(plan: RunPlan) -> str:
    if plan.launcher == "local":  # its jobs share the terminal's process group: Ctrl-C reached them too
        status = f"`mmbench status {plan.runs_dir}`"
        return f"local jobs stop with Ctrl-C; the same `mmbench run` command resumes them ({status})"
    return (
        f"the jobs keep running: `mmbench status {plan.runs_dir}` shows them; the same `mmbench run` command "
        "attaches to them and writes the report (or `mmbench report` once they are done)"
    )
