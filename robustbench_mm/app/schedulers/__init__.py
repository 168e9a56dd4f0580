"""The scheduler layer under ``mmbench run``: one small interface, several ways to carry out runs.

A scheduler is handed the plan's runs (:class:`~robustbench_mm.app.runone.RunSpec`) with
:meth:`Scheduler.submit` and reports each one's :class:`~robustbench_mm.app.runone.Outcome` from
:meth:`Scheduler.outcomes` as it finishes or fails. Every scheduler runs the same function per run
(:func:`~robustbench_mm.app.runone.train_and_evaluate`), so the numbers never depend on which one
carried it out; runs are make-like whatever the scheduler (a finished run is reused, an interrupted
one resumes from its checkpoint).

- ``processes`` (:mod:`.processes`): ``--jobs`` local worker processes (one per GPU on CUDA);
- ``overlapped`` (:mod:`.overlapped`): one device; this process trains run after run while a
  second process evaluates the previous one, optionally inside a wall-clock budget;
- ``local`` / ``slurm`` (:mod:`.cluster`): one submitit job per run, on this machine or as a
  Slurm job array; jobs outlive the command, and a later command attaches to them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from robustbench_mm.app.runone import Outcome, RunSpec
from robustbench_mm.settings import RunPlan, TrainConfig

__all__ = ["Outcome", "RunSpec", "Scheduler", "create_scheduler"]


class Scheduler:
    """Submit runs, then learn when each finished or failed."""

    name = "?"
    detached = False  # True: the runs outlive this process (cluster jobs)

    def submit(self, specs: Sequence[RunSpec]) -> None:
        raise NotImplementedError

    def outcomes(self) -> Iterator[Outcome]:
        """Each submitted run's outcome as it comes, until every run has one."""
        raise NotImplementedError

    def summary(self) -> str:
        """One line on what was handed out (cluster jobs: submitted, attached, reused)."""
        return ""

    def close(self) -> None:
        """Stop what is in flight (local schedulers); cluster jobs keep running."""

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_scheduler(plan: RunPlan, train: TrainConfig, runs: int, chatty: bool = False) -> Scheduler:
    """The scheduler ``plan.launcher`` names, sized for ``runs`` runs; ``chatty``: a line per epoch."""
    if plan.launcher == "overlapped":
        from robustbench_mm.app.schedulers.overlapped import OverlappedScheduler

        return OverlappedScheduler(plan, chatty)
    if plan.launcher in ("local", "slurm"):
        from robustbench_mm.app.schedulers.cluster import SubmititScheduler

        return SubmititScheduler(plan)
    from robustbench_mm.app.schedulers.processes import ProcessScheduler, default_jobs, job_devices

    jobs = min(plan.jobs or default_jobs(train.device, train.cpu_threads), runs)
    return ProcessScheduler(jobs, job_devices(jobs, train.device), chatty=chatty)
